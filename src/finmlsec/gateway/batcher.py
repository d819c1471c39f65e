"""Opportunistic micro-batching of concurrent predictions.

Scikit-learn pipelines cost about the same for one row as for a hundred, so requests that arrive
while the model is busy are answered together by the next call: no waiting is added when the
server is idle (a lone request runs at once), and under load (several requests waiting) the
batcher lingers ``linger`` seconds for more before calling the model once for all of them.
The model runs in one worker thread, so the event loop keeps accepting requests meanwhile.

Each request submits its input (anything with a length: its number of rows); the model function
gets the list of inputs of one batch and returns one sliceable result for all their rows, of
which each request gets its part.

Example:
    >>> import asyncio, numpy as np
    >>> b = MicroBatcher(lambda inputs: np.concatenate(inputs).astype(float) * 2, max_rows=8)
    >>> async def demo():
    ...     outs = await asyncio.gather(*(b.submit([[i]]) for i in range(5)))
    ...     return [o.tolist() for o in outs]
    >>> asyncio.run(demo())
    [[[0.0]], [[2.0]], [[4.0]], [[6.0]], [[8.0]]]
    >>> b.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sized
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, Self, TypeVar


class Sliceable(Protocol):
    """A batch result: one row per input row; ``r[a:b]`` is the result of rows a to b."""

    def __getitem__(self, s: slice, /) -> Self: ...


R = TypeVar("R", bound=Sliceable)
In = TypeVar("In", bound=Sized)


class MicroBatcher(Generic[In, R]):
    """Run ``fn(inputs) -> result`` (one result row per input row, sliceable, e.g. an array or
    an :class:`~finmlsec.gateway.predictor.Outcome`) on batches of submitted inputs."""

    def __init__(self, fn: Callable[[list[In]], R], *, max_rows: int = 256,
                 linger: float = 0.0) -> None:
        self.fn = fn
        self.max_rows = max_rows
        self.linger = linger
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[tuple[In, asyncio.Future[R]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.calls = 0
        self.rows = 0

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The model thread (created on first use, again after :meth:`close`)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finmlsec-model")
        return self._executor

    async def submit(self, rows: In) -> R:
        """The results for the input ``rows``, computed in a batch with whatever else is
        waiting."""
        loop = asyncio.get_running_loop()
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue))
        fut: asyncio.Future[R] = loop.create_future()
        await self._queue.put((rows, fut))
        return await fut

    async def run_alone(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the model thread (no batching with others): a large input,
        or other long work that should not compete with the model for the GIL."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _run(self, q: asyncio.Queue[tuple[In, asyncio.Future[R]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await q.get()]
            n = len(items[0][0])
            for attempt in range(2):
                while n < self.max_rows and not q.empty():
                    item = q.get_nowait()
                    items.append(item)
                    n += len(item[0])
                if attempt or n >= self.max_rows or self.linger <= 0 or len(items) < 2:
                    break
                await asyncio.sleep(self.linger)  # under load, let the batch fill a little
            inputs = [rs for rs, _ in items]
            try:
                out = await loop.run_in_executor(self.executor, self.fn, inputs)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.calls += 1
            self.rows += n
            start = 0
            for rs, fut in items:
                if not fut.done():
                    fut.set_result(out[start:start + len(rs)])
                start += len(rs)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
