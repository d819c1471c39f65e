"""Models from MLflow (``model: {uri: models:/NAME/VERSION}``), loaded under the project's
pickle rules (extra ``mlflow``).

The model's artifacts are fetched with MLflow's own client (:func:`mlflow.artifacts.
download_artifacts`: the registry resolves ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``,
``runs:/RUN_ID/PATH``) and its ``MLmodel`` file says which flavours it was logged with. The safest
one is used:

========================== ==================================================================
flavour                    how it is loaded
========================== ==================================================================
``onnx``                   the ONNX file, run by onnxruntime (no code runs when loading)
``sklearn``, skops format  the skops file, by the project's skops loader (skops' defaults +
                           ``model.trusted_types``; not the types the logger listed)
``sklearn``, pickle or     ``mlflow.sklearn.load_model`` only when trusted (``trusted: true``
cloudpickle                under ``model:`` or ``--trust-pickle``): unpickling runs code
========================== ==================================================================

Any other flavour is refused, naming the flavours found. ``model.tracking_uri`` names the MLflow
tracking and registry store (a ``sqlite:///`` or ``file:`` URI, or a server); without it MLflow's
own default applies (``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from finmlsec.errors import TargetError, UntrustedFileError
from finmlsec.extras import require
from finmlsec.schema import InputKind
from finmlsec.targets.base import Target

#: the flavours finmlsec loads, safest first
FLAVOURS = ("onnx", "sklearn")


def quiet_mlflow() -> None:
    """MLflow's own INFO lines (opening its store, ...) off stderr: a scan's errors stay one
    line and its progress readable; its warnings still show."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)


@contextlib.contextmanager
def _store(tracking_uri: str | None) -> Iterator[None]:
    """``tracking_uri`` as MLflow's default store while fetching: MLflow resolves a ``runs:/``
    URI to the model logged in that run with a client of the default store, whatever store it
    was given."""
    if tracking_uri is None:
        yield
        return
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict.fromkeys(keys, tracking_uri))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def fetch(uri: str, tracking_uri: str | None = None) -> Path:
    """Download the model at ``uri`` (its MLmodel file and artifacts) to a local directory."""
    require("mlflow", "an MLflow model (model.uri)")
    quiet_mlflow()
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        with _store(tracking_uri):
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except MlflowException as exc:
        where = f" in the MLflow store {tracking_uri!r}" if tracking_uri else ""
        raise TargetError(f"cannot fetch the MLflow model {uri!r}{where}: "
                          f"{str(exc.message).splitlines()[0]}; check model.uri and "
                          "model.tracking_uri (or MLFLOW_TRACKING_URI)") from None
    path = Path(local)
    if not (path / "MLmodel").is_file():
        raise TargetError(f"{uri!r} is not an MLflow model (no MLmodel file in its artifacts); "
                          "point model.uri at a logged or registered model")
    return path


def flavours(local: Path) -> dict[str, dict[str, Any]]:
    """The flavours (name -> configuration) of the MLflow model in ``local``."""
    from mlflow.models import Model

    found: dict[str, dict[str, Any]] = dict(Model.load(str(local)).flavors)
    return found


def load_mlflow(
    uri: str,
    *,
    tracking_uri: str | None = None,
    trusted: bool = False,
    trusted_types: Sequence[str] = (),
    input_kind: InputKind = "tabular",
    classes: list[Any] | None = None,
) -> Target:
    """The target of the MLflow model at ``uri`` (see the module docstring for the rules)."""
    local = fetch(uri, tracking_uri)
    found = flavours(local)
    if "onnx" in found:
        from finmlsec.targets.onnx_model import OnnxTarget

        return OnnxTarget(local / str(found["onnx"].get("data", "model.onnx")),
                          input_kind=input_kind, classes=classes)
    if "sklearn" in found:
        from finmlsec.targets.sklearn_files import sklearn_target

        conf = found["sklearn"]
        fmt = str(conf.get("serialization_format") or "cloudpickle")
        if fmt == "skops":
            from finmlsec.targets.sklearn_files import load_skops

            # the file is built once, by our skops loader with our trusted types (MLflow's own
            # loader would trust the types its logger listed)
            est = load_skops(local / str(conf.get("pickled_model", "model.skops")),
                             trusted_types=tuple(trusted_types), trust_all=trusted)
            return sklearn_target(est, input_kind=input_kind)
        if not trusted:
            raise UntrustedFileError(
                f"refusing to load the MLflow model {uri!r}: its flavour 'sklearn' is saved with "
                f"{fmt}, which runs arbitrary code when loaded. Load it only if you trust who "
                "logged it: set 'trusted: true' under model: in the spec, or pass --trust-pickle. "
                "Better: log it with mlflow.sklearn.log_model(..., serialization_format='skops') "
                "or as ONNX (mlflow.onnx)")
        import mlflow.sklearn

        try:
            est = mlflow.sklearn.load_model(str(local))
        except Exception as exc:  # noqa: BLE001 - a model MLflow cannot rebuild
            raise TargetError(f"MLflow cannot load {uri!r}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        return sklearn_target(est, input_kind=input_kind)
    raise TargetError(
        f"the MLflow model {uri!r} has the flavour(s) {sorted(found)}; finmlsec loads "
        f"{', '.join(FLAVOURS)}: log it with mlflow.onnx or mlflow.sklearn")
