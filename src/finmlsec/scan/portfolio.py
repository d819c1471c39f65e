"""A portfolio: every system of a model inventory scanned under one id, each resumable.

:func:`start` stores a portfolio (or finds the unfinished one of the same inventory, to resume);
:func:`run` scans its systems one after another: a system whose run finished is not scanned
again, a system whose run stopped resumes it (finished units are kept), a system not planned yet
is planned. A system that cannot be planned or run (its model does not load, a bug) is recorded
as ``error`` with the reason and the others go on: an error is never a measured risk.
:func:`finmlsec.report.portfolio.document` builds its report.

One invocation at a time scans a portfolio: it claims it in the store (an owner and a lease,
:meth:`Store.claim_portfolio`, a compare-and-set on the portfolio's row) and renews the lease
every ``lease / 3`` seconds while it runs; a second invocation that would resume it refuses with
:class:`PortfolioBusyError`. A process that dies without releasing its claim (killed, a lost
machine) holds it until the lease runs out (:data:`LEASE_SECONDS`), then the next run resumes.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from finmlsec.errors import FinmlsecError, StoreError
from finmlsec.scan.inventory import Inventory
from finmlsec.store import PortfolioInfo, Store

LEASE_SECONDS = 60.0  # a claim not renewed for this long is free to take


class PortfolioBusyError(StoreError):
    """Another invocation is scanning the portfolio (its claim has not expired)."""


def new_owner() -> str:
    """An owner name for this invocation: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def claim(store: Store, portfolio_id: str, owner: str,
          lease_seconds: float = LEASE_SECONDS) -> None:
    """Claim the portfolio for ``owner`` (or renew its claim), or raise
    :class:`PortfolioBusyError` naming the portfolio and the owner that holds it."""
    if store.claim_portfolio(portfolio_id, owner, lease_seconds):
        return
    pf = store.portfolio(portfolio_id)
    until = pf.lease_until.isoformat(timespec="seconds") if pf.lease_until else "?"
    raise PortfolioBusyError(
        f"portfolio {pf.id} ({pf.name}, {pf.inventory_path}) is being scanned by {pf.owner} "
        f"(claim renewed until {until} UTC); wait for it to finish, or, if that process is "
        "gone, re-run once its claim expires")


def start(store: Store, inventory: Inventory, *, resume: bool = True, owner: str | None = None,
          lease_seconds: float = LEASE_SECONDS) -> tuple[PortfolioInfo, bool]:
    """The portfolio to run for ``inventory``: the newest unfinished one of the same inventory
    and options when ``resume``, else a new one; and whether it was resumed. With ``owner``, the
    portfolio is claimed for it (a resumed one that another owner holds raises
    :class:`PortfolioBusyError`)."""
    inv_path = str(inventory.path)
    if resume:
        found = store.open_portfolio(inv_path, inventory.digest)
        if found is not None:
            if owner is not None:
                claim(store, found.id, owner, lease_seconds)
            return found, True
    pid = store.create_portfolio(
        inventory_path=inv_path, name=inventory.name, digest=inventory.digest, options={},
        systems=[{"name": s.id, "spec_path": s.spec_path, "entry": s.entry()}
                 for s in inventory.systems], owner=owner, lease_seconds=lease_seconds)
    return store.portfolio(pid), False


@contextmanager
def claimed(store: Store, portfolio_id: str, owner: str | None = None,
            lease_seconds: float = LEASE_SECONDS) -> Iterator[str]:
    """Hold the portfolio's claim for ``owner`` (a new one if None) while the block runs: claim
    it (:class:`PortfolioBusyError` if another owner holds it), renew the lease from a thread,
    release it at the end, an exception or an interrupt included. Yields the owner."""
    owner = owner or new_owner()
    claim(store, portfolio_id, owner, lease_seconds)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease_seconds / 3):
            # the store briefly unreachable: try again at the next beat
            with suppress(FinmlsecError, SQLAlchemyError):
                store.claim_portfolio(portfolio_id, owner, lease_seconds)

    beat = threading.Thread(target=renew, name=f"lease {portfolio_id}", daemon=True)
    beat.start()
    try:
        yield owner
    finally:
        stop.set()
        beat.join()
        store.release_portfolio(portfolio_id, owner)


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
        describe: Callable[[BaseException], str] = _error_line, owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS) -> list[SystemResult]:
    """Scan every unfinished system of the portfolio (see the module docstring), holding its
    claim for ``owner`` (:func:`claimed`; :class:`PortfolioBusyError` if another invocation
    holds it). ``echo`` receives one line per step of each system; ``describe`` turns a
    system's error into the line stored with it (the command line writes a bug's traceback to
    a log file it names)."""
    pf = store.portfolio(portfolio_id)
    with claimed(store, pf.id, owner, lease_seconds):
        return _run(store, pf, executor=executor, workers=workers, progress=progress, echo=echo,
                    describe=describe)


def _run(store: Store, pf: PortfolioInfo, *, executor: str, workers: int | None,
         progress: bool, echo: Callable[[str], None],
         describe: Callable[[BaseException], str]) -> list[SystemResult]:
    from finmlsec.scan import pipeline
    from finmlsec.scan.work import release

    pf = store.portfolio(pf.id)  # as it is now that this invocation holds it
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
        finally:
            release()  # this system's scenario and bundle are not the next one's
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
