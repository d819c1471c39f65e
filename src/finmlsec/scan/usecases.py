"""One use case end to end: build its model, analyse it, scan it, write its reports.

:func:`run_usecase` is what ``finmlsec demo run USECASE --out DIR`` and ``finmlsec evidence
--build`` call: the use case's build (``finmlsec demo build``: its model, data splits and spec),
then the analysis (HTML), the scan (stored in the default store, ``./finmlsec.db`` or
``FINMLSEC_DB``, unless told otherwise)
and the scan report as HTML, Markdown and JSON under ``DIR``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from finmlsec.errors import ConfigError, TargetError


def find_spec(build_dir: Path) -> Path:
    """The spec ``demo build`` wrote into ``build_dir`` (``spec.yaml``, or the one YAML file
    there that has ``roles:``)."""
    direct = build_dir / "spec.yaml"
    if direct.exists():
        return direct
    found = sorted(p for p in build_dir.rglob("*.yaml") if "roles:" in p.read_text("utf-8"))
    if not found:
        raise TargetError(f"`finmlsec demo build` wrote no spec into {str(build_dir)!r}")
    return found[0]


def build(usecase: str, build_dir: Path, seed: int = 0) -> Path:
    """Build the use case (what ``finmlsec demo build USECASE --out build_dir`` does); return
    the spec it wrote."""
    from finmlsec.usecases import build as build_usecase

    return Path(build_usecase(usecase, build_dir, seed=seed).spec)


def run_usecase(
    usecase: str,
    out: Path,
    *,
    profile: str = "standard",
    db: str | None = None,
    executor: str = "process",
    workers: int | None = None,
    seed: int = 0,
    skip_build: bool = False,
    progress: bool = True,
    only: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Build, analyse, scan and report ``usecase`` under ``out``; return what was written."""
    from finmlsec.report.analysis import render_analysis
    from finmlsec.scan import pipeline
    from finmlsec.spec import load_spec
    from finmlsec.store import Store
    from finmlsec.threatmodel import analyze
    from finmlsec.usecases import USECASES

    if usecase not in USECASES:
        raise ConfigError(
            f"The 'usecase' parameter of demo run must be one of {USECASES.names()}. Got "
            f"{usecase!r} instead."
        )
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    build_dir = out / usecase
    spec = find_spec(build_dir) if skip_build else build(usecase, build_dir, seed)
    t_build = time.perf_counter() - t0
    analysis = analyze(load_spec(spec))
    analysis_html = out / f"{usecase}-analysis.html"
    analysis_html.write_text(render_analysis(analysis, "html"), encoding="utf-8")
    store = Store.open(db)
    run_id = pipeline.plan(spec, store=store, profile=profile, only=only, seed=seed)
    outcome = pipeline.run(store, run_id, executor=executor, workers=workers, progress=progress)
    paths = pipeline.write_reports(
        outcome, {fmt: out / f"{usecase}-scan.{fmt}" for fmt in ("html", "md", "json")})
    return {
        "usecase": usecase, "type": analysis.type, "run_id": run_id, "spec": str(spec),
        "status": outcome.status, "max_risk": outcome.summary["max_risk"],
        "max_residual_risk": outcome.summary["max_residual_risk"],
        "reports": {k: str(v) for k, v in paths.items()},
        "analysis_report": str(analysis_html), "build_seconds": round(t_build, 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }
