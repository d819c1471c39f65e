"""Spreading the independent pieces of one unit of work: reference and shadow models, teachers,
ensemble members.

An attack or a defence that trains several models independently of each other calls
:func:`task_map` instead of a loop; where the pieces run is decided by whoever runs the unit:
one after another in this process by default (a serial scan; a process pool, whose units already
fill the cores), or as tasks of their own on a Dask cluster (the scan's Dask executor installs
its map with :func:`mapping_with` around each unit). ``fn`` must be a module-level function
(sent by reference) that depends only on its arguments: the results, in the order of ``items``,
are then identical wherever the pieces ran. Inside :func:`recording`, every map also records
how long each piece took (wall and CPU time) and the map's wall time (the scan keeps it with the unit's outcome: the
task graph from which ``bench/bench_dask.py`` bounds the run time on more workers).

Example:
    >>> def add(shared, item):
    ...     return shared + item
    >>> task_map(add, [1, 2, 3], shared=10)
    [11, 12, 13]
    >>> with mapping_with(lambda fn, items, shared, progress: ["elsewhere"] * len(items)):
    ...     task_map(add, [1, 2], shared=10)
    ['elsewhere', 'elsewhere']
    >>> with recording() as ledger:
    ...     _ = task_map(add, [1, 2], shared=0)
    >>> ledger[0]["fn"], len(ledger[0]["seconds"])
    ('add', 2)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

#: ``mapper(fn, items, shared, progress)``: ``[fn(shared, item) for item in items]``, in order,
#: calling ``progress(done)`` (if given) as pieces finish.
Mapper = Callable[[Callable[[Any, Any], Any], Sequence[Any], Any, "Callable[[int], None] | None"],
                  list[Any]]


def serial_map(fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any,
               progress: Callable[[int], None] | None = None) -> list[Any]:
    """The pieces one after another in this process."""
    out = []
    for item in items:
        out.append(fn(shared, item))
        if progress is not None:
            progress(len(out))
    return out


_MAPPER: ContextVar[Mapper | None] = ContextVar("finmlsec_task_mapper", default=None)


_LEDGER: ContextVar[list[dict[str, Any]] | None] = ContextVar("finmlsec_task_ledger",
                                                               default=None)


class _Timed:
    """``fn`` returning ``(result, wall seconds, CPU seconds of its thread)`` (a class, so that
    it pickles by reference)."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def __call__(self, shared: Any, item: Any) -> tuple[Any, float, float]:
        t0, c0 = time.perf_counter(), time.thread_time()
        out = self.fn(shared, item)
        return out, round(time.perf_counter() - t0, 4), round(time.thread_time() - c0, 4)


def task_map(fn: Callable[[Any, Any], Any], items: Iterable[Any], shared: Any = None,
             progress: Callable[[int], None] | None = None) -> list[Any]:
    """``[fn(shared, item) for item in items]`` with the mapper in place (:func:`serial_map`
    unless one was installed); ``shared`` is sent once, not once per item."""
    mapper = _MAPPER.get() or serial_map
    ledger = _LEDGER.get()
    if ledger is None:
        return mapper(fn, list(items), shared, progress)
    t0 = time.perf_counter()
    timed = mapper(_Timed(fn), list(items), shared, progress)
    ledger.append({"fn": getattr(fn, "__name__", "piece"), "seconds": [w for _, w, _ in timed],
                   "cpu": [c for _, _, c in timed], "inline": mapper is serial_map,
                   "wall": round(time.perf_counter() - t0, 4)})
    return [r for r, _, _ in timed]


@contextlib.contextmanager
def recording() -> Iterator[list[dict[str, Any]]]:
    """Record the maps made inside the block: one ``{"fn", "seconds": [wall time per piece],
    "cpu": [CPU time of each piece's thread], "inline": ran in the caller's thread, "wall"}``
    per :func:`task_map` call."""
    ledger: list[dict[str, Any]] = []
    token = _LEDGER.set(ledger)
    try:
        yield ledger
    finally:
        _LEDGER.reset(token)


@contextlib.contextmanager
def mapping_with(mapper: Mapper | None) -> Iterator[None]:
    """Run :func:`task_map` calls made inside the block with ``mapper``."""
    token = _MAPPER.set(mapper)
    try:
        yield
    finally:
        _MAPPER.reset(token)
