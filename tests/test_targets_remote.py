"""RemoteTarget against a real HTTP server (uvicorn on 127.0.0.1, started here)."""

from __future__ import annotations

import socket
import time
from collections import Counter

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from finmlsec.datasets import load
from finmlsec.errors import CapabilityError, ConfigError, TargetError
from finmlsec.schema import preprocessor
from finmlsec.spec import ModelRef
from finmlsec.targets.load import load_target
from finmlsec.targets.oracle import Oracle
from finmlsec.targets.remote import RemoteConfig, RemoteTarget
from loopback import serve


@pytest.fixture(scope="module")
def credit_model():
    ds = load("german_credit")
    train, test = ds.split(0.3, seed=0)
    ct = preprocessor(ds.schema, categories="data")
    model = make_pipeline(ct, LogisticRegression(max_iter=1000)).fit(train.X, train.y)
    return model, test


@pytest.fixture(scope="module")
def server(credit_model):
    import pandas as pd

    model, _ = credit_model
    hits: Counter[str] = Counter()
    app = FastAPI()

    @app.post("/v1/predict")
    async def predict(request: Request):
        body = await request.json()
        hits["predict"] += 1
        X = pd.DataFrame(body["instances"])
        return {"model": "credit", "result": {"predictions": model.predict_proba(X).tolist()}}

    @app.post("/v1/dict")
    async def as_dict(request: Request):
        body = await request.json()
        X = pd.DataFrame(body)
        p = model.predict_proba(X)
        return {"predictions": [{"bad": a, "good": b} for a, b in p]}

    @app.post("/v1/label")
    async def label(request: Request):
        body = await request.json()
        if request.headers.get("authorization") != "Bearer s3cret":
            return JSONResponse({"detail": "unauthorised"}, status_code=401)
        X = pd.DataFrame(body["instances"])
        names = np.array(["bad", "good"])[model.predict(X)]
        return {"predictions": [{"decision": n} for n in names]}

    @app.post("/v1/text")
    async def text(request: Request):
        body = await request.json()
        return {"predictions": ["long" if len(t) > 10 else "short" for t in body["instances"]]}

    @app.post("/v1/image")
    async def image(request: Request):
        body = await request.json()
        means = [float(np.mean(img)) for img in body["instances"]]
        return {"predictions": [[1 - m, m] for m in means]}

    @app.post("/v1/rows")
    async def rows(request: Request):
        body = await request.json()
        return {"predictions": [[0.0, 1.0] if r[0] > 0 else [1.0, 0.0] for r in body["rows"]]}

    @app.post("/v1/flaky")
    async def flaky(request: Request):
        body = await request.json()
        hits["flaky"] += 1
        if hits["flaky"] % 3 != 0:
            return JSONResponse({"detail": "overloaded"}, status_code=503)
        return {"predictions": [[0.5, 0.5]] * len(body["instances"])}

    @app.post("/v1/busy")
    async def busy(request: Request):
        body = await request.json()
        hits["busy"] += 1
        if hits["busy"] == 1:
            return JSONResponse({"detail": "rate limited"}, status_code=429,
                                headers={"Retry-After": "0.3"})
        return {"predictions": [[0.5, 0.5]] * len(body["instances"])}

    @app.post("/v1/slow")
    async def slow(request: Request):
        import asyncio

        await asyncio.sleep(1.0)
        return {"predictions": []}

    @app.post("/v1/short")
    async def short(request: Request):
        return {"predictions": [[0.5, 0.5]]}

    @app.post("/v1/notjson")
    async def notjson(request: Request):
        return JSONResponse(content="ok", media_type="text/plain")

    with serve(app) as port:
        yield f"http://127.0.0.1:{port}", hits


def _target(url: str, **remote) -> RemoteTarget:
    ref = ModelRef(format="remote", classes=("bad", "good"), remote={"url": url, **remote})
    t = load_target(ref)
    assert isinstance(t, RemoteTarget)
    return t


def test_probabilities_through_http_match_the_local_model(server, credit_model) -> None:
    base, hits = server
    model, test = credit_model
    before = hits["predict"]
    t = _target(f"{base}/v1/predict", batch_size=64, response={"path": "result.predictions"})
    p = t.predict_proba(test.X)
    np.testing.assert_allclose(p, model.predict_proba(test.X), atol=1e-9)
    assert hits["predict"] - before == int(np.ceil(len(test) / 64))  # batched
    assert t.predict(test.X[:10]).tolist() == np.array(["bad", "good"])[model.predict(test.X[:10])].tolist()
    oracle = Oracle(t, access="proba", budget=30)
    oracle.predict_proba(test.X[:30])
    assert oracle.queries_used == 30
    t.close()


def test_dict_probabilities_and_unwrapped_body(server, credit_model) -> None:
    base, _ = server
    model, test = credit_model
    t = _target(f"{base}/v1/dict", request={"wrap": None})
    np.testing.assert_allclose(t.predict_proba(test.X[:20]), model.predict_proba(test.X[:20]))


