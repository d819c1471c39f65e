"""The core install (``pip install finmlsec``, no extras): the defences import without any optional
dependency and fit in a pipeline; what needs an extra fails with one line naming it. These tests
run where the extras are missing or hidden: .ci/run runs them in a venv with the core only, and
tests/test_packaging.py runs them with the extras hidden (tests/lean/_hide.py)."""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from finmlsec.datasets import load
from finmlsec.defences import DEFENCES, apply
from finmlsec.errors import MissingExtraError
from finmlsec.extras import EXTRAS

HERE = Path(__file__).resolve().parent
# small settings: the defaults are sized for real use
FAST = {"pate": {"n_teachers": 10, "max_queries": 60},
        "adversarial_training": {"rounds": 1, "n_per_round": 10,
                                 "attack_params": {"max_changes": 1, "n_anchors": 4}}}
SMALL = {"cv": 2, "n_estimators": 3, "max_iter": 3}
# request-level guards of the gateway: not fitted around a model
FITTED = [(n, c) for n, c in DEFENCES.items() if c.stage != "gateway"]


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # hidden (tests/lean/_hide.py)
        return False


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter (with the extras hidden too when this run hides them)."""
    prelude = f"import sys; sys.path.insert(0, {str(HERE)!r}); import _hide, os\n" \
              f"if os.environ.get(_hide.ENV) == '1': _hide.hide_extras()\n"
    return subprocess.run([sys.executable, "-c", prelude + code, *args], capture_output=True,
                          text=True, timeout=120)


def test_importing_the_defences_loads_no_optional_dependency() -> None:
    res = python("import json, sys, finmlsec.defences\n"
                 "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    assert res.returncode == 0, res.stderr
    assert set(json.loads(res.stdout)) & set(EXTRAS) == set()


@pytest.fixture(scope="module")
def credit() -> tuple[object, pd.DataFrame, np.ndarray, pd.DataFrame]:
    d = load("german_credit")
    tr, te = d.split(0.5, seed=0)
    return d.schema, tr.X.iloc[:200], tr.y[:200], te.X.iloc[:50]


def pipeline(schema: object) -> object:
    cats = [f.name for f in schema.categorical()]  # type: ignore[attr-defined]
    nums = [n for n in schema.names if n not in cats]  # type: ignore[attr-defined]
    pre = ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), cats),
                             ("n", StandardScaler(), nums)])
    return make_pipeline(pre, LogisticRegression(max_iter=500))


def assert_names_a_missing_extra(exc: MissingExtraError) -> None:
    message = str(exc)
    assert "\n" not in message and "pip install 'finmlsec[" in message
    module = message.split(" needs ", 1)[1].split(",", 1)[0]
    assert module in EXTRAS and not importable(module)


@pytest.mark.parametrize("name, cls", FITTED, ids=[n for n, _ in FITTED])
def test_each_defence_fits_or_names_its_extra(name: str, cls: type, credit) -> None:
    schema, X, y, probe = credit
    params = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in SMALL.items() if k in params} | FAST.get(name, {})
    if "schema" in params:
        kwargs["schema"] = schema
    if "random_state" in params:
        kwargs["random_state"] = 0
    if cls.neural_only:  # distils or trains a TorchClassifier: PyTorch is an extra
        from finmlsec.targets.torch_estimator import TorchClassifier

        n = 40
        Xn = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
        yn = (Xn[:, 0] > 0).astype(int)
        net = TorchClassifier(kwargs={"in_features": 4, "n_classes": 2, "hidden": [8]},
                              input_kind="tabular", epochs=2, random_state=0)
        try:
            student = apply(cls(**kwargs), net, Xn, yn)
        except MissingExtraError as exc:
            assert_names_a_missing_extra(exc)
            return
        assert set(np.asarray(student.predict(Xn))) <= {0, 1}
        return
    try:
        fitted = apply(cls(**kwargs), pipeline(schema), X, y)
    except MissingExtraError as exc:
        assert_names_a_missing_extra(exc)
        return
    if name == "input_screen":  # predicts the inputs it accepts
        probe = probe.iloc[np.flatnonzero(fitted.decide(probe).accept)]
    assert set(np.asarray(fitted.predict(probe))) <= set(np.unique(y))


def test_a_command_needing_an_extra_names_it(tmp_path: Path) -> None:
    res = python("from finmlsec.cli.main import main; main(sys.argv[1:])", "runs", "list",
                 "--db", str(tmp_path / "r.db"))
    if importable("sqlalchemy"):
        assert res.returncode == 0, res.stderr
    else:
        assert res.returncode == 2
        assert res.stderr.strip() == ("error: this command needs sqlalchemy, which is not "
                                      "installed: pip install 'finmlsec[scan]'")
