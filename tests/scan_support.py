"""Shared by the scan, store and report tests: a small real credit-scoring system on disk.

A logistic-regression pipeline trained on the German Credit training split (the split
``finmlsec.scenario`` derives from ``data.seed``), saved with skops, and a type 7 spec pointing at
it (so that every kind of registered attack has a threat to realise).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SPEC = """\
name: Small credit model
organisations: [{{id: bank}}, {{id: vendor}}]
roles:
  training_data_provider: bank
  system_user: bank
  model_generator: vendor
  model_operator: vendor
stakes: {{training_data: personal, model_value: high, harm_of_wrong_output: high}}
model: {{format: skops, path: model.skops}}
data: {{dataset: german_credit, seed: {seed}}}
"""


def build_credit_system(directory: Path, seed: int = 0) -> Path:
    """Train, save and describe the system; return the spec path."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from finmlsec.datasets import load
    from finmlsec.datasets.splits import split_three
    from finmlsec.schema import preprocessor

    ds = load("german_credit")
    train, _, _ = split_three(ds, seed)
    model = make_pipeline(preprocessor(ds.schema, categories="data"),
                          LogisticRegression(max_iter=2000)).fit(train.X, train.y)
    directory.mkdir(parents=True, exist_ok=True)
    sio.dump(model, directory / "model.skops")
    spec = directory / "spec.yaml"
    spec.write_text(SPEC.format(seed=seed), encoding="utf-8")
    return spec


def finmlsec(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the ``finmlsec`` command line in a child process."""
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "finmlsec.cli.main", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def scan_credit_system(root: Path, attacks: tuple[str, ...]) -> tuple[dict, str]:
    """Build the small credit system under ``root``, scan it serially with the quick profile
    restricted to ``attacks`` (seed 0), and return the scan document and the run's diagram."""
    from finmlsec.report.scan import scan_document
    from finmlsec.scan import get_profile, make_executor, run_scan, start_scan
    from finmlsec.store import Store

    spec = build_credit_system(root / "system")
    store = Store.open(str(root / "finmlsec.db"))
    profile = get_profile("quick").model_copy(update={"only": attacks})
    rid = start_scan(spec, store=store, profile=profile, seed=0)
    run_scan(store, rid, executor=make_executor("serial"))
    run = store.run(rid)
    return scan_document(run, store.units(rid)), run.diagram_svg


def comparable_units(store: Any, run_id: str) -> dict[str, Any]:
    """Every unit outcome of ``run_id`` without what depends on where and when it ran (wall and
    CPU times, the worker, the pieces' time ledger), to compare runs on different executors.
    Every unit must be done, or skipped with its reason (a defence that does not apply)."""
    out = {}
    for u in store.units(run_id):
        assert u.status in ("done", "skipped"), (u.unit_id, u.outcome)
        assert u.status == "done" or u.outcome["error"], u.unit_id
        o = {k: v for k, v in (u.outcome or {}).items()
             if k not in ("seconds", "worker", "pieces", "cpu_seconds")}
        if o["result"] is not None:
            o["result"] = {k: v for k, v in o["result"].items() if k != "seconds"}
            # wall-clock figures (seconds per victim, ...) are the only thing allowed to differ
            o["result"]["metrics"] = {k: v for k, v in o["result"]["metrics"].items()
                                      if "second" not in k and "time" not in k}
        out[u.unit_id] = o
    return out
