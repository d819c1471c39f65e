"""Gateway throughput and latency: the bare credit-scoring model behind FastAPI versus the fully
guarded ``finmlsec serve`` (keys, rate limits and budgets, schema validation, input screening,
output rounding, PRADA, durable hash-chained audit log), loaded from this separate process over
loopback with a lean keep-alive HTTP/1.1 client, bounded in time.

Rows: ``bare`` (one ``predict_proba`` per request), ``bare+batching`` (the same endpoint with the
gateway's micro-batcher), ``bare+batching, compiled`` (the same with the gateway's compiled
numpy model path, ``finmlsec.gateway.fastpath``: the strongest baseline, against which the
guarded service's share is computed; all bare servers limit BLAS to one thread as the gateway
does; their 10,000-row batches go through scikit-learn), ``guarded without screen``
(every guard but the isolation-forest input screen), ``guarded``, and ``guarded, 2 workers +
Redis`` (two uvicorn worker processes sharing limits through Redis on 127.0.0.1:6379; skip with
``--no-workers``).
Columns: maximum single-record requests/s (closed loop, 32 connections), latency at that load,
latency at half that rate (open loop), and rows/s for column-oriented batches of 10,000 rows.

Run: ``python bench/run.py serve`` (``--duration S`` per measurement, default 6).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# -- the bare server ---------------------------------------------------------------------------
def bare_app(batched: bool, compiled: bool = False) -> Any:
    from finmlsec.gateway import fastpath
    from finmlsec.gateway.asgi import single_threaded_blas
    from finmlsec.gateway.batcher import MicroBatcher
    from finmlsec.gateway.demo import credit_scoring_model

    single_threaded_blas()  # as the gateway's server process does
    m = credit_scoring_model(seed=0)
    names = m.schema.names
    classes = [str(c) for c in m.target.classes_]
    fast = fastpath.compile_model(m.target.estimator) if compiled else None

    def frame(rows: list[dict[str, Any]]) -> Any:
        import pandas as pd

        return pd.DataFrame.from_records(rows, columns=names)

    def model(rows: list[dict[str, Any]]) -> Any:
        if fast is not None:
            return fast(fastpath.records_to_columns(rows, names))
        return m.target.predict_proba(frame(rows))

    batcher = MicroBatcher(model, max_rows=256, linger=0.002)  # the gateway's defaults
    app = FastAPI()

    @app.post("/v1/predict")
    async def predict(request: Request) -> Response:
        import pandas as pd

        payload = json.loads(await request.body())
        if "columns" in payload:
            X = pd.DataFrame(payload["data"], columns=payload["columns"])
            P = await batcher.run_alone(m.target.predict_proba, X)
        else:
            rows = payload["records"] if "records" in payload else [payload["record"]]
            P = await batcher.submit(rows) if batched else model(rows)
        top = np.argmax(P, axis=1)
        body = {"classes": classes, "labels": [classes[i] for i in top],
                "probabilities": P.tolist()}
        return Response(json.dumps(body), media_type="application/json")

    return app


# -- load generation ---------------------------------------------------------------------------
class Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status


def http_request(path: str, body: bytes, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {len(body)}\r\n\r\n").encode() + body


async def closed_loop(port: int, raws: list[bytes], conns: int, seconds: float) -> dict[str, float]:
    lat: list[float] = []
    bad = 0
    stop = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        nonlocal bad
        c = Conn(port)
        i = k
        while time.perf_counter() < stop:
            t = time.perf_counter()
            status = await c.send(raws[i % len(raws)])
            lat.append(time.perf_counter() - t)
            bad += status != 200
            i += conns

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(conns)))
    wall = time.perf_counter() - t0
    a = np.asarray(lat) * 1000
    return {"rps": len(lat) / wall, "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)), "errors": bad}


async def open_loop(port: int, raws: list[bytes], rate: float, seconds: float) -> dict[str, float]:
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(64):
        pool.put_nowait(Conn(port))
    lat: list[float] = []
    bad = 0
    n = int(rate * seconds)
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal bad
        due = t0 + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        c = await pool.get()
        try:
            status = await c.send(raws[i % len(raws)])
        finally:
            pool.put_nowait(c)
        lat.append(time.perf_counter() - due)  # from the scheduled time: queueing counts
        bad += status != 200

    await asyncio.gather(*(one(i) for i in range(n)))
    a = np.asarray(lat) * 1000
    return {"rate": rate, "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "errors": bad}


# -- servers -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    import httpx

    fh = log.open("wb")
    proc = subprocess.Popen(cmd, stdout=fh, stderr=fh, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=2)
            return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


GUARDED_POLICY = """
output: {mode: round, decimals: 2}
budget: {requests_per_second: 100000, per_day: 1000000000}
extraction: {enabled: true, exempt_organisations: [bank-batch]}
screening: {enabled: true, defence: input_screen.ood, params: {random_state: 0}}
"""


def client_streams(tokens: list[str | None], records: list[dict[str, Any]]) -> list[bytes]:
    """Requests interleaving several clients, each replaying the held-out records in its own
    random order without repeats (a client repeating records would rightly be flagged by PRADA)."""
    rng = np.random.default_rng(0)
    perms = [rng.permutation(len(records)) for _ in tokens]
    return [http_request("/v1/predict", json.dumps({"record": records[perms[k][j]]}).encode(),
                         tokens[k])
            for j in range(len(records)) for k in range(len(tokens))]


def measure(port: int, tokens: list[list[str | None]], batch_token: str | None,
            records: list[dict[str, Any]], batch_body: bytes, seconds: float) -> dict[str, Any]:
    warm, top_t, half_t = (client_streams(t, records) for t in tokens)
    batch = [http_request("/v1/predict", batch_body, batch_token)]
    asyncio.run(closed_loop(port, warm, 8, 1.0))
    top = asyncio.run(closed_loop(port, top_t, 32, seconds))
    half = asyncio.run(open_loop(port, half_t, max(1.0, top["rps"] / 2), seconds))
    rows = asyncio.run(closed_loop(port, batch, 2, seconds))
    n_rows = len(json.loads(batch_body)["data"])
    return {"top": top, "half": half, "rows_per_s": rows["rps"] * n_rows,
            "batch_errors": rows["errors"]}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve-bare"]:
        import uvicorn

        uvicorn.run(bare_app(batched="--batched" in argv, compiled="--compiled" in argv),
                    host="127.0.0.1", port=int(argv[1]), log_level="warning", access_log=False)
        return 0
    seconds = float(argv[argv.index("--duration") + 1]) if "--duration" in argv else 6.0
    from finmlsec.gateway.demo import credit_scoring_model
    from finmlsec.gateway.storage import GatewayDB

    m = credit_scoring_model(seed=0)
    records = json.loads(m.heldout.to_json(orient="records"))
    big = m.heldout.sample(10_000, replace=True, random_state=0)
    batch_body = json.dumps({"columns": m.schema.names,
                             "data": json.loads(big.to_json(orient="values"))}).encode()
    tmp = Path(tempfile.mkdtemp(prefix="finmlsec-bench-"))
    results: dict[str, dict[str, Any]] = {}
    names = ["bare", "bare+batching", "bare+batching, compiled", "guarded without screen",
             "guarded"]
    if "--no-workers" not in argv:
        names.append("guarded, 2 workers + Redis")
    for name in names:
        port = free_port()
        tokens: list[list[str | None]] = [[None] * 64 for _ in range(3)]
        batch_token = None
        if name.startswith("guarded"):
            url = f"sqlite:///{tmp / (name.replace(' ', '_') + '.db')}"
            db = GatewayDB(url)
            tokens = [[db.create_key(org="bank", role="system_user").token for _ in range(64)]
                      for _ in range(3)]
            batch_token = db.create_key(org="bank-batch", role="system_user").token
            policy = GUARDED_POLICY if name == "guarded" else "\n".join(
                line for line in GUARDED_POLICY.splitlines() if not line.startswith("screening"))
            (tmp / "policy.yaml").write_text(policy)
            cmd = [sys.executable, "-m", "finmlsec.cli.main", "serve", "demo", "--port",
                   str(port), "--db", url, "--policy", str(tmp / "policy.yaml")]
            if "workers" in name:
                cmd += ["--workers", "2", "--redis", "redis://127.0.0.1:6379/0",
                        "--redis-prefix", f"finmlsec-bench-{os.getpid()}:"]
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port)]
            cmd += ["--batched"] if name.startswith("bare+batching") else []
            cmd += ["--compiled"] if name.endswith("compiled") else []
        proc = start(cmd, port, tmp / f"{name}.log")
        try:
            results[name] = measure(port, tokens, batch_token, records, batch_body, seconds)
        finally:
            proc.terminate()
            proc.wait(30)
            if "workers" in name:
                from finmlsec.defences.ratelimit import RedisCounterStore

                RedisCounterStore("redis://127.0.0.1:6379/0",
                                  prefix=f"finmlsec-bench-{os.getpid()}:").clear_prefix()
    base = max(results[n]["top"]["rps"] for n in ("bare+batching", "bare+batching, compiled"))
    print(f"credit scoring (German Credit, logistic regression pipeline); {os.cpu_count()} cores; "
          f"{seconds:g} s per measurement; load from a separate process over loopback")
    print("| service | requests/s | p50 ms | p99 ms | at half rate: p50 ms | p99 ms "
          "| batch rows/s | vs best bare | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        t, h = r["top"], r["half"]
        errs = int(t["errors"] + h["errors"] + r["batch_errors"])
        print(f"| {name} | {t['rps']:,.0f} | {t['p50']:.1f} | {t['p99']:.1f} | {h['p50']:.1f} | "
              f"{h['p99']:.1f} | {r['rows_per_s']:,.0f} | {t['rps'] / base:.0%} | {errs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
