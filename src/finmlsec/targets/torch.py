"""PyTorch models as targets, and the small convention by which they are stored.

:class:`TorchTarget` wraps an ``nn.Module`` that maps a float tensor of inputs to class logits.
It gives probabilities (softmax of the logits), labels, and white-box gradients of the
cross-entropy loss with respect to the input (capability ``"gradient"``), which gradient attacks
such as PGD read through an ``Oracle(..., access="white_box")``.

Storage convention (``model: {format: torch}`` in a spec), read by :func:`load_torch`:

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

Example:
    >>> import numpy as np, torch
    >>> from finmlsec.targets.torch import TorchTarget
    >>> _ = torch.manual_seed(0)
    >>> t = TorchTarget(torch.nn.Linear(4, 3), classes=[0, 1, 2])
    >>> X = np.zeros((2, 4), dtype=np.float32)
    >>> t.predict_proba(X).shape, t.gradient(X, np.array([0, 1])).shape
    ((2, 3), (2, 4))
    >>> sorted(t.capabilities)
    ['gradient', 'label', 'proba']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finmlsec.errors import ConfigError, TargetError, UntrustedFileError
from finmlsec.extras import missing
from finmlsec.registry import Registry
from finmlsec.targets.base import InputKind

try:
    import torch
    from torch import nn
except ModuleNotFoundError as exc:  # the core install: PyTorch is the extra 'torch'
    raise missing("torch", "PyTorch models") from exc

Preprocess = Callable[[torch.Tensor], torch.Tensor]

#: name -> function(**kwargs) returning an (untrained) ``nn.Module``.
ARCHITECTURES: Registry[Callable[..., nn.Module]] = Registry("torch architecture")


@ARCHITECTURES.register("mlp")
def mlp(
    in_features: int, n_classes: int, hidden: Sequence[int] = (64,), dropout: float = 0.0
) -> nn.Module:
    """A multi-layer perceptron on flat inputs: Linear-ReLU(-Dropout) blocks, then a linear head."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(in_features)
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(float(dropout)))
        width = int(h)
    layers.append(nn.Linear(width, int(n_classes)))
    return nn.Sequential(*layers)


@ARCHITECTURES.register("small_cnn")
def small_cnn(
    in_channels: int, height: int, width: int, n_classes: int, channels: int = 16
) -> nn.Module:
    """Two 3x3 convolutions (padding 1) with ReLU, 2x2 max pooling after the second, a linear head."""
    c = int(channels)
    flat = 2 * c * (int(height) // 2) * (int(width) // 2)
    return nn.Sequential(
        nn.Conv2d(int(in_channels), c, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, int(n_classes)),
    )


class TorchTarget:
    """A PyTorch classifier (inputs -> logits) as a white-box target.

    ``preprocess`` (optional) is a differentiable torch function applied to the input tensor
    before the module (e.g. a reshape or scaling), so gradients are taken with respect to the
    input as the caller gives it. ``classes`` names the module's outputs in order.

    Example:
        >>> import numpy as np, torch
        >>> _ = torch.manual_seed(0)
        >>> t = TorchTarget(torch.nn.Linear(2, 2), classes=["no", "yes"], input_kind="tabular")
        >>> t.predict(np.array([[0.0, 0.0]])).tolist() in (["no"], ["yes"])
        True
    """

    def __init__(
        self,
        module: nn.Module,
        classes: Sequence[Any],
        input_kind: InputKind = "image",
        preprocess: Preprocess | None = None,
        *,
        batch_size: int = 1024,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise TargetError(
                f"TorchTarget needs a torch.nn.Module, got {type(module).__name__}"
            )
        if len(classes) < 2:
            raise ConfigError(
                f"The 'classes' parameter of TorchTarget must name at least 2 outputs. Got "
                f"{list(classes)!r} instead."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(
                f"The 'batch_size' parameter of TorchTarget must be an int >= 1. Got "
                f"{batch_size!r} instead."
            )
        self.module = module.eval()
        self.classes_ = np.asarray(classes)
        self.input_kind: InputKind = input_kind
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.capabilities = frozenset({"proba", "label", "gradient"})
        #: returns an unfitted estimator trained like this model (set by :func:`load_torch`)
        self.model_factory: Callable[[], Any] | None = None

    def _tensor(self, X: Any) -> torch.Tensor:
        try:
            arr = np.asarray(X, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise TargetError(
                f"TorchTarget needs numeric inputs convertible to float32; got "
                f"{type(X).__name__} ({exc})"
            ) from None
        if arr.ndim < 2:
            raise TargetError(
                f"TorchTarget expects a batch of records (first axis = records); got an array "
                f"of shape {arr.shape}"
            )
        param = next(self.module.parameters(), None)
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        return torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        z = self.preprocess(x) if self.preprocess is not None else x
        logits = self.module(z)
        if logits.ndim != 2 or logits.shape[1] != len(self.classes_):
            raise TargetError(
                f"the module returned logits of shape {tuple(logits.shape)}, but "
                f"{len(self.classes_)} classes were given; pass one class name per output"
            )
        return logits

    def predict_proba(self, X: Any) -> np.ndarray:
        x = self._tensor(X)
        out = []
        with torch.no_grad():
            for start in range(0, x.shape[0], self.batch_size):
                logits = self._logits(x[start : start + self.batch_size])
                out.append(torch.softmax(logits, dim=1).double().numpy())
        if not out:
            return np.zeros((0, len(self.classes_)))
        return np.concatenate(out)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def gradient(self, X: Any, y: Any) -> np.ndarray:
        """d cross-entropy(logits, y) / d input for each record (same shape as ``X``).

        ``y`` holds class indices (positions in ``classes_``); the loss is summed over the batch,
        so each row is the gradient of its own record's loss.
        """
        x = self._tensor(X).clone().requires_grad_(True)
        labels = torch.as_tensor(np.asarray(y), dtype=torch.long)
        if labels.shape != (x.shape[0],):
            raise ConfigError(
                f"The 'y' parameter of TorchTarget.gradient must hold one class index per record "
                f"({x.shape[0]}). Got shape {tuple(labels.shape)} instead."
            )
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(self.classes_)):
            raise ConfigError(
                f"The 'y' parameter of TorchTarget.gradient must hold class indices in "
                f"[0, {len(self.classes_) - 1}]. Got values in "
                f"[{int(labels.min())}, {int(labels.max())}] instead."
            )
        loss = nn.functional.cross_entropy(self._logits(x), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        return grad.double().numpy()

    def __repr__(self) -> str:
        return f"TorchTarget({type(self.module).__name__}, classes={len(self.classes_)})"


def reshape_to(shape: Sequence[int]) -> Preprocess:
    """A preprocess function reshaping each record to ``shape`` (batch axis kept)."""
    dims = tuple(int(d) for d in shape)

    def _reshape(x: torch.Tensor) -> torch.Tensor:
        return x.reshape((x.shape[0], *dims))

    return _reshape


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
    from finmlsec.targets.torch_estimator import TorchClassifier

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
