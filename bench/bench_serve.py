"""Gateway throughput and latency: the bare credit-scoring model behind FastAPI versus the fully
guarded ``finmlsec serve`` (keys, rate limits and budgets, schema validation, input screening,
output rounding, PRADA, durable hash-chained audit log), each server a separate process started
here, loaded over loopback from this process (and two open-loop generator processes), bounded in
time.

Rows: ``bare`` (one ``predict_proba`` per request), ``bare+batching`` (the same endpoint with the
gateway's micro-batcher), ``bare+batching, compiled`` (the same with the gateway's compiled numpy
model path, ``finmlsec.gateway.fastpath``), ``bare+batching, compiled, lean`` (the same answered
by a raw route (no request object or dependency resolution), as the gateway answers
``/v1/predict``, and its batches through the compiled model: the strongest baseline), ``guarded
without screen`` (every guard but the isolation-forest input screen), ``guarded``, and
``guarded, 2 workers + Redis`` (two uvicorn worker processes sharing limits through Redis on
127.0.0.1:6379; skip with ``--no-workers``). All servers limit BLAS to one thread.
Columns: maximum single-record requests/s (closed loop, 32 connections), latency at that load,
latency at half that rate (open loop), rows/s for column-oriented batches of 10,000 rows (closed
loop, 2 connections; records the input screen accepts, see ``main``), the share of the best
bare throughput, and the server processes' CPU time
per request at the maximum rate and per 10,000-row batch (user + system from ``/proc``: the
server's own cost, which the other processes on a shared machine do not change the way they
change throughput).

Load generators: the closed loops use ``wrk`` when it is installed (C, epoll; e.g. ``apt-get
install wrk``), else the Python client below; the open loop is always the Python client
(callback-driven asyncio protocols on uvloop, pre-encoded requests), in two processes. The
printed header says which was used, and the load average before and after each service.

Run: ``python bench/run.py serve`` (``--duration S`` per measurement, default 6; ``--python-client``
forces the Python client; ``--only "NAME;NAME"`` measures some rows).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
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
CLIENTS = 128  # API keys per phase; each replays the 300 held-out records once at most
OPEN_LOOP_PROCESSES = 2  # open-loop generator processes for the rate at half the maximum


# -- the bare server ---------------------------------------------------------------------------
def bare_app(batched: bool, compiled: bool = False, lean: bool = False) -> Any:
    """The bare model behind FastAPI; ``lean``: ``POST /v1/predict`` answered by a raw ASGI
    route (no request object or dependency resolution), as the gateway does (and its 10,000-row
    batches through the compiled model, without checks)."""
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

    def batch(inputs: list[list[dict[str, Any]]]) -> Any:  # one model call for every request
        return model([r for rows in inputs for r in rows])

    batcher = MicroBatcher(batch, max_rows=256, linger=0.002)  # the gateway's defaults
    app = FastAPI()

    async def answer(raw: bytes) -> bytes:
        import pandas as pd

        payload = json.loads(raw)
        if "columns" in payload and lean and fast is not None:
            cols = dict(zip(payload["columns"], zip(*payload["data"], strict=True), strict=True))
            P = await batcher.run_alone(fast, cols)
        elif "columns" in payload:
            X = pd.DataFrame(payload["data"], columns=payload["columns"])
            P = await batcher.run_alone(m.target.predict_proba, X)
        else:
            rows = payload["records"] if "records" in payload else [payload["record"]]
            P = await batcher.submit(rows) if batched else model(rows)
        top = np.argmax(P, axis=1)
        body = {"classes": classes, "labels": [classes[i] for i in top],
                "probabilities": P.tolist()}
        return json.dumps(body).encode()

    @app.post("/v1/predict")
    async def predict(request: Request) -> Response:
        return Response(await answer(await request.body()), media_type="application/json")

    if not lean:
        return app

    async def lean_route(scope: dict[str, Any], receive: Any, send: Any) -> None:
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = await answer(b"".join(chunks))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    from finmlsec.gateway.app import raw_route

    app.router.routes.insert(0, raw_route("/v1/predict", lean_route, methods=["POST"]))
    return app


# -- load generation ---------------------------------------------------------------------------
# Requests are pre-encoded (token, body) pairs. The maximum rate and the batches are measured
# with wrk (C, epoll; closed loop) when it is installed, else with the Python client below; the
# rate at half the maximum needs an open loop, which wrk lacks, so it always uses the Python
# client (callback-driven asyncio protocols on uvloop when available, no task per request).
Req = tuple[str | None, bytes]

WRK_LUA = r"""
local reqs, n, idx = {}, 0, 0
local counter = 0
setup = function(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
init = function(args)
  local path, threads = args[1], tonumber(args[2])
  local line_no = 0
  for line in io.lines(path) do
    if line_no % threads == tid then
      local tok, body = line:match("^([^\t]*)\t(.*)$")
      local headers = {["Content-Type"] = "application/json"}
      if tok ~= "" then headers["Authorization"] = "Bearer " .. tok end
      n = n + 1
      reqs[n] = wrk.format("POST", "/v1/predict", headers, body)
    end
    line_no = line_no + 1
  end
end
request = function()
  idx = idx % n + 1
  return reqs[idx]
end
done = function(summary, latency, requests)
  io.write(string.format("WRKJSON {\"requests\": %d, \"duration_us\": %d, \"status\": %d, " ..
    "\"connect\": %d, \"read\": %d, \"write\": %d, \"timeout\": %d, " ..
    "\"p50_us\": %d, \"p99_us\": %d}\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_available() -> bool:
    import shutil

    return shutil.which("wrk") is not None


def wrk_closed(port: int, reqs: list[Req], conns: int, seconds: float, tmp: Path) -> dict[str, float]:
    """Closed loop with wrk: ``conns`` connections on 2 threads, each request waits for the
    previous answer on its connection."""
    threads = min(2, conns)
    script, data = tmp / "load.lua", tmp / f"load-{os.getpid()}-{time.monotonic_ns()}.tsv"
    script.write_text(WRK_LUA)
    with data.open("wb") as fh:
        for token, body in reqs:
            fh.write((token or "").encode() + b"\t" + body + b"\n")
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds:g}s", "--timeout", "10s",
         "-s", str(script), f"http://127.0.0.1:{port}/v1/predict", "--", str(data), str(threads)],
        capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    data.unlink()
    r = json.loads(out[out.index("WRKJSON ") + 8:].splitlines()[0])
    errors = r["status"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return {"rps": r["requests"] / (r["duration_us"] / 1e6), "p50": r["p50_us"] / 1000,
            "p99": r["p99_us"] / 1000, "errors": errors}


def http_request(path: str, body: bytes, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {len(body)}\r\n\r\n").encode() + body


class _Client(asyncio.Protocol):
    """One keep-alive connection with one request in flight; calls ``done(self, status)`` when
    the answer is complete (parsed from Content-Length, no body decoding)."""

    def __init__(self, done: Any) -> None:
        self.done = done
        self.buf = bytearray()
        self.need: int | None = None
        self.status = 0
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    closed = False
    in_flight = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        # e.g. the server closing an idle keep-alive connection: a request in flight counts as
        # an error, and the open loop does not reuse a closed connection
        self.closed = True
        if self.in_flight:
            self.in_flight = False
            self.done(self, 0)

    def send(self, raw: bytes, at: float) -> None:
        self.sent_at = at
        self.in_flight = True
        assert self.transport is not None
        self.transport.write(raw)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"content-length:")
            length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0
                              else len(head)]) if at >= 0 else 0
            self.need = end + 4 + length
        if len(self.buf) >= self.need:
            del self.buf[:self.need]
            self.need = None
            self.in_flight = False
            self.done(self, self.status)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop on Linux
        return asyncio.new_event_loop()


