"""The scan's progress display: what is running, how much is done, and the time left.

On a terminal it is a live Rich display (a bar with the estimate of the time left, and one line per
unit in flight); otherwise (CI logs, pipes) one plain line per finished unit. Output goes to
stderr so that ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from finmlsec.scan.plan import Unit


def _fmt(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ScanProgress:
    """Receives the runner's events; ``enabled=False`` makes it silent."""

    def __init__(self, *, enabled: bool = True, slots: int = 1) -> None:
        self.enabled = enabled
        self.slots = max(1, slots)
        self.running: dict[str, float] = {}
        self.total = 0
        self.done = 0
        self.durations: list[float] = []
        self._live: Any = None
        self._t0 = time.monotonic()

    def eta(self) -> float | None:
        """Seconds left: mean unit time so far x units left / parallel slots."""
        if not self.durations:
            return None
        left = self.total - self.done
        mean = sum(self.durations) / len(self.durations)
        return mean * left / self.slots

    def start(self, total: int, already_done: int) -> None:
        self.total, self.done = total, already_done
        self._t0 = time.monotonic()
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(), console=Console(stderr=True), refresh_per_second=4,
                              transient=False)
            self._live.start()
        elif self.enabled and already_done:
            print(f"resuming: {already_done} of {total} units already finished", file=sys.stderr)

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        eta = self.eta()
        table.add_row(
            ProgressBar(total=max(self.total, 1), completed=self.done, width=40),
            f"{self.done}/{self.total} units",
            f"elapsed {_fmt(time.monotonic() - self._t0)}",
            f"ETA {_fmt(eta) if eta is not None else '?'}",
        )
        now = time.monotonic()
        for uid, t in self.running.items():
            table.add_row("  running", uid, _fmt(now - t), "")
        return table

    def unit_started(self, unit: Unit) -> None:
        self.running[unit.id] = time.monotonic()
        self.tick()

    def unit_done(self, unit: Unit, outcome: dict[str, Any]) -> None:
        t = self.running.pop(unit.id, time.monotonic())
        self.done += 1
        self.durations.append(outcome.get("seconds") or time.monotonic() - t)
        if self.enabled and self._live is None:
            eta = self.eta()
            r = outcome.get("result") or {}
            succ = f" success={r['success']:.3f}" if r.get("success") is not None else ""
            print(
                f"[{self.done}/{self.total}] {outcome.get('status')} {unit.id}{succ} "
                f"({_fmt(outcome.get('seconds') or 0)}; ETA {_fmt(eta) if eta else '?'})",
                file=sys.stderr, flush=True,
            )
        self.tick()

    def tick(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
