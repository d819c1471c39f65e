"""PyTorch models from files: the storage convention (``model: {format: torch}`` in a spec) read
by :func:`load_torch`:

* **state_dict + registered architecture** (the default, and the safe one): the file holds only
  tensors (``torch.save(module.state_dict(), path)``) and is loaded with ``weights_only=True``,
  so no code in the file runs. The options name the architecture and its keyword arguments::

      torch: {architecture: mlp, kwargs: {in_features: 64, hidden: [64], n_classes: 10},
              input_shape: [64]}

  Architectures are registered in :data:`ARCHITECTURES` (built in: ``mlp``, ``small_cnn``);
  register your own with ``@ARCHITECTURES.register("name")`` on a function returning the module.
* **TorchScript** (``torch: {kind: torchscript}``): a file written by ``torch.jit.save``. It
  holds TorchScript code run by TorchScript's own interpreter, not arbitrary Python, but it is
  still code from the file: it is loaded only when the spec marks the file ``trusted: true``.

``input_shape`` (optional) reshapes each record before the module sees it, e.g. ``[1, 8, 8]`` for
an 8x8 grey image given as 64 values; ``classes`` (optional) names the outputs (default
``0 .. n-1``); ``train`` (optional: ``epochs``, ``lr``, ``batch_size``, ``weight_decay``,
``random_state``) says how a state_dict model was trained: the loaded target's ``model_factory``
returns an unfitted :class:`~finmlsec.targets.torch_estimator.TorchClassifier` with these options,
for countermeasures that retrain the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from finmlsec.errors import TargetError, UntrustedFileError
from finmlsec.extras import missing
from finmlsec.schema import InputKind
from finmlsec.targets.torch import ARCHITECTURES, TorchTarget, reshape_to
from finmlsec.targets.torch_estimator import TorchClassifier

try:
    import torch
    from torch import nn
except ModuleNotFoundError as exc:  # the core install: PyTorch is the extra 'torch'
    raise missing("torch", "PyTorch models") from exc

_OPTIONS = {"kind", "architecture", "kwargs", "input_shape", "classes", "train"}
_TRAIN = {"epochs", "lr", "batch_size", "weight_decay", "random_state"}


def load_torch(
    path: Path,
    options: Mapping[str, Any] | None,
    *,
    classes: Sequence[Any] | None = None,
    input_kind: InputKind = "image",
    trusted: bool = False,
) -> TorchTarget:
    """Load a torch model stored by the convention of this module (see the module docstring)."""
    opts = dict(options or {})
    unknown = sorted(set(opts) - _OPTIONS)
    if unknown:
        raise TargetError(
            f"unknown option(s) {unknown} under model.torch; known: {sorted(_OPTIONS)}"
        )
    kind = opts.get("kind", "state_dict")
    if kind not in ("state_dict", "torchscript"):
        raise TargetError(
            f"model.torch.kind must be 'state_dict' or 'torchscript'; got {kind!r}"
        )
    if not path.is_file():
        raise TargetError(f"torch model file {str(path)!r} does not exist")
    if kind == "torchscript":
        if not trusted:
            raise UntrustedFileError(
                f"{str(path)!r} is a TorchScript file: it contains code that runs when it is "
                "loaded. Load it only if you trust its origin: set 'trusted: true' under model: "
                "in the spec, or save a state_dict with a registered architecture instead"
            )
        try:
            module: nn.Module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError/ValueError for bad archives
            raise TargetError(
                f"cannot load TorchScript file {str(path)!r}: {exc}; write it with torch.jit.save"
            ) from None
    else:
        module = _load_state_dict(path, opts)
    names = classes if classes is not None else opts.get("classes")
    if names is None:
        names = list(range(_n_outputs(module, opts)))
    shape = opts.get("input_shape")
    pre = reshape_to(shape) if shape else None
    target = TorchTarget(module, list(names), input_kind=input_kind, preprocess=pre)
    if kind == "state_dict":
        target.model_factory = _factory(opts, input_kind)
    return target


def _factory(opts: Mapping[str, Any], input_kind: InputKind) -> Callable[[], Any]:
    """An unfitted TorchClassifier with the spec's architecture and training options."""
    train = dict(opts.get("train") or {})
    unknown = sorted(set(train) - _TRAIN)
    if unknown:
        raise TargetError(
            f"unknown option(s) {unknown} under model.torch.train; known: {sorted(_TRAIN)}"
        )
    params = {"architecture": str(opts["architecture"]), "kwargs": dict(opts.get("kwargs") or {}),
              "input_shape": list(opts["input_shape"]) if opts.get("input_shape") else None,
              "input_kind": input_kind, **train}

    def factory() -> Any:
        return TorchClassifier(**params)

    return factory


def _load_state_dict(path: Path, opts: Mapping[str, Any]) -> nn.Module:
    arch = opts.get("architecture")
    if not arch:
        raise TargetError(
            "model.torch.architecture is required for a state_dict file; known architectures: "
            f"{', '.join(ARCHITECTURES.names())} (or use kind: torchscript)"
        )
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError, EOFError, ...
        raise TargetError(
            f"cannot load {str(path)!r} as a torch state_dict with weights_only=True: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. Save the weights "
            "with torch.save(module.state_dict(), path)"
        ) from None
    if not isinstance(state, Mapping):
        raise TargetError(
            f"{str(path)!r} holds a {type(state).__name__}, not a state_dict; save the weights "
            "with torch.save(module.state_dict(), path)"
        )
    try:
        module = ARCHITECTURES.get(str(arch))(**dict(opts.get("kwargs") or {}))
    except TypeError as exc:
        raise TargetError(f"model.torch.kwargs do not fit architecture {arch!r}: {exc}") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise TargetError(
            f"the weights in {str(path)!r} do not fit architecture {arch!r} with kwargs "
            f"{dict(opts.get('kwargs') or {})}: {str(exc).splitlines()[0]}"
        ) from None
    return module


def _n_outputs(module: nn.Module, opts: Mapping[str, Any]) -> int:
    kwargs = opts.get("kwargs") or {}
    if "n_classes" in kwargs:
        return int(kwargs["n_classes"])
    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if last:
        return int(last[-1].out_features)
    raise TargetError(
        "cannot tell how many classes the torch model has; give 'classes' under model: in the spec"
    )
