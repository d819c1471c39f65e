"""Planning a scan into the store, running (or resuming) it, and summarising it.

:func:`start_scan` analyses the spec, plans the units and stores the run with every unit
``pending``, and the scan's bundle (:mod:`finmlsec.scan.bundle`: the spec and the files it
names), so that the run scans what was planned, on workers that never see the spec's directory,
and resumes after the directory is gone; :func:`run_scan` runs the units that are not finished yet, storing each outcome the
moment it arrives, so a scan stopped at any point (Ctrl-C, a killed process, a crashed worker)
resumes with :func:`run_scan` on the same run id without redoing finished units.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

import finmlsec
from finmlsec.environment import environment
from finmlsec.environment import merge as merge_environments
from finmlsec.errors import StoreError
from finmlsec.scan.bundle import digest, hashes, input_hashes, make_bundle
from finmlsec.scan.decide import summarize
from finmlsec.scan.executors import Executor, ProcessExecutor, run_units
from finmlsec.scan.plan import ScanPlan, Unit, make_plan
from finmlsec.scan.profiles import Profile, get_profile
from finmlsec.scan.progress import ScanProgress
from finmlsec.scan.work import ScanContext, attack_data_for, keep_bundle, scenario_for
from finmlsec.spec import load_spec
from finmlsec.store import FINISHED, Store
from finmlsec.threatmodel import analyze


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json.loads(json.dumps(dataclasses.asdict(obj), default=str))
    return json.loads(json.dumps(obj, default=str))


def _checker(scenario: Any, ctx: ScanContext) -> tuple[Any, Any, Any]:
    from finmlsec.attacks.base import check_needs
    from finmlsec.errors import FinmlsecError
    from finmlsec.targets.oracle import Oracle

    caps = set(getattr(scenario.target, "capabilities", ()))
    kind: Any = getattr(scenario.target, "input_kind", "tabular")

    data = attack_data_for(scenario, ctx)

    def access(cls: type) -> str:
        if "gradient" in getattr(cls, "needs", ()) and "gradient" in caps:
            return "white_box"
        return "proba" if "proba" in caps else "label"

    def check(cls: Any) -> str | None:
        kinds = cls.input_kinds
        if kind not in kinds:
            return f"works on {sorted(kinds)} inputs, this model takes {kind}"
        try:
            oracle = Oracle(scenario.target, access(cls), input_kind=kind)
            check_needs(cls(), oracle, data)
        except FinmlsecError as exc:
            return str(exc)
        except TypeError as exc:
            return f"cannot be constructed with its defaults ({exc})"
        return None

    def defence_check(name: str) -> str | None:
        from finmlsec.defences import measured_class

        cls = measured_class(name)
        neural_only = getattr(cls, "neural_only", False)
        if neural_only and "torch" not in type(scenario.target).__module__:
            return "works on neural (torch) models only"
        kinds = getattr(cls, "input_kinds", None)
        if kinds is not None and kind not in kinds:
            return f"works on {', '.join(kinds)} inputs, this model takes {kind}"
        return None

    return check, access, defence_check


def data_cells(scenario: Any) -> int | None:
    """Rows x columns of the scenario's training data (else its held-out data): the data size
    the units' time limits scale with."""
    for part in (getattr(scenario, "train", None), getattr(scenario, "test", None)):
        X = getattr(part, "X", None)
        if X is None:
            continue
        shape = getattr(X, "shape", None) or (len(X), 1)
        cols = 1
        for d in shape[1:]:
            cols *= int(d)
        return int(shape[0]) * max(cols, 1)
    return None


def fit_seconds(scenario: Any) -> float | None:
    """CPU seconds of one fit of the model like the deployed one (the scenario's
    ``model_factory``: the spec's factory, or a clone of the deployed model) on the training
    split, in this process with one thread a library, as a unit runs: what the time limits of the
    units that retrain it scale with (:func:`~finmlsec.scan.plan.unit_limit`). None when there is
    no factory or training split, or the fit fails (the units that need it say why)."""
    factory = getattr(scenario, "model_factory", None)
    train = getattr(scenario, "train", None)
    if factory is None or train is None:
        return None
    with threadpool_limits(limits=1):
        start = time.process_time()
        try:
            factory().fit(train.X, train.y)
        except Exception:  # noqa: BLE001 - a unit that fits the model reports the error itself
            return None
        return round(time.process_time() - start, 3)


