"""The scan's progress display: what is running, how much is done, and the time left.

On a terminal it is a live Rich display (a bar with the estimate of the time left, and one line per
unit in flight); otherwise (CI logs, pipes) one plain line per finished unit. Output goes to
stderr so that ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from finmlsec.scan.plan import Unit

#: How many times longer a unit under a defence of each stage takes than the same attack
#: undefended, before any such unit has finished: output and gateway defences wrap the trained
#: model; input and feedback screens fit a detector; training-data and training defences
#: retrain the model, several times for some (bagging, PATE teachers, adversarial training).
#: Measured on quick scans of a 2,000-row loan system (the undefended units finish first and are
#: the cheap ones: their mean alone put the first estimate 4-10 times too low).
STAGE_FACTOR = {"output": 1.5, "gateway": 1.5, "input": 3.0, "feedback": 3.0,
                "training_data": 6.0, "training": 8.0}


def _gmean(values: list[float]) -> float:
    logs = [math.log(max(v, 1e-3)) for v in values]
    return math.exp(sum(logs) / len(logs))


class CostModel:
    """Predicts each unit's seconds from the units finished so far.

    An undefended unit costs what the same attack cost undefended (any seed), or, before that,
    the geometric mean of the undefended units finished, doubled per step of ``cost_rank``
    above their mean rank. A defended unit costs its attack's undefended time times one factor
    per defence: the defence's measured ratio once a unit under it alone has finished, before
    that :data:`STAGE_FACTOR` of its stage corrected by how the finished defended units compared
    with their prediction (a geometric mean shrunk towards no correction).

    Example:
        >>> from finmlsec.scan.plan import Unit
        >>> a = Unit(id="a", threat="t", via="v", attack="extraction.equation")
        >>> b = a.model_copy(update={"id": "b", "defences": ("robust.bagging",)})
        >>> m = CostModel([a, b])
        >>> m.predict(b) is None
        True
        >>> m.record(a, 2.0)
        >>> m.predict(b)
        16.0
    """

    def __init__(self, units: list[Unit] | tuple[Unit, ...] = ()) -> None:
        self.units = {u.id: u for u in units}
        self.seconds: dict[str, float] = {}

    def record(self, unit: Unit, seconds: float) -> None:
        self.units.setdefault(unit.id, unit)
        self.seconds[unit.id] = float(seconds)

    @staticmethod
    def _key(u: Unit) -> tuple[str, str, str]:
        return (u.threat, u.via, u.attack)

    @staticmethod
    def _rank(attack: str) -> int:
        from finmlsec.attacks import ATTACKS

        try:
            return int(getattr(ATTACKS.get(attack), "cost_rank", 1))
        except Exception:  # noqa: BLE001 - an unknown attack ranks as a cheap one
            return 1

    @staticmethod
    def _stage(defence: str) -> str:
        from finmlsec.defences import DEFENCES

        try:
            return str(getattr(DEFENCES.get(defence), "stage", "training"))
        except Exception:  # noqa: BLE001 - an unknown defence counts as retraining
            return "training"

    def _base(self, u: Unit) -> float | None:
        done = [(self.units[i], s) for i, s in self.seconds.items() if not self.units[i].defences]
        same = [s for v, s in done if self._key(v) == self._key(u)]
        if same:
            return sum(same) / len(same)
        if not done:
            return None
        ranks = [self._rank(v.attack) for v, _ in done]
        return _gmean([s for _, s in done]) * 2.0 ** (
            self._rank(u.attack) - sum(ranks) / len(ranks))

    def _factors(self) -> tuple[dict[str, float], float]:
        """Measured ratios per defence, and the correction of the stage priors."""
        ratios: dict[str, list[float]] = {}
        errors: list[float] = []
        for i, s in self.seconds.items():
            u = self.units[i]
            if not u.defences:
                continue
            same = [t for j, t in self.seconds.items()
                    if not self.units[j].defences and self._key(self.units[j]) == self._key(u)]
            if not same:
                continue
            ratio = s / max(sum(same) / len(same), 1e-3)
            prior = math.prod(STAGE_FACTOR.get(self._stage(d), 8.0) for d in u.defences)
            errors.append(ratio / prior)
            if len(u.defences) == 1:
                ratios.setdefault(u.defences[0], []).append(ratio)
        # the correction of the priors is shrunk towards 1 (three pseudo-units at the prior):
        # one defence far off its stage's prior says little about the others
        shrunk = math.exp(sum(math.log(max(e, 1e-3)) for e in errors) / (len(errors) + 3))
        return {d: _gmean(r) for d, r in ratios.items()}, shrunk

    def predict(self, u: Unit) -> float | None:
        base = self._base(u)
        if base is None or not u.defences:
            return base
        measured, correction = self._factors()
        factor = math.prod(measured.get(d, STAGE_FACTOR.get(self._stage(d), 8.0) * correction)
                           for d in u.defences)
        return base * factor

    def remaining(self, pending: list[Unit], running: dict[str, float] | None = None,
                  slots: int = 1) -> float | None:
        """Seconds left for ``pending`` units (not started) and ``running`` ones (id: seconds
        they have run), spread over ``slots``; None before any unit finished."""
        total = 0.0
        for u in pending:
            p = self.predict(u)
            if p is None:
                return None
            total += p
        for uid, elapsed in (running or {}).items():
            unit = self.units.get(uid)
            p = self.predict(unit) if unit is not None else None
            if p is None:
                return None
            total += max(p - elapsed, 0.0)
        return total / max(1, slots)


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
        self.costs = CostModel()
        self.pending: dict[str, Unit] = {}

    def eta(self) -> float | None:
        """Seconds left: the units not finished as :class:`CostModel` predicts them from the
        finished ones, over the parallel slots; without a plan, the mean unit time so far times
        the units left."""
        if not self.durations:
            return None
        if self.pending or self.running:
            now = time.monotonic()
            left = self.costs.remaining(
                [u for uid, u in self.pending.items() if uid not in self.running],
                {uid: now - t for uid, t in self.running.items()}, self.slots)
            if left is not None:
                return left
        left_units = self.total - self.done
        mean = sum(self.durations) / len(self.durations)
        return mean * left_units / self.slots

    def start(self, total: int, already_done: int, todo: list[Unit] | None = None) -> None:
        """``todo``: the units still to run (their costs are predicted for the estimate)."""
        self.total, self.done = total, already_done
        self.pending = {u.id: u for u in todo or ()}
        self.costs = CostModel(list(todo or ()))
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
        self.pending.pop(unit.id, None)
        self.costs.record(unit, self.durations[-1])
        if self.enabled and self._live is None:
            eta = self.eta()
            r = outcome.get("result") or {}
            succ = f" success={r['success']:.3f}" if r.get("success") is not None else ""
            print(
                f"[{self.done}/{self.total}] {outcome.get('status')} {unit.id}{succ} "
                f"({_fmt(outcome.get('seconds') or 0)}; ETA {_fmt(eta) if eta is not None else '?'})",
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
