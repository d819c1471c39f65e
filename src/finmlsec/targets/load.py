"""Load the target a spec's ``model:`` section points at.

======== ========================================================= ==============================
format   file                                                      loaded with
======== ========================================================= ==============================
skops    scikit-learn estimator or pipeline (XGBoost, LightGBM by  ``skops.io.load``, trusting
         their scikit-learn API)                                   defaults + ``trusted_types``
onnx     any ONNX classifier or outlier detector                   onnxruntime
torch    state_dict + registered architecture, or TorchScript      ``torch.load(weights_only=True)``
pickle   pickle / joblib file                                      refused unless trusted
mlflow   an MLflow model URI (``uri: models:/NAME/VERSION``)       MLflow's loader, see
                                                                   ``targets/mlflow_model.py``
remote   (none: a JSON prediction API)                             httpx, see ``targets/remote.py``
======== ========================================================= ==============================

``model.classes`` names the outputs: required for ``remote``, optional elsewhere (for a model
that reports its own classes, it renames them: the names must be as many as the model's classes).

Example:
    >>> import tempfile, numpy as np, skops.io as sio
    >>> from pathlib import Path
    >>> from sklearn.linear_model import LogisticRegression
    >>> from finmlsec.spec import ModelRef
    >>> d = Path(tempfile.mkdtemp())
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> sio.dump(LogisticRegression().fit(X, y), d / "m.skops")
    >>> t = load_target(ModelRef(format="skops", path="m.skops", input_kind="image"), base_dir=d)
    >>> t.predict(np.array([[3.0]])).tolist()
    [1]
    >>> load_target(ModelRef(format="pickle", path="m.pkl"), base_dir=d)
    Traceback (most recent call last):
    ...
    finmlsec.errors.UntrustedFileError: refusing to load '...m.pkl': pickle/joblib files run arbitrary code when loaded, ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finmlsec.errors import TargetError
from finmlsec.schema import InputKind
from finmlsec.targets.base import Target


class RenamedTarget:
    """A target whose class labels are renamed (``model.classes`` over a model's own classes).

    Example:
        >>> import numpy as np
        >>> from sklearn.linear_model import LogisticRegression
        >>> from finmlsec.targets.base import SklearnTarget
        >>> X = np.array([[0.0], [3.0]]); y = np.array([0, 1])
        >>> inner = SklearnTarget(LogisticRegression().fit(X, y), input_kind="image")
        >>> RenamedTarget(inner, ["bad", "good"]).predict(X).tolist()
        ['bad', 'good']
    """

    def __init__(self, target: Target, classes: Sequence[Any]) -> None:
        if len(classes) != len(target.classes_):
            raise TargetError(
                f"model.classes names {len(classes)} classes {list(classes)}, but the model has "
                f"{len(target.classes_)}: {target.classes_.tolist()}; fix model.classes"
            )
        self.inner = target
        self.classes_ = np.asarray(list(classes))
        self.input_kind: InputKind = target.input_kind
        self.capabilities = target.capabilities

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.inner.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        raw = np.asarray(self.inner.predict(X))
        own = [str(c) for c in self.inner.classes_]
        return self.classes_[[own.index(str(v)) for v in raw]]

    def __getattr__(self, name: str) -> Any:  # score(), gradient(), estimator, ...
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"RenamedTarget({self.inner!r}, classes={self.classes_.tolist()})"


def _field(ref: Any, name: str, default: Any = None) -> Any:
    if isinstance(ref, Mapping):
        return ref.get(name, default)
    return getattr(ref, name, default)


def load_target(ref: Any, *, base_dir: str | Path = ".", trust_pickle: bool = False) -> Target:
    """Load the model described by ``ref`` (a :class:`finmlsec.spec.ModelRef` or a dict of the
    same fields); relative paths resolve against ``base_dir`` (the spec file's directory).

    ``trust_pickle`` (the ``--trust-pickle`` option) allows pickle/joblib files as if the spec
    said ``trusted: true``.
    """
    fmt = _field(ref, "format")
    kind: InputKind = _field(ref, "input_kind", "tabular") or "tabular"
    classes = _field(ref, "classes")
    classes = list(classes) if classes is not None else None
    trusted = bool(_field(ref, "trusted", False))
    if fmt == "remote":
        from finmlsec.targets.remote import RemoteConfig, RemoteTarget

        return RemoteTarget(RemoteConfig.parse(_field(ref, "remote")), classes=classes,
                            input_kind=kind)
    target: Target
    if fmt == "mlflow":
        from finmlsec.targets.mlflow_model import load_mlflow

        target = load_mlflow(
            str(_field(ref, "uri")), tracking_uri=_field(ref, "tracking_uri"),
            trusted=trusted or trust_pickle,
            trusted_types=tuple(_field(ref, "trusted_types", ()) or ()),
            input_kind=kind, classes=classes)
        if classes is not None and [str(c) for c in classes] != [
                str(c) for c in target.classes_]:
            return RenamedTarget(target, classes)
        return target
    raw_path = _field(ref, "path")
    if not raw_path:
        raise TargetError(f"model.path is required for format {fmt!r}")
    path = Path(raw_path)
    if not path.is_absolute():
        path = Path(base_dir) / path
    if fmt == "skops":
        from finmlsec.targets.sklearn_files import load_skops, sklearn_target

        est = load_skops(
            path, trusted_types=tuple(_field(ref, "trusted_types", ()) or ()), trust_all=trusted
        )
        target = sklearn_target(est, input_kind=kind)
    elif fmt == "pickle":
        from finmlsec.targets.sklearn_files import load_pickle, sklearn_target

        target = sklearn_target(load_pickle(path, trusted=trusted or trust_pickle),
                                input_kind=kind)
    elif fmt == "onnx":
        from finmlsec.targets.onnx_model import OnnxTarget

        return OnnxTarget(path, input_kind=kind, classes=classes)
    elif fmt == "torch":
        from finmlsec.targets.torch_files import load_torch

        return load_torch(path, _field(ref, "torch"), classes=classes, input_kind=kind,
                          trusted=trusted)
    else:
        raise TargetError(
            f"unknown model format {fmt!r}; use one of skops, onnx, torch, pickle, remote, mlflow"
        )
    if classes is not None and [str(c) for c in classes] != [str(c) for c in target.classes_]:
        return RenamedTarget(target, classes)
    return target