def _run(coro: Any) -> Any:
    loop = _new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def python_generator() -> str:
    try:
        import uvloop  # noqa: F401

        return "Python asyncio protocols on uvloop"
    except ImportError:  # pragma: no cover
        return "Python asyncio protocols"


async def py_closed(port: int, reqs: list[Req], conns: int, seconds: float) -> dict[str, float]:
    """Closed loop: ``conns`` connections, each sends its next request when the answer came."""
    loop = asyncio.get_running_loop()
    perf = time.perf_counter  # loop.time() has millisecond resolution on uvloop
    raws = [http_request("/v1/predict", b, t) for t, b in reqs]
    lat: list[float] = []
    bad = 0
    nxt = 0
    stop = perf() + seconds
    finished = loop.create_future()
    open_conns = conns

    def done(c: _Client, status: int) -> None:
        nonlocal bad, nxt, open_conns
        now = perf()
        lat.append(now - c.sent_at)
        bad += status != 200
        if now < stop and not c.closed:
            c.send(raws[nxt % len(raws)], now)
            nxt += 1
        else:
            open_conns -= 1
            if open_conns == 0 and not finished.done():
                finished.set_result(None)

    clients = []
    for _ in range(conns):
        _, c = await loop.create_connection(lambda: _Client(done), "127.0.0.1", port)
        clients.append(c)
    t0 = perf()
    for c in clients:
        c.send(raws[nxt % len(raws)], t0)
        nxt += 1
    await finished
    wall = perf() - t0
    for c in clients:
        assert c.transport is not None
        c.transport.close()
    a = np.asarray(lat) * 1000
    return {"rps": len(lat) / wall, "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)), "errors": bad}


async def py_open(port: int, raws: list[bytes], rate: float, seconds: float,
                  start_at: float) -> dict[str, Any]:
    """Open loop: request ``i`` is due at ``start_at + i / rate`` (``time.perf_counter``) whatever
    the answers so far; it goes out on a free connection (a new one if all are busy) and its
    latency counts from the due time, so queueing in the client or the server counts."""
    loop = asyncio.get_running_loop()
    perf = time.perf_counter
    lat: list[float] = []
    bad = 0
    n = int(rate * seconds)
    free: list[_Client] = []
    answered = 0
    finished = loop.create_future()

    def done(c: _Client, status: int) -> None:
        nonlocal bad, answered
        lat.append(perf() - c.sent_at)
        bad += status != 200
        free.append(c)
        answered += 1
        if answered == n and not finished.done():
            finished.set_result(None)

    async def connect() -> _Client:
        _, c = await loop.create_connection(lambda: _Client(done), "127.0.0.1", port)
        return c

    free.extend([await connect() for _ in range(32)])
    every = list(free)
    i = 0
    while i < n:
        now = perf()
        while i < n and start_at + i / rate <= now:
            while free and free[-1].closed:
                free.pop()
            if not free:
                free.append(await connect())
                every.append(free[-1])
            free.pop().send(raws[i % len(raws)], start_at + i / rate)
            i += 1
        if i < n:
            await asyncio.sleep(max(0.0, start_at + i / rate - perf()))
    await asyncio.wait_for(finished, timeout=60)
    for c in every:
        assert c.transport is not None
        c.transport.close()
    return {"lat": lat, "errors": bad}  # a closed connection's lost request counts as an error


def _open_worker(args: tuple[int, list[Req], float, float, float]) -> dict[str, Any]:
    port, reqs, rate, seconds, start_at = args
    raws = [http_request("/v1/predict", b, t) for t, b in reqs]
    return _run(py_open(port, raws, rate, seconds, start_at))


def _open_child(job: tuple[int, list[Req], float, float, float], out: Any) -> None:
    out.send(_open_worker(job))
    out.close()


def open_loop(port: int, reqs: list[Req], rate: float, seconds: float,
              processes: int = OPEN_LOOP_PROCESSES) -> dict[str, float]:
    """:func:`py_open` at ``rate`` in total, split over ``processes`` generator processes (each
    with its own clients: request ``i`` of the interleaved streams goes to process
    ``i % processes``), so the generator is not what limits the rate."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")  # the children inherit the requests; nothing is pickled
    start_at = time.perf_counter() + 2.0  # perf_counter is system-wide (CLOCK_MONOTONIC)
    children = []
    for k in range(processes):
        job = (port, reqs[k::processes], rate / processes, seconds, start_at)
        recv, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_open_child, args=(job, send), daemon=True)
        child.start()
        send.close()
        children.append((child, recv))
    outs = []
    for child, recv in children:
        outs.append(recv.recv())
        child.join(30)
    a = np.concatenate([np.asarray(o["lat"]) for o in outs]) * 1000
    return {"rate": rate, "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "errors": sum(o["errors"] for o in outs)}


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
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
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


def client_streams(tokens: list[str | None], records: list[dict[str, Any]]) -> list[Req]:
    """Requests interleaving several clients, each replaying the held-out records in its own
    random order without repeats (a client repeating records would rightly be flagged by PRADA)."""
    rng = np.random.default_rng(0)
    perms = [rng.permutation(len(records)) for _ in tokens]
    return [(tokens[k], json.dumps({"record": records[perms[k][j]]}).encode())
            for j in range(len(records)) for k in range(len(tokens))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (Linux ``/proc``; NaN
    elsewhere): the server's own cost, whatever else runs on the machine."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        stats = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    raw = (d / "stat").read_text()
                except OSError:
                    continue
                f = raw[raw.rindex(")") + 2:].split()
                stats[int(d.name)] = (int(f[1]), (int(f[11]) + int(f[12])) / tick)
    except OSError:  # pragma: no cover - not Linux
        return float("nan")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0.0))[1]
        todo += [c for c, (ppid, _) in stats.items() if ppid == p]
    return total


def measure(pid: int, port: int, tokens: list[list[str | None]], batch_token: str | None,
            records: list[dict[str, Any]], batch_body: bytes, seconds: float,
            use_wrk: bool, tmp: Path) -> dict[str, Any]:
    warm, top_t, half_t = (client_streams(t, records) for t in tokens)
    batch: list[Req] = [(batch_token, batch_body)]
    _run(py_closed(port, warm, 8, 1.0))
    cpu0 = cpu_seconds(pid)
    if use_wrk:
        top = wrk_closed(port, top_t, 32, seconds, tmp)
    else:
        top = _run(py_closed(port, top_t, 32, seconds))
    top["cpu_us"] = (cpu_seconds(pid) - cpu0) / max(1.0, top["rps"] * seconds) * 1e6
    half = open_loop(port, half_t, max(1.0, top["rps"] / 2), seconds)
    cpu0 = cpu_seconds(pid)
    if use_wrk:
        rows = wrk_closed(port, batch, 2, seconds, tmp)
    else:
        rows = _run(py_closed(port, batch, 2, seconds))
    batch_cpu_ms = (cpu_seconds(pid) - cpu0) / max(1.0, rows["rps"] * seconds) * 1e3
    n_rows = len(json.loads(batch_body)["data"])
    return {"top": top, "half": half, "rows_per_s": rows["rps"] * n_rows,
            "batch_errors": rows["errors"], "batch_cpu_ms": batch_cpu_ms}


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # pragma: no cover - not Linux
        return "unknown"


def parse_args(argv: list[str]) -> Any:
    import argparse

    p = argparse.ArgumentParser(
        prog="bench_serve.py", description="Gateway throughput and latency: the bare "
        "credit-scoring model behind FastAPI versus the guarded 'finmlsec serve', each a server "
        "process on 127.0.0.1, loaded from this process (see the module docstring for the rows "
        "and columns).")
    p.add_argument("--duration", type=float, default=6.0, metavar="S",
                   help="seconds per measurement (default 6)")
    p.add_argument("--python-client", action="store_true",
                   help="use the Python load generator even when wrk is installed")
    p.add_argument("--no-workers", action="store_true",
                   help="skip the 'guarded, 2 workers + Redis' row (needs Redis on "
                   "127.0.0.1:6379)")
    p.add_argument("--only", metavar="NAME;NAME",
                   help="measure only these rows (names as printed, separated by ';')")
    p.add_argument("--serve-bare", type=int, metavar="PORT",
                   help="internal: run the bare server on PORT (started by the benchmark)")
    for flag in ("batched", "compiled", "lean"):
        p.add_argument(f"--{flag}", action="store_true", help=f"internal: the bare server, "
                       f"{flag}")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.serve_bare is not None:
        import uvicorn

        uvicorn.run(bare_app(batched=args.batched, compiled=args.compiled, lean=args.lean),
                    host="127.0.0.1", port=args.serve_bare, log_level="warning",
                    access_log=False)
        return 0
    seconds = args.duration
    use_wrk = wrk_available() and not args.python_client
    from finmlsec.gateway.demo import credit_scoring_model

    m = credit_scoring_model(seed=0)
    records = json.loads(m.heldout.to_json(orient="records"))
    # The batch: 10,000 held-out records (with repeats) among those the guarded server's input
    # screen accepts (the same detector, fitted the same way), since one refused row makes the
    # whole batch a 422 under the policy's "reject" action, and a refused batch is no answer.
    from finmlsec.defences.input_screen import OODDetector

    accepted = OODDetector(random_state=0).fit(m.train).predict(m.heldout) != -1
    big = m.heldout[accepted].sample(10_000, replace=True, random_state=0)
    batch_body = json.dumps({"columns": m.schema.names,
                             "data": json.loads(big.to_json(orient="values"))}).encode()
    tmp = Path(tempfile.mkdtemp(prefix="finmlsec-bench-"))
    results: dict[str, dict[str, Any]] = {}
    names = ["bare", "bare+batching", "bare+batching, compiled", "bare+batching, compiled, lean",
             "guarded without screen", "guarded"]
    if not args.no_workers:
        names.append("guarded, 2 workers + Redis")
    if args.only:
        wanted = args.only.split(";")
        names = [n for n in names if n in wanted]
    loads = [load_average()]
    try:
        _run_services(names, tmp, results, loads, records, batch_body, seconds, use_wrk)
    except BaseException:
        print(f"bench_serve: the servers' logs and databases are kept in {tmp}", file=sys.stderr)
        raise
    shutil.rmtree(tmp, ignore_errors=True)  # every service ran: nothing to inspect
    _print_table(results, seconds, use_wrk, loads)
    return 0


def _run_services(names: list[str], tmp: Path, results: dict[str, dict[str, Any]],
                  loads: list[str], records: Any, batch_body: bytes, seconds: float,
                  use_wrk: bool) -> None:
    """Start, measure and stop each service in turn (results and load averages appended)."""
    from finmlsec.store.gateway import GatewayDB

    for name in names:
        port = free_port()
        tokens: list[list[str | None]] = [[None] * CLIENTS for _ in range(3)]
        batch_token = None
        if name.startswith("guarded"):
            url = f"sqlite:///{tmp / (name.replace(' ', '_') + '.db')}"
            db = GatewayDB(url)
            tokens = [[db.create_key(org="bank", role="system_user").token
                       for _ in range(CLIENTS)] for _ in range(3)]
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
            cmd += ["--compiled"] if "compiled" in name else []
            cmd += ["--lean"] if name.endswith("lean") else []
        proc = start(cmd, port, tmp / f"{name}.log")
        try:
            results[name] = measure(proc.pid, port, tokens, batch_token, records, batch_body,
                                    seconds, use_wrk, tmp)
            loads.append(load_average())
        finally:
            proc.terminate()
            proc.wait(30)
            if "workers" in name:
                from finmlsec.defences.ratelimit import RedisCounterStore

                RedisCounterStore("redis://127.0.0.1:6379/0",
                                  prefix=f"finmlsec-bench-{os.getpid()}:").clear_prefix()


def _print_table(results: dict[str, dict[str, Any]], seconds: float, use_wrk: bool,
                 loads: list[str]) -> None:
    bares = [n for n in results if n.startswith("bare")]
    base = max((results[n]["top"]["rps"] for n in bares), default=float("nan"))
    closed = "wrk 4 (2 threads)" if use_wrk else python_generator()
    print(f"credit scoring (German Credit, logistic regression pipeline); {os.cpu_count()} cores; "
          f"{seconds:g} s per measurement; load from a separate process over loopback")
    print(f"load generators: maximum rate and batches {closed} (closed loop, 32 and 2 "
          f"connections); half rate {python_generator()} in {OPEN_LOOP_PROCESSES} processes "
          f"(open loop); {CLIENTS} API keys per phase")
    print(f"load average (1, 5, 15 min) before and after each service: {' | '.join(loads)}")
    print("| service | requests/s | p50 ms | p99 ms | at half rate: p50 ms | p99 ms "
          "| batch rows/s | vs best bare | server CPU µs/request | CPU ms/batch | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        t, h = r["top"], r["half"]
        errs = int(t["errors"] + h["errors"] + r["batch_errors"])
        print(f"| {name} | {t['rps']:,.0f} | {t['p50']:.1f} | {t['p99']:.1f} | {h['p50']:.1f} | "
              f"{h['p99']:.1f} | {r['rows_per_s']:,.0f} | {t['rps'] / base:.0%} | "
              f"{t['cpu_us']:,.0f} | {r['batch_cpu_ms']:,.0f} | {errs} |")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
