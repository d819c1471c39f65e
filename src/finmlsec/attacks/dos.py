"""Denial of service on the model operator: a bounded, stepped load generator (``dos.load``).

Sends requests to an HTTP endpoint on a loopback address at a stepped rate (open loop: requests
leave on schedule whether or not earlier ones have returned, so queueing shows up as latency) and
reports, at each step, the throughput of successful answers, latency percentiles and errors
(failed connections, timeouts, HTTP 4xx/5xx; 429 "too many requests" counted apart, since that is
a rate limiter doing its job). The headline ``success`` is the worst step's share of requests not
served within ``slo_ms``.

Safety: only loopback targets (127.0.0.0/8, ::1, ``localhost``) are accepted, and the run is
bounded by ``max_requests`` and ``max_seconds`` whatever the rates say.

Example:
    >>> require_loopback("http://127.0.0.1:8000/v1/predict")
    '127.0.0.1'
    >>> require_loopback("http://10.0.0.1/predict")
    Traceback (most recent call last):
    ...
    finmlsec.errors.ConfigError: dos.load sends traffic to loopback addresses only (127.0.0.0/8, ::1, localhost); got host '10.0.0.1' in 'http://10.0.0.1/predict'; run the target on this machine and point at 127.0.0.1
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np

from finmlsec.attacks.base import ATTACKS, INPUT_KINDS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.evasion_common import check_positive
from finmlsec.errors import ConfigError


def require_loopback(url: str) -> str:
    """Return the host of ``url`` if it is a loopback address; raise ConfigError otherwise."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"dos.load needs an http:// or https:// URL; got {url!r}; e.g. "
            "http://127.0.0.1:8000/v1/predict"
        )
    ok = host == "localhost"
    if not ok:
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
    if not ok:
        raise ConfigError(
            "dos.load sends traffic to loopback addresses only (127.0.0.0/8, ::1, localhost); got "
            f"host {host!r} in {url!r}; run the target on this machine and point at 127.0.0.1"
        )
    return host


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000) if values else float("nan")


@ATTACKS.register("dos.load")
class LoadTest(Attack):
    """Stepped, bounded load against a loopback HTTP endpoint (``data.endpoint``).

    Parameters: ``rates`` (requests per second, one step each), ``step_seconds``,
    ``max_requests`` and ``max_seconds`` (hard bounds on the whole run), ``concurrency``
    (connections in flight at most), ``timeout`` (per request, seconds), ``method``, ``payload``
    (JSON body for POST; by default the first victim record as ``{"records": [...]}``),
    ``headers``, ``slo_ms`` (a request slower than this counts as not served).

    Example:
        >>> LoadTest(rates=(5.0, 10.0), step_seconds=0.5).max_requests
        500
    """

    name: ClassVar[str] = "dos.load"
    threat: ClassVar[str] = "dos_model_operator"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"endpoint"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0029", "AML.T0034", "AML.T0046")
    owasp: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str] = "Stepped load on a loopback endpoint: throughput, latency, errors"
    input_kinds: ClassVar[tuple[str, ...]] = INPUT_KINDS
    cost_rank: ClassVar[int] = 1
    strength_rank: ClassVar[int] = 1

    rates: tuple[float, ...] = (10.0, 20.0, 40.0)
    step_seconds: float = 1.0
    max_requests: int = 500
    max_seconds: float = 30.0
    concurrency: int = 32
    timeout: float = 2.0
    method: str = "POST"
    payload: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    slo_ms: float = 1000.0

    def _validate(self) -> None:
        o = type(self).__name__
        if not self.rates or not all(isinstance(r, int | float) and 0 < r <= 10_000
                                     for r in self.rates):
            raise ConfigError(
                f"The 'rates' parameter of {o} must be a non-empty list of request rates in "
                f"(0, 10000] per second. Got {self.rates!r} instead."
            )
        check_positive(o, "step_seconds", self.step_seconds, hi=600)
        check_positive(o, "max_requests", self.max_requests, integer=True, hi=100_000)
        check_positive(o, "max_seconds", self.max_seconds, hi=3600)
        check_positive(o, "concurrency", self.concurrency, integer=True, hi=1024)
        check_positive(o, "timeout", self.timeout, hi=120)
        check_positive(o, "slo_ms", self.slo_ms)
        if self.method.upper() not in ("GET", "POST"):
            raise ConfigError(
                f"The 'method' parameter of {o} must be 'GET' or 'POST'. Got {self.method!r} "
                "instead."
            )

    def _attack(self, oracle: Any, data: AttackData, meter: Meter) -> Outcome:
        assert data.endpoint is not None
        require_loopback(data.endpoint)
        body = self.payload
        if body is None and self.method.upper() == "POST" and data.victims is not None:
            X = data.victims.X
            rec = X.head(1).to_dict("records") if hasattr(X, "to_dict") else [list(X[0])]
            body = {"records": [{k: (v.item() if hasattr(v, "item") else v)
                                 for k, v in r.items()} if isinstance(r, dict) else r
                                for r in rec]}
        try:
            asyncio.get_running_loop()
            in_loop = True
        except RuntimeError:
            in_loop = False
        if in_loop:  # called from async code: run our own loop in a worker thread
            with ThreadPoolExecutor(1) as pool:
                steps = pool.submit(asyncio.run, self._load(data.endpoint, body)).result()
        else:
            steps = asyncio.run(self._load(data.endpoint, body))
        return self._result(steps)

    async def _load(self, url: str, body: Any) -> list[dict[str, Any]]:
        import httpx

        limits = httpx.Limits(max_connections=self.concurrency,
                              max_keepalive_connections=self.concurrency)
        deadline = time.perf_counter() + self.max_seconds
        sent_total = 0
        steps: list[dict[str, Any]] = []
        sem = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=self.timeout,
                                     headers=self.headers or {}) as client:

            async def one(when: float) -> tuple[str, float]:
                async with sem:
                    try:
                        if self.method.upper() == "GET":
                            r = await client.get(url)
                        else:
                            r = await client.post(url, json=body)
                        kind = "ok" if r.status_code < 400 else (
                            "limited" if r.status_code == 429 else "error")
                    except (httpx.HTTPError, OSError):
                        kind = "error"
                return kind, time.perf_counter() - when

            for rate in self.rates:
                n = min(int(round(rate * self.step_seconds)), self.max_requests - sent_total)
                if n <= 0 or time.perf_counter() >= deadline:
                    break
                start = time.perf_counter()
                tasks = []
                for k in range(n):
                    when = start + k / rate
                    if when >= deadline:
                        break
                    delay = when - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one(when)))
                sent_total += len(tasks)
                left = max(0.0, deadline - time.perf_counter()) + self.timeout
                done, pending = await asyncio.wait(tasks, timeout=left) if tasks else (set(), set())
                for p in pending:
                    p.cancel()
                outcomes = [t.result() for t in tasks if t in done and not t.cancelled()]
                elapsed = time.perf_counter() - start
                steps.append({"rate": float(rate), "sent": len(tasks), "outcomes": outcomes,
                              "unfinished": len(pending), "elapsed": elapsed})
        return steps

    def _result(self, steps: list[dict[str, Any]]) -> Outcome:
        m: dict[str, float] = {}
        curve: dict[str, list[float]] = {k: [] for k in (
            "rate", "throughput", "p50_ms", "p95_ms", "p99_ms", "errors", "limited")}
        worst = 0.0
        total = 0
        for i, s in enumerate(steps):
            ok_lat = [lat for kind, lat in s["outcomes"] if kind == "ok"]
            all_lat = [lat for _, lat in s["outcomes"]]
            errors = sum(kind == "error" for kind, _ in s["outcomes"]) + s["unfinished"]
            limited = sum(kind == "limited" for kind, _ in s["outcomes"])
            served = sum(lat * 1000 <= self.slo_ms for lat in ok_lat)
            thr = len(ok_lat) / s["elapsed"] if s["elapsed"] > 0 else 0.0
            denied = 1.0 - served / s["sent"] if s["sent"] else 0.0
            worst = max(worst, denied)
            total += s["sent"]
            vals = {"rate": s["rate"], "throughput": thr, "p50_ms": _percentile(all_lat, 50),
                    "p95_ms": _percentile(all_lat, 95), "p99_ms": _percentile(all_lat, 99),
                    "errors": float(errors), "limited": float(limited)}
            for k, v in vals.items():
                curve[k].append(v)
                m[f"step{i}_{k}"] = v
            m[f"step{i}_sent"] = float(s["sent"])
            m[f"step{i}_not_served"] = denied
        m["requests"] = float(total)
        m["steps"] = float(len(steps))
        m["max_throughput"] = max(curve["throughput"], default=0.0)
        m["worst_not_served"] = worst
        return Outcome(success=worst, metrics=m, curves={"load": curve}, queries=total)
