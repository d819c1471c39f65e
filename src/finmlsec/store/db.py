"""Opening a result store and reading and writing runs and their units.

A store is an SQLAlchemy 2 database: an SQLite file by default (``./finmlsec.db``) or PostgreSQL
by URL (``postgresql://user@host/db``; the psycopg 3 driver is used). Opening a store runs the
Alembic migrations shipped in the package, so a new or older database is brought up to date.

Example:
    >>> from finmlsec.store import Store
    >>> store = Store.open("sqlite://")          # in memory
    >>> run_id = store.create_run(spec_path="spec.yaml", spec_name="demo", profile="quick",
    ...     seed=0, system_type=3, options={}, analysis={}, plan={}, units=["u1", "u2"])
    >>> store.record_outcome(run_id, "u1", status="done", outcome={"success": 0.5}, seconds=0.1)
    >>> [(u.unit_id, u.status) for u in store.units(run_id)]
    [('u1', 'done'), ('u2', 'pending')]
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from finmlsec.errors import StoreError
from finmlsec.store.models import BundleRow, PortfolioRow, PortfolioSystemRow, RunRow, UnitRow

DEFAULT_URL = "sqlite:///finmlsec.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FINISHED = frozenset({"done", "skipped", "error"})


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def normalize_url(url: str | None) -> str:
    """The SQLAlchemy URL for what a user typed: a URL, a path to an SQLite file, or None."""
    if not url:
        url = os.environ.get("FINMLSEC_DB") or DEFAULT_URL
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{url}"
    return url


@dataclass(frozen=True)
class RunInfo:
    """One stored scan: its options, analysis, plan and (when finished) summary."""

    id: str
    created_at: datetime
    finished_at: datetime | None
    status: str
    spec_path: str
    spec_name: str
    profile: str
    seed: int
    system_type: int | None
    version: str
    options: dict[str, Any]
    analysis: dict[str, Any]
    plan: dict[str, Any]
    diagram_svg: str
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class UnitInfo:
    """One unit of work of a run, with its status and outcome (None until finished)."""

    unit_id: str
    position: int
    status: str
    attempts: int
    seconds: float | None
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: dict[str, Any] | None


@dataclass(frozen=True)
class PortfolioSystem:
    """One system of a portfolio: its spec, its run (None until planned), status and error."""

    name: str
    position: int
    spec_path: str
    entry: dict[str, Any]
    run_id: str | None
    status: str
    error: str | None


@dataclass(frozen=True)
class PortfolioInfo:
    """One stored portfolio scan (``finmlsec scan INVENTORY.yaml``) and its systems."""

    id: str
    created_at: datetime
    finished_at: datetime | None
    status: str
    inventory_path: str
    name: str
    digest: str
    options: dict[str, Any]
    systems: list[PortfolioSystem]
    owner: str | None = None  # the invocation scanning it, while its lease holds
    lease_until: datetime | None = None


def _run_info(r: RunRow) -> RunInfo:
    return RunInfo(
        id=r.id, created_at=r.created_at, finished_at=r.finished_at, status=r.status,
        spec_path=r.spec_path, spec_name=r.spec_name, profile=r.profile, seed=r.seed,
        system_type=r.system_type, version=r.version, options=json.loads(r.options_json),
        analysis=json.loads(r.analysis_json), plan=json.loads(r.plan_json),
        diagram_svg=r.diagram_svg or "",
        summary=json.loads(r.summary_json) if r.summary_json else None,
    )


class Store:
    """The result store. Create with :meth:`open`; every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        """Open (and migrate) the store at ``url``; see :func:`normalize_url`."""
        full = normalize_url(url)
        try:
            engine = create_engine(full, future=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(
                f"cannot open the result store {url!r}: {exc}; give an SQLite path or a "
                "postgresql:// URL"
            ) from None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        if migrate:
            store.migrate()
        return store

    def migrate(self) -> None:
        """Bring the database up to the newest schema (Alembic ``upgrade head``)."""
        migrate(self.engine)

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- runs -----------------------------------------------------------------------------------
    def create_run(
        self, *, spec_path: str, spec_name: str, profile: str, seed: int,
        system_type: int | None, options: dict[str, Any], analysis: dict[str, Any],
        plan: dict[str, Any], units: list[str], diagram_svg: str = "", version: str = "",
        run_id: str | None = None,
    ) -> str:
        """Store a new run and its units (all ``pending``); return the run id."""
        rid = run_id or _now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        with self._session() as s, s.begin():
            s.add(RunRow(
                id=rid, created_at=_now(), finished_at=None, status="running",
                spec_path=spec_path, spec_name=spec_name, profile=profile, seed=seed,
                system_type=system_type, version=version, options_json=json.dumps(options),
                analysis_json=json.dumps(analysis), plan_json=json.dumps(plan),
                diagram_svg=diagram_svg, summary_json=None,
            ))
            s.flush()
            for i, uid in enumerate(units):
                s.add(UnitRow(run_id=rid, unit_id=uid, position=i, status="pending", attempts=0))
        return rid

    def resolve(self, run_id: str) -> str:
        """The full id of the run whose id is ``run_id`` or starts with it ("last": newest)."""
        with self._session() as s:
            if run_id == "last":
                row = s.scalars(select(RunRow.id).order_by(RunRow.created_at.desc())).first()
                if row is None:
                    raise StoreError("the store holds no runs yet; run `finmlsec scan SPEC` first")
                return row
            ids = list(s.scalars(select(RunRow.id).where(RunRow.id.startswith(run_id))))
        if run_id in ids:
            return run_id
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise StoreError(
                f"no run {run_id!r} in the store {self.engine.url!r}; list runs with "
                "`finmlsec runs list` (and pass the same --db)"
            )
        raise StoreError(f"run id {run_id!r} is ambiguous ({len(ids)} runs); give more characters")

    def run(self, run_id: str) -> RunInfo:
        rid = self.resolve(run_id)
        with self._session() as s:
            row = s.get(RunRow, rid)
            assert row is not None
            return _run_info(row)

    def runs(self, limit: int = 50) -> list[RunInfo]:
        """The newest runs first."""
        with self._session() as s:
            rows = s.scalars(select(RunRow).order_by(RunRow.created_at.desc()).limit(limit))
            return [_run_info(r) for r in rows]

    def finish_run(self, run_id: str, *, status: str, summary: dict[str, Any] | None) -> None:
        with self._session() as s, s.begin():
            s.execute(update(RunRow).where(RunRow.id == run_id).values(
                status=status, finished_at=_now() if status == "done" else None,
                summary_json=json.dumps(summary) if summary is not None else None,
            ))

    def set_status(self, run_id: str, status: str) -> None:
        with self._session() as s, s.begin():
            s.execute(update(RunRow).where(RunRow.id == run_id).values(status=status))

    def delete_run(self, run_id: str) -> None:
        rid = self.resolve(run_id)
        with self._session() as s, s.begin():
            s.execute(delete(UnitRow).where(UnitRow.run_id == rid))
            s.execute(delete(RunRow).where(RunRow.id == rid))

    # -- bundles --------------------------------------------------------------------------------
    def put_bundle(self, digest: str, payload: bytes) -> None:
        """Keep a scan bundle (``finmlsec.scan.bundle``) under its SHA-256 ``digest`` (once)."""
        try:
            with self._session() as s, s.begin():
                if s.get(BundleRow, digest) is None:
                    s.add(BundleRow(digest=digest, created_at=_now(), size=len(payload),
                                    payload=payload))
        except IntegrityError:  # another process stored the same content first
            pass

    def bundle(self, digest: str) -> bytes | None:
        """The scan bundle stored under ``digest``, if any."""
        with self._session() as s:
            row = s.get(BundleRow, digest)
            return None if row is None else bytes(row.payload)

    # -- units ----------------------------------------------------------------------------------
    def units(self, run_id: str) -> list[UnitInfo]:
        with self._session() as s:
            rows = s.scalars(
                select(UnitRow).where(UnitRow.run_id == run_id).order_by(UnitRow.position)
            )
            return [
                UnitInfo(
                    unit_id=u.unit_id, position=u.position, status=u.status,
                    attempts=u.attempts, seconds=u.seconds, worker=u.worker,
                    started_at=u.started_at, finished_at=u.finished_at,
                    outcome=json.loads(u.outcome_json) if u.outcome_json else None,
                )
                for u in rows
            ]

    def mark_running(self, run_id: str, unit_id: str, worker: str = "") -> None:
        with self._session() as s, s.begin():
            s.execute(update(UnitRow).where(
                UnitRow.run_id == run_id, UnitRow.unit_id == unit_id
            ).values(
                status="running", started_at=_now(), worker=worker,
                attempts=UnitRow.attempts + 1,
            ))

    def record_outcome(
        self, run_id: str, unit_id: str, *, status: str, outcome: dict[str, Any] | None,
        seconds: float | None = None, worker: str | None = None,
    ) -> None:
        """Store a finished unit's status (``done``, ``skipped``, ``error``, ``failed``) and
        outcome."""
        values: dict[str, Any] = {
            "status": status, "finished_at": _now(), "seconds": seconds,
            "outcome_json": json.dumps(outcome) if outcome is not None else None,
        }
        if worker is not None:
            values["worker"] = worker
        with self._session() as s, s.begin():
            s.execute(update(UnitRow).where(
                UnitRow.run_id == run_id, UnitRow.unit_id == unit_id
            ).values(**values))


    # -- portfolios (``finmlsec scan INVENTORY.yaml``) --------------------------------------------
    def create_portfolio(self, *, inventory_path: str, name: str, digest: str,
                         options: dict[str, Any], systems: list[dict[str, Any]],
                         owner: str | None = None, lease_seconds: float = 0.0) -> str:
        """Store a new portfolio and its systems (each ``pending``, no run yet); its id.
        ``systems``: dicts with ``name``, ``spec_path`` and ``entry`` (the resolved entry).
        ``owner``: claimed by it from the start for ``lease_seconds`` (see
        :meth:`claim_portfolio`), so no other invocation resumes it before its scan begins."""
        pid = "pf-" + _now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        with self._session() as s, s.begin():
            s.add(PortfolioRow(id=pid, created_at=_now(), finished_at=None, status="running",
                               inventory_path=inventory_path, name=name, digest=digest,
                               options_json=json.dumps(options), owner=owner,
                               lease_until=_now() + timedelta(seconds=lease_seconds)
                               if owner is not None else None))
            s.flush()
            for i, sysm in enumerate(systems):
                s.add(PortfolioSystemRow(
                    portfolio_id=pid, name=sysm["name"], position=i, spec_path=sysm["spec_path"],
                    entry_json=json.dumps(sysm["entry"]), run_id=None, status="pending",
                    error=None))
        return pid

    def portfolios(self, limit: int = 50) -> list[PortfolioInfo]:
        """The newest portfolios first."""
        with self._session() as s:
            rows = list(s.scalars(select(PortfolioRow).order_by(
                PortfolioRow.created_at.desc()).limit(limit)))
            return [self._portfolio_info(s, r) for r in rows]

    def claim_portfolio(self, portfolio_id: str, owner: str, lease_seconds: float) -> bool:
        """Claim the portfolio for ``owner`` until ``lease_seconds`` from now, unless another
        owner holds an unexpired claim; whether ``owner`` holds it now. One conditional UPDATE
        (compare and set): the database serialises two claims (SQLite's write lock, PostgreSQL's
        row lock, whose second UPDATE re-reads the row), so exactly one of them wins. Claiming
        again as the same owner renews the lease (the heartbeat)."""
        now = _now()
        with self._session() as s, s.begin():
            res = s.execute(update(PortfolioRow).where(
                PortfolioRow.id == portfolio_id,
                or_(PortfolioRow.owner.is_(None), PortfolioRow.owner == owner,
                    PortfolioRow.lease_until.is_(None), PortfolioRow.lease_until < now),
            ).values(owner=owner, lease_until=now + timedelta(seconds=lease_seconds)))
            return bool(getattr(res, "rowcount", 0) == 1)

    def release_portfolio(self, portfolio_id: str, owner: str) -> None:
        """Give up ``owner``'s claim (nothing if another owner holds it now)."""
        with self._session() as s, s.begin():
            s.execute(update(PortfolioRow).where(
                PortfolioRow.id == portfolio_id, PortfolioRow.owner == owner,
            ).values(owner=None, lease_until=None))

    def portfolio(self, portfolio_id: str) -> PortfolioInfo:
        """The portfolio whose id is ``portfolio_id`` or starts with it."""
        with self._session() as s:
            ids = list(s.scalars(select(PortfolioRow.id).where(
                PortfolioRow.id.startswith(portfolio_id))))
            if portfolio_id in ids:
                ids = [portfolio_id]
            if len(ids) != 1:
                raise StoreError(
                    f"no portfolio {portfolio_id!r} in the store {self.engine.url!r}"
                    if not ids else f"portfolio id {portfolio_id!r} is ambiguous ({len(ids)} "
                    "portfolios); give more characters")
            row = s.get(PortfolioRow, ids[0])
            assert row is not None
            return self._portfolio_info(s, row)

    def open_portfolio(self, inventory_path: str, digest: str) -> PortfolioInfo | None:
        """The newest unfinished portfolio of this inventory with the same contents and options
        (``digest``), to resume; None if there is none."""
        with self._session() as s:
            row = s.scalars(select(PortfolioRow).where(
                PortfolioRow.inventory_path == inventory_path,
            ).order_by(PortfolioRow.created_at.desc())).first()
            if row is None or row.status == "done" or row.digest != digest:
                return None
            return self._portfolio_info(s, row)

    @staticmethod
    def _portfolio_info(s: Session, row: PortfolioRow) -> PortfolioInfo:
        systems = s.scalars(select(PortfolioSystemRow).where(
            PortfolioSystemRow.portfolio_id == row.id).order_by(PortfolioSystemRow.position))
        return PortfolioInfo(
            id=row.id, created_at=row.created_at, finished_at=row.finished_at, status=row.status,
            inventory_path=row.inventory_path, name=row.name, digest=row.digest,
            options=json.loads(row.options_json), owner=row.owner, lease_until=row.lease_until,
            systems=[PortfolioSystem(name=r.name, position=r.position, spec_path=r.spec_path,
                                     entry=json.loads(r.entry_json), run_id=r.run_id,
                                     status=r.status, error=r.error) for r in systems])

    def set_portfolio_system(self, portfolio_id: str, name: str, *, status: str,
                             run_id: str | None = None, error: str | None = None) -> None:
        """Record a system's run (once planned), its status and, for ``error``, why."""
        values: dict[str, Any] = {"status": status, "error": error}
        if run_id is not None:
            values["run_id"] = run_id
        with self._session() as s, s.begin():
            s.execute(update(PortfolioSystemRow).where(
                PortfolioSystemRow.portfolio_id == portfolio_id, PortfolioSystemRow.name == name,
            ).values(**values))

    def set_portfolio_status(self, portfolio_id: str, status: str) -> None:
        with self._session() as s, s.begin():
            s.execute(update(PortfolioRow).where(PortfolioRow.id == portfolio_id).values(
                status=status, finished_at=_now() if status == "done" else None))


_MIGRATING = threading.Lock()


def migrate(engine: Engine, *, prefix: str = "", revision: str = "head") -> None:
    """Bring the database at ``engine`` up to the newest revision (Alembic ``upgrade head``) of
    the one migration history: the scan's runs and units and the gateway's tables, each name
    (and Alembic's version table) prefixed with ``prefix``. Safe to race: on PostgreSQL the
    upgrade holds a transaction-scoped advisory lock, on SQLite the write lock. ``revision``:
    stop at that revision instead (tests of an upgrade from an older schema). Threads of one
    process migrate one at a time: Alembic's ``op`` and migration context are globals of the
    process, so two upgrades at once in two threads would see each other's."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["table_prefix"] = prefix
    try:
        with _MIGRATING, engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                             {"k": f"finmlsec-migrate:{prefix}"})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot migrate the database at {engine.url!r}: "
            f"{str(exc).splitlines()[0]}; check that the database exists and is writable"
        ) from None


def drop_all(engine: Engine, *, prefix: str = "") -> None:
    """Drop every table of the migration history with this ``prefix`` (tests, decommissioning)."""
    from sqlalchemy import MetaData

    meta = MetaData()
    meta.reflect(engine)
    ours = [t for name, t in meta.tables.items() if name.startswith(prefix) and (
        name[len(prefix):] in ("runs", "units", "bundles", "alembic_version", "portfolios",
                               "portfolio_systems")
        or name[len(prefix):].startswith("gw_"))]
    meta.drop_all(engine, tables=ours)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