def data_sample(scenario: Any) -> dict[str, Any] | None:
    """What the scan's data is when the spec's data was read in chunks and sampled
    (:class:`~finmlsec.datasets.chunked.SampleInfo`, with its ``statement`` for the report)."""
    info = getattr(getattr(scenario, "dataset", None), "extra", {}).get("sample")
    return info.to_dict() if info is not None else None


def row_ids(scenario: Any) -> dict[str, Any] | None:
    """The schema's row ids (``ids``, docs/spec.md "Row ids") as the scan treated them: those
    ``left_out`` of the model's input, those ``kept`` as frozen model inputs, each with ``why``,
    and whether the model was asked which it reads (``model_asked``: a remote model is not);
    None when the schema declares no ids."""
    from finmlsec.datasets.splits import READ_ID

    schema = getattr(scenario, "schema", None)
    ids = list(getattr(schema, "ids", None) or ())
    if schema is None or not ids:
        return None
    names = set(schema.names)
    kept = [{"id": i, "why": "the model reads it: it cannot answer, or answers otherwise, "
                             "without it" if schema[i].description == READ_ID
             else "the schema lists it among the features"} for i in ids if i in names]
    target = getattr(scenario, "target", None)
    return {"left_out": [i for i in ids if i not in names], "kept": kept,
            "model_asked": target is not None and not hasattr(target, "url")}


def default_metric(spec: Any, scenario: Any) -> str:
    """The utility metric a scan of ``spec`` decides costs on: ``stakes.utility_metric`` if
    declared, else ``roc_auc`` for a two-class model that outputs scores, else ``accuracy``."""
    declared = getattr(getattr(spec, "stakes", None), "utility_metric", None)
    if declared:
        return str(declared)
    target = scenario.target
    scores = "proba" in set(getattr(target, "capabilities", ()))
    two = len(getattr(target, "classes_", ())) == 2
    return "roc_auc" if scores and two else "accuracy"


def _privacy_claim(spec: Any) -> dict[str, Any] | None:
    claim = getattr(getattr(spec, "model", None), "privacy_claim", None)
    return claim.model_dump(mode="json") if claim is not None else None