def test_label_only_endpoint_with_auth_from_env(server, credit_model, monkeypatch) -> None:
    base, _ = server
    model, test = credit_model
    remote = {"headers_from_env": {"Authorization": "CREDIT_API_TOKEN"},
              "response": {"output": "label", "item_key": "decision"}}
    t = _target(f"{base}/v1/label", **remote)
    with pytest.raises(TargetError, match="CREDIT_API_TOKEN.*not set"):
        t.predict(test.X[:3])
    monkeypatch.setenv("CREDIT_API_TOKEN", "Bearer wrong")
    with pytest.raises(TargetError, match="HTTP 401"):
        _target(f"{base}/v1/label", **remote).predict(test.X[:3])
    monkeypatch.setenv("CREDIT_API_TOKEN", "Bearer s3cret")
    t = _target(f"{base}/v1/label", **remote)
    assert t.capabilities == frozenset({"label"})
    labels = t.predict(test.X)
    assert labels.tolist() == np.array(["bad", "good"])[model.predict(test.X)].tolist()
    with pytest.raises(CapabilityError, match="labels only"):
        t.predict_proba(test.X[:2])
    with pytest.raises(CapabilityError):
        Oracle(t, access="proba")
    assert Oracle(t, access="label").predict(test.X[:4]).shape == (4,)


def test_retries_with_backoff_recover_from_503(server, credit_model) -> None:
    base, hits = server
    _, test = credit_model
    hits["flaky"] = 0
    t = _target(f"{base}/v1/flaky", retries=3, backoff=0.05)
    start = time.perf_counter()
    p = t.predict_proba(test.X[:5])
    assert p.shape == (5, 2)
    assert hits["flaky"] == 3 and t.requests_sent == 3
    assert time.perf_counter() - start >= 0.05 + 0.1  # two backoff sleeps: 0.05 s, then 0.1 s
    hits["flaky"] = 0
    with pytest.raises(TargetError, match=r"failed after 2 attempt\(s\): HTTP 503"):
        _target(f"{base}/v1/flaky", retries=1, backoff=0.0).predict_proba(test.X[:5])


def test_429_honours_retry_after(server, credit_model) -> None:
    base, hits = server
    _, test = credit_model
    t = _target(f"{base}/v1/busy", retries=2, backoff=0.0)
    start = time.perf_counter()
    assert t.predict_proba(test.X[:2]).shape == (2, 2)
    assert hits["busy"] == 2 and time.perf_counter() - start >= 0.3


def test_timeouts_and_malformed_answers(server, credit_model) -> None:
    base, _ = server
    _, test = credit_model
    with pytest.raises(TargetError, match=r"timed out after 0.2 s"):
        _target(f"{base}/v1/slow", timeout=0.2, retries=1, backoff=0.0).predict_proba(test.X[:2])
    with pytest.raises(TargetError, match="one item per record"):
        _target(f"{base}/v1/short").predict_proba(test.X[:3])
    with pytest.raises(TargetError, match="nothing at path 'output'"):
        _target(f"{base}/v1/short", response={"path": "output"}).predict_proba(test.X[:1])
    with pytest.raises(TargetError, match="HTTP 404"):
        _target(f"{base}/v1/nowhere").predict_proba(test.X[:1])
    with pytest.raises(TargetError, match="connection failed"):
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        _target(f"http://127.0.0.1:{port}/x", retries=0).predict_proba(test.X[:1])


def test_config_is_validated() -> None:
    with pytest.raises(TargetError, match=r"model.remote.url: .*ftp://x"):
        RemoteConfig.parse({"url": "ftp://x"})
    with pytest.raises(TargetError, match=r"model.remote.timeout"):
        RemoteConfig.parse({"url": "http://127.0.0.1:1/", "timeout": -1})
    with pytest.raises(TargetError, match=r"model.remote.colour"):
        RemoteConfig.parse({"url": "http://127.0.0.1:1/", "colour": "red"})
    with pytest.raises(ConfigError, match="needs its class names"):
        RemoteTarget(RemoteConfig(url="http://127.0.0.1:1/"))


def test_text_image_and_list_records(server) -> None:
    import pandas as pd

    base, _ = server
    ref = ModelRef(format="remote", input_kind="text", classes=("short", "long"),
                   remote={"url": f"{base}/v1/text", "response": {"output": "label"}})
    t = load_target(ref)
    assert t.predict(["hi", "a much longer message"]).tolist() == ["short", "long"]
    ref = ModelRef(format="remote", input_kind="image", classes=(0, 1),
                   remote={"url": f"{base}/v1/image"})
    imgs = np.stack([np.full((8, 8), 0.2), np.full((8, 8), 0.9)])
    np.testing.assert_allclose(load_target(ref).predict_proba(imgs), [[0.8, 0.2], [0.1, 0.9]])
    ref = ModelRef(format="remote", classes=("neg", "pos"),
                   remote={"url": f"{base}/v1/rows", "request": {"wrap": "rows", "record": "list"}})
    frame = pd.DataFrame({"a": [-1.0, 2.0], "b": ["x", "y"]})
    assert load_target(ref).predict(frame).tolist() == ["neg", "pos"]
