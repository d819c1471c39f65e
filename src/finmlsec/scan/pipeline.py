"""One scan end to end, the same for the CLI and the use cases: analyse -> plan -> run -> report.

:func:`plan` analyses the spec and stores the planned run (:func:`~finmlsec.scan.runner.start_scan`);
:func:`run` runs (or resumes) it on an executor and builds the report document;
:func:`write_reports` renders that document. ``finmlsec scan`` and ``finmlsec demo run`` (through
:func:`finmlsec.scan.usecases.run_usecase`) are these three calls.

Example:
    >>> from finmlsec.scan.pipeline import ScanOutcome
    >>> ScanOutcome("r1", "done", {"threats": []}, {}, "").failed
    False
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finmlsec.errors import ConfigError
from finmlsec.scan.profiles import Profile, get_profile
from finmlsec.store import Store


@dataclass(frozen=True)
class ScanOutcome:
    """A finished (or stopped) run: its status, the decision summary and the report document."""

    run_id: str
    status: str
    summary: dict[str, Any]
    document: dict[str, Any]
    diagram_svg: str

    @property
    def failed(self) -> bool:
        """Whether some units failed (the run can be resumed)."""
        return self.status != "done"


def plan(
    spec: str | Path,
    *,
    store: Store,
    profile: str | Profile = "standard",
    only: Sequence[str] = (),
    only_defences: Sequence[str] = (),
    seed: int = 0,
    include_accepted: bool = False,
    trust_pickle: bool = False,
    endpoint: str | None = None,
    unit_timeout: float | None = None,
) -> str:
    """Analyse ``spec`` and store its planned run; the run id. ``only`` / ``only_defences``
    restrict the plan to these registered attacks / defences and scanned guards (an unknown name
    is a :class:`~finmlsec.errors.RegistryError` listing the known ones); ``unit_timeout``
    replaces the profile's base time limit per unit (seconds for up to
    :data:`~finmlsec.scan.plan.REFERENCE_CELLS` data cells, scaled beyond; 0: no limit)."""
    from finmlsec.attacks import ATTACKS
    from finmlsec.defences import measured_class
    from finmlsec.scan.runner import start_scan

    for name in only:
        ATTACKS.get(name)
    for name in only_defences:
        measured_class(name)
    prof = get_profile(profile) if isinstance(profile, str) else profile
    if unit_timeout is not None:
        if unit_timeout < 0:
            raise ConfigError(f"--unit-timeout must be 0 (no limit) or a number of seconds; "
                              f"got {unit_timeout:g}")
        prof = prof.model_copy(update={"unit_timeout": unit_timeout or None})
    if only or only_defences:
        update: dict[str, Any] = {}
        if only:
            update["only"] = tuple(only)
        if only_defences:
            update["only_defences"] = tuple(only_defences)
        prof = prof.model_copy(update=update)
    return start_scan(spec, store=store, profile=prof, seed=seed,
                      include_accepted=include_accepted, trust_pickle=trust_pickle,
                      endpoint=endpoint)


def run(store: Store, run_id: str, *, executor: str = "process", workers: int | None = None,
        progress: bool = True) -> ScanOutcome:
    """Run the unfinished units of ``run_id`` (``executor``: process, serial or dask://HOST:PORT)
    and build the report document. Ctrl-C stops it; finished units stay stored."""
    from finmlsec.report.scan import scan_document
    from finmlsec.scan.executors import make_executor
    from finmlsec.scan.progress import ScanProgress
    from finmlsec.scan.runner import run_scan

    ex = make_executor(executor, workers)
    try:
        summary = run_scan(store, run_id, executor=ex,
                           progress=ScanProgress(enabled=progress, slots=ex.slots))
    finally:
        ex.close()
    stored = store.run(run_id)
    return ScanOutcome(run_id, stored.status, summary, scan_document(stored, store.units(run_id)),
                       stored.diagram_svg or "")


def write_reports(outcome: ScanOutcome, paths: Mapping[str, Path]) -> dict[str, Path]:
    """Write the report in each format (``html``, ``md``, ``json``) to its path."""
    from finmlsec.report.scan import write_report

    return {fmt: write_report(outcome.document, fmt, path, outcome.diagram_svg)
            for fmt, path in paths.items()}