def start_scan(
    spec_path: str | Path,
    *,
    store: Store,
    profile: str | Profile = "standard",
    seed: int = 0,
    include_accepted: bool = False,
    trust_pickle: bool = False,
    endpoint: str | None = None,
) -> str:
    """Analyse and plan a scan of ``spec_path``; store it; return the run id."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    path = str(Path(spec_path).resolve())
    spec = load_spec(path)
    analysis = analyze(spec)
    ctx = ScanContext(spec_path=path, trust_pickle=trust_pickle, endpoint=endpoint)
    with threadpool_limits(limits=1):
        scenario = scenario_for(ctx)  # from the spec's files: errors name them
        bundle = make_bundle(path)  # None: files too large to ship, read where they are
        if bundle is not None:
            ctx = ctx.model_copy(update={"bundle": keep_bundle(bundle)})
            scenario_for(ctx, scenario)
        check, access, defence_check = _checker(scenario_for(ctx), ctx)
    name = Path(path).parent.name if Path(path).stem in ("spec", "system") else Path(path).stem
    plan = make_plan(analysis, profile=prof, seed=seed, include_accepted=include_accepted,
                     check=check, access=access, spec_name=name, defence_check=defence_check,
                     data_cells=data_cells(scenario_for(ctx)),
                     fit_seconds=lambda: fit_seconds(scenario_for(ctx)))
    try:
        from finmlsec.report.diagram import render_diagram

        diagram = render_diagram(analysis)
    except Exception:  # noqa: BLE001 - a missing diagram must not stop a scan
        diagram = ""
    if bundle is not None:
        store.put_bundle(digest(bundle), bundle)
    options = {"trust_pickle": trust_pickle, "endpoint": endpoint, "bundle": ctx.bundle,
               "include_accepted": include_accepted, "profile": prof.model_dump(mode="json"),
               "utility_metric": default_metric(spec, scenario_for(ctx)),
               "privacy_claim": _privacy_claim(spec),
               # the versions the scan runs with, kept with the run (the dossier shows these)
               "environment": environment(),
               # the SHA-256 of the spec's files as measured (serve --from-scan checks the model)
               "inputs": hashes(bundle) if bundle is not None else input_hashes(path),
               "data_sample": data_sample(scenario_for(ctx)),
               # what the time limits of the units that retrain the model scale with
               "fit_seconds": plan.fit_seconds,
               # which row ids the model's input left out and which it kept (and why)
               "row_ids": row_ids(scenario_for(ctx))}
    return store.create_run(
        spec_path=path, spec_name=name, profile=prof.name, seed=seed,
        system_type=plan.system_type, options=options, analysis=_jsonable(analysis),
        plan=plan.model_dump(mode="json"), units=[u.id for u in plan.units],
        diagram_svg=diagram, version=finmlsec.__version__,
    )


def run_scan(store: Store, run_id: str, *, executor: Executor,
             progress: ScanProgress | None = None) -> dict[str, Any]:
    """Run every unfinished unit of ``run_id`` and store the summary; return it."""
    run = store.run(run_id)
    plan = ScanPlan.model_validate(run.plan)
    ctx = ScanContext(spec_path=run.spec_path, trust_pickle=run.options.get("trust_pickle", False),
                      endpoint=run.options.get("endpoint"), bundle=run.options.get("bundle"))
    rows = {u.unit_id: u for u in store.units(run.id)}
    todo: list[Unit] = [u for u in plan.units if rows[u.id].status not in FINISHED]
    if ctx.bundle is not None and todo:
        payload = store.bundle(ctx.bundle)
        if payload is None:
            raise StoreError(f"run {run.id} names scan bundle {ctx.bundle[:12]}, which the store "
                             "does not hold; start a new scan of the spec")
        executor.ship(payload)
    if isinstance(executor, ProcessExecutor) and todo:
        with threadpool_limits(limits=1):  # no thread pools in a process about to fork
            sc = scenario_for(ctx)  # loaded once here; forked workers inherit it
        executor.fork_ok = "torch" not in type(sc.target).__module__
    progress = progress or ScanProgress(enabled=False)
    progress.slots = executor.slots
    progress.start(len(plan.units), len(plan.units) - len(todo), todo)
    store.set_status(run.id, "running")

    def on_start(unit: Unit) -> None:
        store.mark_running(run.id, unit.id)
        progress.unit_started(unit)

    def on_done(unit: Unit, outcome: dict[str, Any]) -> None:
        store.record_outcome(run.id, unit.id, status=outcome["status"], outcome=outcome,
                             seconds=outcome.get("seconds"), worker=outcome.get("worker"))
        progress.unit_done(unit, outcome)

    try:
        run_units(executor, ctx, todo, on_start=on_start, on_done=on_done, on_tick=progress.tick)
    except BaseException:
        store.set_status(run.id, "interrupted")
        raise
    finally:
        progress.stop()
    return finish(store, run.id, ran_in=environment() if todo else None)


def finish(store: Store, run_id: str, *, ran_in: dict[str, Any] | None = None) -> dict[str, Any]:
    """Summarise the stored outcomes of ``run_id`` and store the summary. ``ran_in``: the
    environment of the process that just ran units, added to the summary's ``environments`` (every
    distinct environment that ran units of this run, a resume elsewhere included)."""
    run = store.run(run_id)
    units = store.units(run.id)
    outcomes = {u.unit_id: u.outcome for u in units if u.outcome is not None}
    prof = (Profile.model_validate(run.options["profile"]) if "profile" in run.options
            else get_profile(run.profile))
    summary = summarize(run.plan, outcomes, max_utility_drop=prof.max_utility_drop,
                        utility_metric=run.options.get("utility_metric"),
                        privacy_claim=run.options.get("privacy_claim"))
    envs = (run.summary or {}).get("environments")
    if ran_in is not None:
        envs = merge_environments(envs, ran_in)
    if envs:
        summary["environments"] = envs
    complete = all(u.status in FINISHED for u in units)
    store.finish_run(run.id, status="done" if complete else "incomplete", summary=summary)
    return summary
