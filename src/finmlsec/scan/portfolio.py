"""A portfolio: every system of a model inventory scanned under one id, each resumable.

:func:`start` stores a portfolio (or finds the unfinished one of the same inventory, to resume);
:func:`run` scans its systems one after another: a system whose run finished is not scanned
again, a system whose run stopped resumes it (finished units are kept), a system not planned yet
is planned. A system that cannot be planned or run (its model does not load, a bug) is recorded
as ``error`` with the reason and the others go on: an error is never a measured risk.
:func:`finmlsec.report.portfolio.document` builds its report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from finmlsec.errors import FinmlsecError
from finmlsec.scan.inventory import Inventory
from finmlsec.store import PortfolioInfo, Store


def start(store: Store, inventory: Inventory, *, resume: bool = True) -> tuple[PortfolioInfo, bool]:
    """The portfolio to run for ``inventory``: the newest unfinished one of the same inventory
    and options when ``resume``, else a new one; and whether it was resumed."""
    inv_path = str(inventory.path)
    if resume:
        found = store.open_portfolio(inv_path, inventory.digest)
        if found is not None:
            return found, True
    pid = store.create_portfolio(
        inventory_path=inv_path, name=inventory.name, digest=inventory.digest, options={},
        systems=[{"name": s.id, "spec_path": s.spec_path, "entry": s.entry()}
                 for s in inventory.systems])
    return store.portfolio(pid), False


@dataclass(frozen=True)
class SystemResult:
    """What happened to one system in this invocation."""

    id: str
    status: str
    run_id: str | None
    error: str | None = None
    resumed: bool = False


def _error_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, FinmlsecError) else f"{type(exc).__name__}: {text}"


def run(store: Store, portfolio_id: str, *, executor: str = "process",
        workers: int | None = None, progress: bool = True,
        echo: Callable[[str], None] = lambda _m: None,
        describe: Callable[[BaseException], str] = _error_line) -> list[SystemResult]:
    """Scan every unfinished system of the portfolio (see the module docstring). ``echo``
    receives one line per step of each system; ``describe`` turns a system's error into the
    line stored with it (the command line writes a bug's traceback to a log file it names)."""
    from finmlsec.scan import pipeline

    pf = store.portfolio(portfolio_id)
    store.set_portfolio_status(pf.id, "running")
    results: list[SystemResult] = []
    n = len(pf.systems)
    for k, system in enumerate(pf.systems, 1):
        tag = f"system {k}/{n} {system.name!r}"
        if system.status == "done" and system.run_id is not None:
            echo(f"{tag}: finished before (run {system.run_id}), kept")
            results.append(SystemResult(system.name, "done", system.run_id, resumed=True))
            continue
        e = system.entry
        run_id = system.run_id
        try:
            if run_id is None:
                echo(f"{tag}: planning ({e['profile']} profile, {system.spec_path})")
                run_id = pipeline.plan(
                    system.spec_path, store=store, profile=e["profile"],
                    only=tuple(e.get("attacks") or ()), only_defences=tuple(e.get("defences") or ()),
                    seed=int(e["seed"]), trust_pickle=bool(e.get("trust_pickle")))
                store.set_portfolio_system(pf.id, system.name, status="running", run_id=run_id)
            else:
                echo(f"{tag}: resuming run {run_id}")
            echo(f"{tag}: scanning, run {run_id}")
            outcome = pipeline.run(store, run_id, executor=executor, workers=workers,
                                   progress=progress)
        except KeyboardInterrupt:
            store.set_portfolio_system(pf.id, system.name, status="interrupted", run_id=run_id)
            store.set_portfolio_status(pf.id, "interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - one system's failure must not stop the others
            line = describe(exc)
            store.set_portfolio_system(pf.id, system.name, status="error", run_id=run_id,
                                       error=line)
            echo(f"{tag}: error: {line}")
            results.append(SystemResult(system.name, "error", run_id, line))
            continue
        status = "done" if outcome.status == "done" else "incomplete"
        store.set_portfolio_system(pf.id, system.name, status=status, run_id=run_id)
        s = outcome.summary
        echo(f"{tag}: {status}; max risk {s['max_risk']}, residual {s['max_residual_risk']}")
        results.append(SystemResult(system.name, status, run_id))
    final = store.portfolio(pf.id)
    store.set_portfolio_status(
        pf.id, "done" if all(x.status == "done" for x in final.systems) else "incomplete")
    return results


def reaches(doc: dict[str, Any], store: Store, level: str) -> list[str]:
    """The ids of the systems with a threat whose measured risk as deployed reaches ``level``
    (a system in error has no measured risk and never counts)."""
    from finmlsec.scan import at_least

    out = []
    for s in doc["systems"]:
        if s["run_id"] is None or s["status"] == "error":
            continue
        summary = store.run(s["run_id"]).summary or {}
        if any(at_least(t["risk"], level) for t in summary.get("threats", [])):
            out.append(s["id"])
    return out
