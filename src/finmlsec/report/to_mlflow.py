"""Logging a scan's results to MLflow (``finmlsec scan --mlflow-experiment NAME``; extra
``mlflow``).

One MLflow run per scanned system, in the experiment ``NAME`` (created when missing): per threat
(its catalogue id, e.g. ``model_io.infer_model``) the metrics ``success.ID`` (the strongest
attack's success as deployed), ``risk.ID`` and ``residual.ID`` (levels as numbers: none 0, low 1,
medium 2, high 3); ``max_risk`` and ``max_residual_risk``; tags ``finmlsec.paper_type`` (the
paper's system type), ``finmlsec.run_id``, ``finmlsec.system``, ``finmlsec.profile``,
``finmlsec.status``; artifacts ``finmlsec/report.html`` and ``finmlsec/report.json``. A portfolio
adds one run with its three reports, tagged ``finmlsec.portfolio_id``. The tracking store is
``--mlflow-tracking-uri`` or MLflow's default (``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from finmlsec.errors import ConfigError
from finmlsec.extras import require
from finmlsec.report.numbers import LEVELS


def _client(tracking_uri: str | None) -> Any:
    require("mlflow", "--mlflow-experiment")
    from mlflow import MlflowClient

    from finmlsec.targets.mlflow_model import quiet_mlflow

    quiet_mlflow()

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _experiment(client: Any, name: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            return str(client.create_experiment(name))
        if exp.lifecycle_stage != "active":
            raise ConfigError(f"the MLflow experiment {name!r} is deleted; restore it or name "
                              "another with --mlflow-experiment")
        return str(exp.experiment_id)
    except MlflowException as exc:
        raise ConfigError(f"cannot use the MLflow experiment {name!r}: "
                          f"{str(exc.message).splitlines()[0]}; check --mlflow-tracking-uri "
                          "(or MLFLOW_TRACKING_URI)") from None


def _level(value: Any) -> float | None:
    return float(LEVELS.index(value)) if value in LEVELS else None


def log_scan(doc: dict[str, Any], html: str, *, experiment: str,
             tracking_uri: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Log the scan document ``doc`` (and its HTML report) as one MLflow run; its run id."""
    from finmlsec.report.scan import render_json
    from finmlsec.report.words import threat_name

    client = _client(tracking_uri)
    exp_id = _experiment(client, experiment)
    run = doc["run"]
    all_tags = {"finmlsec.paper_type": str(run.get("system_type")),
                "finmlsec.run_id": run["id"], "finmlsec.system": run["spec_name"],
                "finmlsec.spec": run["spec_path"], "finmlsec.profile": run["profile"],
                "finmlsec.status": run["status"], **(tags or {})}
    mrun = client.create_run(exp_id, run_name=f"{run['spec_name']} {run['id']}", tags=all_tags)
    rid = mrun.info.run_id
    try:
        metrics: dict[str, float] = {}
        for t in doc["threats"]:
            tid = threat_name(doc, t)["id"]
            if t.get("success") is not None:
                metrics[f"success.{tid}"] = float(t["success"])
            for key, value in ((f"risk.{tid}", t.get("risk")),
                               (f"residual.{tid}", t.get("residual_risk"))):
                level = _level(value)
                if level is not None:
                    metrics[key] = level
        for key in ("max_risk", "max_residual_risk"):
            level = _level(doc["summary"].get(key))
            if level is not None:
                metrics[key] = level
        for key, value in sorted(metrics.items()):
            client.log_metric(rid, key, value)
        client.log_param(rid, "seed", run["seed"])
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in (("report.html", html), ("report.json", render_json(doc))):
                path = Path(tmp) / name
                path.write_text(text, encoding="utf-8")
                client.log_artifact(rid, str(path), artifact_path="finmlsec")
    except BaseException:
        client.set_terminated(rid, status="FAILED")
        raise
    client.set_terminated(rid)
    return str(rid)


def log_portfolio(doc: dict[str, Any], paths: dict[str, Path], *, experiment: str,
                  tracking_uri: str | None = None) -> str:
    """Log the portfolio's reports (``paths``: format -> file) as one MLflow run; its run id."""
    client = _client(tracking_uri)
    exp_id = _experiment(client, experiment)
    p = doc["portfolio"]
    mrun = client.create_run(exp_id, run_name=f"portfolio {p['name']} {p['id']}", tags={
        "finmlsec.portfolio_id": p["id"], "finmlsec.status": p["status"],
        "finmlsec.systems": str(doc["summary"]["systems"])})
    rid = mrun.info.run_id
    for key in ("max_risk", "max_residual_risk"):
        level = _level(doc["summary"].get(key))
        if level is not None:
            client.log_metric(rid, key, level)
    for path in paths.values():
        client.log_artifact(rid, str(path), artifact_path="finmlsec")
    client.set_terminated(rid)
    return str(rid)
