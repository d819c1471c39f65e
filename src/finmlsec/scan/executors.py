"""Where units of work run: in this process, in a local process pool, or on a Dask cluster.

Every executor calls the same :func:`~finmlsec.scan.work.execute_unit` with the same frozen
values, and every unit carries its own seed, so results do not depend on the executor. The scan's
bundle (:mod:`finmlsec.scan.bundle`: the spec and its files) reaches the workers through the
executor (:meth:`ship`): kept in this process (serial), handed to each pool process once when it
starts, scattered once to every Dask worker; no worker reads the spec's directory. At most
``slots`` units are in flight at once, so the units in flight are the units running (the progress
display shows them).

Example:
    >>> from finmlsec.scan.executors import make_executor
    >>> ex = make_executor("serial")
    >>> ex.slots
    1
    >>> make_executor("ray://x")
    Traceback (most recent call last):
    ...
    finmlsec.errors.ConfigError: The 'executor' parameter of scan must be 'process', 'serial' or 'dask://HOST:PORT'. Got 'ray://x' instead.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from finmlsec.errors import ConfigError
from finmlsec.scan.plan import Unit
from finmlsec.scan.work import ScanContext, execute_unit, keep_bundle
from finmlsec.tasks import mapping_with, serial_map


def _crashed(unit: Unit, why: str) -> dict[str, Any]:
    return {"unit": unit.id, "status": "failed", "result": None, "utility": None,
            "error": why, "worker": None, "seconds": None}


class SerialExecutor:
    """Runs units one after the other in this process (debugging; small scans)."""

    slots = 1

    def ship(self, payload: bytes) -> None:
        keep_bundle(payload)

    def submit(self, ctx: ScanContext, unit: Unit) -> Any:
        fut: cf.Future[dict[str, Any]] = cf.Future()
        fut.set_result(execute_unit(ctx, unit))
        return fut

    def wait_any(self, futures: Iterable[Any], timeout: float) -> set[Any]:
        return set(futures)

    def outcome(self, fut: Any, unit: Unit) -> dict[str, Any]:
        return dict(fut.result())

    def close(self) -> None:
        return None


def _init_worker(bundles: tuple[bytes, ...] = ()) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for payload in bundles:
        keep_bundle(payload)


def _start_method(fork_ok: bool) -> str:
    """``fork`` where it is safe (POSIX, and the parent ran no torch model: workers then inherit
    the scenario the planner loaded, with no start-up cost); ``forkserver`` or ``spawn``
    otherwise."""
    methods = multiprocessing.get_all_start_methods()
    if fork_ok and "fork" in methods:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


class ProcessExecutor:
    """A local pool of worker processes (the default); a crashed worker fails only the units it
    held, and the pool is rebuilt for the rest."""

    def __init__(self, workers: int | None = None) -> None:
        self.slots = max(1, workers or min(os.cpu_count() or 1, 4))
        self._pool: cf.ProcessPoolExecutor | None = None
        #: set by the runner: whether forking this process is safe (no torch model has run)
        self.fork_ok = False
        self._bundles: tuple[bytes, ...] = ()
        self._bundle_key: str | None = None

    def ship(self, payload: bytes) -> None:
        """Make the bundle of the scan about to run available to the workers: forked workers
        inherit it, others get it when they start. One scan runs at a time, so a pool holds
        only the current scan's bundle (a new bundle restarts the pool)."""
        key = keep_bundle(payload)
        if key != self._bundle_key:
            self._bundle_key, self._bundles = key, (payload,)
            self.close()

    def _ensure(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            mp = multiprocessing.get_context(_start_method(self.fork_ok))
            if mp.get_start_method() == "forkserver":
                mp.set_forkserver_preload(["finmlsec.scan.work"])
            self._pool = cf.ProcessPoolExecutor(
                self.slots, mp_context=mp, initializer=_init_worker,
                initargs=(() if mp.get_start_method() == "fork" else self._bundles,))
        return self._pool

    def submit(self, ctx: ScanContext, unit: Unit) -> Any:
        try:
            return self._ensure().submit(execute_unit, ctx, unit)
        except cf.BrokenExecutor:
            self._pool = None
            return self._ensure().submit(execute_unit, ctx, unit)

    def wait_any(self, futures: Iterable[Any], timeout: float) -> set[Any]:
        done, _ = cf.wait(list(futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return set(done)

    def outcome(self, fut: Any, unit: Unit) -> dict[str, Any]:
        try:
            return dict(fut.result())
        except cf.BrokenExecutor as exc:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            return _crashed(unit, f"worker process died ({type(exc).__name__}); resume to retry")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def dask_map(fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any,
             progress: Callable[[int], None] | None = None) -> list[Any]:
    """:func:`finmlsec.tasks.task_map` on a Dask worker: one task per item, ``shared`` scattered
    once; the unit's task leaves the worker's thread pool while it waits (``worker_client``), so
    its pieces run in the slot it held and on every other worker. Results come back in order."""
    from distributed import as_completed, worker_client

    if len(items) < 2:
        return serial_map(fn, items, shared, progress)
    with worker_client() as client:
        [ref] = client.scatter([shared], hash=False)
        futures = client.map(fn, [ref] * len(items), items, pure=False)
        for done, _ in enumerate(as_completed(futures), start=1):
            if progress is not None:
                progress(done)
        return list(client.gather(futures))


def spread_unit(ctx: ScanContext, unit: Unit, bundle: bytes | None = None) -> dict[str, Any]:
    """:func:`~finmlsec.scan.work.execute_unit` on a Dask worker, the unit's independent pieces
    (:func:`finmlsec.tasks.task_map`) spread as tasks of their own (:func:`dask_map`)."""
    with mapping_with(dask_map):
        return execute_unit(ctx, unit, bundle)


class DaskExecutor:
    """Units as tasks on a Dask distributed cluster (``dask://HOST:PORT``); a unit's independent
    pieces (reference models, ...) become tasks of their own (:func:`spread_unit`)."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - optional dependency
            raise ConfigError(
                "--executor dask://... needs Dask distributed; install finmlsec[dask]"
            ) from None
        try:
            self.client = Client(address, timeout=15)
        except OSError as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {address!r}: {exc}; start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS`"
            ) from None
        self.slots = max(1, sum(self.client.nthreads().values()))
        self._bundles: dict[str, Any] = {}

    def ship(self, payload: bytes) -> None:
        """Scatter the bundle to every worker once (tasks name it; workers joining later fetch
        it from a peer)."""
        key = keep_bundle(payload)
        if key not in self._bundles:
            self._bundles[key] = self.client.scatter(payload, broadcast=True, hash=True)

    def submit(self, ctx: ScanContext, unit: Unit) -> Any:
        bundle = self._bundles.get(ctx.bundle) if ctx.bundle else None
        return self.client.submit(spread_unit, ctx, unit, bundle, pure=False)

    def wait_any(self, futures: Iterable[Any], timeout: float) -> set[Any]:
        from distributed import wait

        futs = list(futures)
        try:
            done, _ = wait(futs, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set()
        return set(done)

    def outcome(self, fut: Any, unit: Unit) -> dict[str, Any]:
        try:
            return dict(fut.result())
        except Exception as exc:  # noqa: BLE001 - a lost worker fails the unit, not the scan
            return _crashed(unit, f"Dask task failed ({type(exc).__name__}: {exc}); resume to retry")

    def close(self) -> None:
        self.client.close()


Executor = SerialExecutor | ProcessExecutor | DaskExecutor


def make_executor(spec: str = "process", workers: int | None = None) -> Executor:
    """``process`` (local pool, default), ``serial`` or ``dask://HOST:PORT``."""
    if spec == "serial":
        return SerialExecutor()
    if spec in ("process", "local", ""):
        return ProcessExecutor(workers)
    if spec.startswith("dask://"):
        return DaskExecutor("tcp://" + spec.removeprefix("dask://"))
    raise ConfigError(
        "The 'executor' parameter of scan must be 'process', 'serial' or 'dask://HOST:PORT'. "
        f"Got {spec!r} instead."
    )


def run_units(
    executor: Executor,
    ctx: ScanContext,
    units: Iterable[Unit],
    *,
    on_start: Callable[[Unit], None],
    on_done: Callable[[Unit, dict[str, Any]], None],
    on_tick: Callable[[], None] = lambda: None,
) -> None:
    """Run ``units`` with at most ``executor.slots`` in flight, reporting starts and outcomes."""
    pending = deque(units)
    inflight: dict[Any, Unit] = {}
    while pending or inflight:
        while pending and len(inflight) < executor.slots:
            unit = pending.popleft()
            on_start(unit)
            inflight[executor.submit(ctx, unit)] = unit
        for fut in executor.wait_any(inflight, timeout=0.5):
            unit = inflight.pop(fut)
            on_done(unit, executor.outcome(fut, unit))
        on_tick()
