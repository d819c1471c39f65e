"""PyTorch models as targets, and the small convention by which they are stored.

:class:`TorchTarget` wraps an ``nn.Module`` that maps a float tensor of inputs to class logits.
It gives probabilities (softmax of the logits), labels, and white-box gradients of the
cross-entropy loss with respect to the input (capability ``"gradient"``), which gradient attacks
such as PGD read through an ``Oracle(..., access="white_box")``.

How such models are stored and loaded from a spec: :mod:`finmlsec.targets.torch_files`.

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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from finmlsec.errors import ConfigError, TargetError
from finmlsec.extras import missing
from finmlsec.registry import Registry
from finmlsec.schema import InputKind

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
