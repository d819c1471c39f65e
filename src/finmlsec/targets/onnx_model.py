"""ONNX models as targets, run with onnxruntime.

Inputs are fed by the model's declared inputs: one input per column (skl2onnx's usual export of a
pipeline over a DataFrame: each input named after its column, shape ``[None, 1]``), or a single
input taking the whole record (a float matrix, a column of strings for text, an image tensor;
records are reshaped to the declared shape when it is fixed).

Outputs: a classifier's probabilities (a float tensor ``[n, k]``, or skl2onnx's ZipMap list of
dicts), logits (rows not summing to one: softmax is applied), or an outlier detector's
``label``/``scores`` pair (``[n, 1]`` each; seen like
:class:`~finmlsec.targets.sklearn_files.OutlierTarget`: classes 0 normal, 1 anomaly). Class
names come from the spec (``model.classes``), else from the graph's ``classlabels_*`` attributes,
else ``0 .. k-1``.

Example:
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skl2onnx import to_onnx
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32); y = np.array([0, 0, 1, 1])
    >>> onx = to_onnx(LogisticRegression().fit(X, y), X, options={"zipmap": False})
    >>> t = OnnxTarget(onx.SerializeToString(), input_kind="image")
    >>> t.classes_.tolist(), t.predict(X).tolist()
    ([0, 1], [0, 0, 1, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.errors import CapabilityError, TargetError
from finmlsec.schema import InputKind
from finmlsec.targets.sklearn_files import SCORE_SCALE

_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def _graph_classes(model_bytes: bytes) -> list[Any] | None:
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx comes with skl2onnx
        return None
    graph = onnx.load_from_string(model_bytes).graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.name in ("classlabels_ints", "classlabels_int64s") and attr.ints:
                return [int(v) for v in attr.ints]
            if attr.name == "classlabels_strings" and attr.strings:
                return [v.decode() for v in attr.strings]
    return None


class OnnxTarget:
    """An ONNX classifier or outlier detector run by onnxruntime (``model`` is a path or bytes).

    Example:
        >>> import numpy as np
        >>> from sklearn.ensemble import IsolationForest
        >>> from skl2onnx import to_onnx
        >>> X = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
        >>> onx = to_onnx(IsolationForest(random_state=0).fit(X), X,
        ...               target_opset={"": 17, "ai.onnx.ml": 3})
        >>> OnnxTarget(onx.SerializeToString(), input_kind="image").predict(
        ...     np.array([[0.0, 0.0], [9.0, 9.0]], dtype=np.float32)).tolist()
        [0, 1]
    """

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        input_kind: InputKind = "tabular",
        classes: Sequence[Any] | None = None,
    ) -> None:
        import onnxruntime as ort

        if isinstance(model, bytes):
            data = model
        else:
            path = Path(model)
            if not path.is_file():
                raise TargetError(f"ONNX model file {str(path)!r} does not exist")
            data = path.read_bytes()
        try:
            self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise TargetError(
                f"cannot load the ONNX model: {str(exc).splitlines()[0]}; export it with skl2onnx "
                "or torch.onnx.export"
            ) from None
        self.input_kind: InputKind = input_kind
        self.inputs = self.session.get_inputs()
        outs = self.session.get_outputs()
        self._detector = (
            len(outs) == 2
            and outs[1].type.startswith("tensor(float")
            and len(outs[1].shape) == 2
            and outs[1].shape[1] == 1
        )
        self._proba = next(
            (i for i, o in enumerate(outs) if o.type.startswith("seq(map")), None
        )
        if self._proba is None:
            floats = [
                i for i, o in enumerate(outs)
                if o.type in ("tensor(float)", "tensor(double)") and len(o.shape) == 2
            ]
            self._proba = floats[-1] if floats else None
        self._label = next(
            (i for i, o in enumerate(outs)
             if o.type in ("tensor(int64)", "tensor(string)") and i != self._proba),
            None,
        )
        if self._proba is None and not self._detector:
            raise TargetError(
                f"the ONNX model has no probability, logit or score output; its outputs are "
                f"{[(o.name, o.type) for o in outs]}"
            )
        names = list(classes) if classes is not None else None
        if self._detector:
            names = names or [0, 1]
        if names is None:
            names = _graph_classes(data)
        if names is None and self._proba is not None:
            width = outs[self._proba].shape[-1] if outs[self._proba].shape else None
            names = list(range(width)) if isinstance(width, int) else None
        if names is None:
            raise TargetError(
                "cannot tell the ONNX model's classes from its graph; list them under model: "
                "classes: [...] in the spec"
            )
        self.classes_ = np.asarray(names)
        self.capabilities = frozenset({"proba", "label"} | ({"score"} if self._detector else set()))

    # -- inputs ---------------------------------------------------------------------------------
    def _feed(self, X: Any) -> dict[str, np.ndarray]:
        if len(self.inputs) > 1:
            if not isinstance(X, pd.DataFrame):
                raise TargetError(
                    f"this ONNX model takes one input per column {[i.name for i in self.inputs]}; "
                    f"pass a pandas DataFrame, not {type(X).__name__}"
                )
            cols = {i.name: _column_for(i.name, X.columns) for i in self.inputs}
            missing = [name for name, col in cols.items() if col is None]
            if missing:
                raise TargetError(f"missing column(s) {missing} for the ONNX model's inputs; "
                                  f"the data has {[str(c) for c in X.columns]}")
            return {i.name: self._cast(X[[cols[i.name]]].to_numpy(), i) for i in self.inputs}
        spec = self.inputs[0]
        if isinstance(X, pd.DataFrame):
            arr = X.to_numpy()
        elif self.input_kind == "text" or spec.type == "tensor(string)":
            arr = np.asarray(list(X), dtype=object).reshape(-1, 1)
        else:
            arr = np.asarray(X)
        dims = spec.shape[1:]
        if dims and all(isinstance(d, int) for d in dims) and arr.shape[1:] != tuple(dims):
            try:
                arr = arr.reshape((arr.shape[0], *dims))
            except ValueError:
                raise TargetError(
                    f"the ONNX model's input {spec.name!r} has shape {spec.shape}; got records of "
                    f"shape {arr.shape[1:]}"
                ) from None
        return {spec.name: self._cast(arr, spec)}

    @staticmethod
    def _cast(arr: np.ndarray, spec: Any) -> np.ndarray:
        if spec.type == "tensor(string)":
            return arr.astype(str).astype(object)
        dtype = _NUMPY.get(spec.type)
        if dtype is None:
            raise TargetError(f"unsupported ONNX input type {spec.type} for input {spec.name!r}")
        try:
            return arr.astype(dtype)
        except (TypeError, ValueError):
            raise TargetError(
                f"input {spec.name!r} of the ONNX model needs {spec.type} values; got "
                f"{arr.dtype} (first: {arr.ravel()[0]!r})"
            ) from None

    def _run(self, X: Any) -> list[Any]:
        try:
            return list(self.session.run(None, self._feed(X)))
        except TargetError:
            raise
        except Exception as exc:
            raise TargetError(
                f"the ONNX model failed on this input: {str(exc).splitlines()[0]}"
            ) from None

    # -- outputs --------------------------------------------------------------------------------
    def score(self, X: Any) -> np.ndarray:
        if not self._detector:
            raise CapabilityError("this ONNX model is a classifier; it gives no anomaly score")
        return -np.asarray(self._run(X)[1], dtype=float).ravel()

    def predict_proba(self, X: Any) -> np.ndarray:
        if self._detector:
            z = np.clip(self.score(X) / SCORE_SCALE, -500, 500)
            p = 1.0 / (1.0 + np.exp(-z))
            return np.column_stack([1.0 - p, p])
        assert self._proba is not None
        out = self._run(X)[self._proba]
        if isinstance(out, list):  # ZipMap: list of {class: p}
            keys = list(out[0]) if out else list(self.classes_)
            p = np.array([[row[k] for k in keys] for row in out], dtype=float)
        else:
            p = np.asarray(out, dtype=float)
        if p.size and (np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3)):
            e = np.exp(p - p.max(axis=1, keepdims=True))  # logits -> probabilities
            p = e / e.sum(axis=1, keepdims=True)
        if p.shape[1] != len(self.classes_):
            raise TargetError(
                f"the ONNX model returns {p.shape[1]} probabilities per record but "
                f"{len(self.classes_)} classes are named; fix model.classes in the spec"
            )
        return p

    def predict(self, X: Any) -> np.ndarray:
        if self._detector:
            return (np.asarray(self._run(X)[0]).ravel() == -1).astype(int)
        p = self.predict_proba(X)
        return self.classes_[np.argmax(p, axis=1)]

    def __repr__(self) -> str:
        return f"OnnxTarget({len(self.inputs)} input(s), classes={len(self.classes_)})"


def _column_for(name: str, columns: Any) -> Any:
    """The column an ONNX input ``name`` reads: the column of that name, else the one column
    whose name becomes ``name`` when each character other than letters, digits and ``_`` (or
    each run of them) is replaced by ``_`` (exporters such as skl2onnx rename ``"CREDIT LIMIT"``
    to ``CREDIT_LIMIT``, and pandas' ``"Unnamed: 0"`` for R's unnamed row id to
    ``Unnamed__0``); None when there is none or more than one."""
    import re

    if name in columns:
        return name
    found = [c for c in columns if name in (re.sub(r"[^0-9A-Za-z_]+", "_", str(c)),
                                            re.sub(r"[^0-9A-Za-z_]", "_", str(c)))]
    return found[0] if len(found) == 1 else None
