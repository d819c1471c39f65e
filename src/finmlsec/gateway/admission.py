"""Admission before work, per server process: what is decided from the connection and the headers
alone, before a request's body is read or parsed.

- :class:`InFlight`: at most ``limit`` requests of one API key at a time (429 beyond), so one
  key's large batches cannot occupy the model thread and the parser while others wait, and at
  most ``total`` requests of all keys (503 beyond, with ``Retry-After``), so a burst from many
  keys queues no more work than the process can answer in time;
- :class:`AddressThrottle`: requests without a valid key are limited per client address
  (``per_minute`` refusals per minute, 429 beyond, without a database look-up), and are not
  written to the audit log one by one: :meth:`AddressThrottle.failed` counts them per address
  digest, action and status, and :meth:`AddressThrottle.take` hands the counts of each interval to one aggregated
  audit entry. The address is kept only as a keyed digest. Both maps are bounded (the least
  recently seen addresses are forgotten first; counts beyond the bound go to one "other" row).

Example:
    >>> f = InFlight(limit=1)
    >>> f.enter("k1"), f.enter("k1"), f.enter("k2")
    (True, False, True)
    >>> f.leave("k1"); f.enter("k1")
    True
    >>> t = AddressThrottle(per_minute=2, digest=lambda a: "d-" + a)
    >>> t.failed("10.0.0.1", "predict", 401, now=1.0); t.refused("10.0.0.1", now=1.0)
    False
    >>> t.failed("10.0.0.1", "predict", 401, now=2.0); t.refused("10.0.0.1", now=2.0)
    True
    >>> t.failed("10.0.0.1", "predict", 429, now=3.0); t.due(now=30.0), t.due(now=61.0)
    (False, True)
    >>> t.take(now=61.0)["counts"]
    [{'client': 'd-10.0.0.1', 'action': 'predict', 'status': 401, 'n': 2}, {'client': 'd-10.0.0.1', 'action': 'predict', 'status': 429, 'n': 1}]
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class InFlight:
    """Concurrent requests per API key in this process, and of all keys together (``total``;
    None: no limit); see the module docstring."""

    def __init__(self, limit: int, total: int | None = None) -> None:
        self.limit = limit
        self.total = total
        self._n: dict[str, int] = {}
        self._all = 0

    def full(self) -> bool:
        """Whether the process holds ``total`` requests already."""
        return self.total is not None and self._all >= self.total

    def enter(self, key_id: str) -> bool:
        """Count a request in; False (nothing counted) when the key is at its limit."""
        n = self._n.get(key_id, 0)
        if n >= self.limit:
            return False
        self._n[key_id] = n + 1
        self._all += 1
        return True

    def leave(self, key_id: str) -> None:
        n = self._n.get(key_id, 0) - 1
        if key_id in self._n:
            self._all -= 1
        if n > 0:
            self._n[key_id] = n
        else:
            self._n.pop(key_id, None)


class AddressThrottle:
    """Per-address limit and aggregated counts of unauthenticated requests."""

    def __init__(self, *, per_minute: int, digest: Callable[[str], str], interval: float = 60.0,
                 max_addresses: int = 10_000, max_rows: int = 1_000) -> None:
        self.per_minute = per_minute
        self.digest = digest
        self.interval = interval
        self.max_addresses = max_addresses
        self.max_rows = max_rows
        self._windows: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._counts: dict[tuple[str, str, int], int] = {}
        self._since: float | None = None
        self._lock = threading.Lock()

    def refused(self, address: str, *, now: float) -> bool:
        """Whether ``address`` has used up its unauthenticated requests this minute."""
        held = self._windows.get(address)
        return held is not None and held[0] == math.floor(now / 60.0) and held[1] >= self.per_minute

    def failed(self, address: str, action: str, status: int, *, now: float) -> None:
        """Count one refused unauthenticated request from ``address`` (in its minute, and for
        the next aggregated audit entry)."""
        slot = math.floor(now / 60.0)
        key = (self.digest(address), action, status)
        with self._lock:
            held = self._windows.get(address)
            used = held[1] if held is not None and held[0] == slot else 0
            self._windows[address] = (slot, used + 1)
            self._windows.move_to_end(address)
            while len(self._windows) > self.max_addresses:
                self._windows.popitem(last=False)
            if self._since is None:
                self._since = now
            if key not in self._counts and len(self._counts) >= self.max_rows:
                key = ("other", action, status)
            self._counts[key] = self._counts.get(key, 0) + 1

    def due(self, now: float) -> bool:
        """Whether counts are waiting and their interval has passed."""
        since = self._since
        return since is not None and now - since >= self.interval

    def take(self, *, now: float) -> dict[str, Any] | None:
        """The counts since the last call, as the detail of one audit entry (None if none)."""
        with self._lock:
            counts, self._counts = self._counts, {}
            since, self._since = self._since, None
        if not counts:
            return None
        return {"since": since, "until": now, "requests": sum(counts.values()),
                "counts": [{"client": c, "action": a, "status": s, "n": n}
                           for (c, a, s), n in counts.items()]}
