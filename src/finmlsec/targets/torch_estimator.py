"""A scikit-learn estimator that trains a registered torch architecture.

:class:`TorchClassifier` is how a torch model is *retrained*: a scan's countermeasures that
retrain the model (adversarial training, distillation, PATE students) call ``clone`` and ``fit``
on it like on any scikit-learn classifier, and the fitted estimator is itself a white-box target
(``predict_proba``, ``predict``, ``gradient``, ``capabilities``), so gradient attacks still reach
the retrained model. A torch target loaded from a state_dict gets a ``model_factory`` returning an
unfitted ``TorchClassifier`` with the architecture and the training options of the spec
(``model.torch.train: {epochs, lr, batch_size, weight_decay}``).

``fit(X, y)`` takes class indices (all ``kwargs["n_classes"]`` outputs are kept as classes, even
those absent from ``y``), other labels (their sorted unique values become the classes), or soft
labels (an ``(n, k)`` array of class probabilities, e.g. a teacher's outputs for distillation).

Example:
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = TorchClassifier(architecture="mlp", kwargs={"in_features": 4, "n_classes": 2},
    ...                       epochs=30, input_kind="tabular").fit(X, y)
    >>> float((clf.predict(X) == y).mean()) > 0.9, clf.gradient(X[:2], y[:2]).shape
    (True, (2, 4))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from finmlsec.errors import ConfigError


class TorchClassifier(ClassifierMixin, BaseEstimator):
    """Train ``ARCHITECTURES[architecture](**kwargs)`` with Adam on cross-entropy."""

    def __init__(
        self,
        architecture: str = "mlp",
        kwargs: dict[str, Any] | None = None,
        input_shape: Sequence[int] | None = None,
        epochs: int = 25,
        lr: float = 3e-3,
        batch_size: int = 32,
        weight_decay: float = 1e-4,
        random_state: int = 0,
        input_kind: str = "image",
    ) -> None:
        self.architecture = architecture
        self.kwargs = kwargs
        self.input_shape = input_shape
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.input_kind = input_kind

    def _validate(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"The '{name}' parameter of TorchClassifier must be an int >= 1. Got "
                    f"{value!r} instead."
                )
        if not isinstance(self.lr, int | float) or not self.lr > 0:
            raise ConfigError(
                f"The 'lr' parameter of TorchClassifier must be a float > 0. Got {self.lr!r} "
                "instead."
            )

    def fit(self, X: Any, y: Any) -> TorchClassifier:
        import torch

        from finmlsec.targets.torch import ARCHITECTURES, TorchTarget, reshape_to

        self._validate()
        y_arr = np.asarray(y)
        n_out = (self.kwargs or {}).get("n_classes")
        if y_arr.ndim == 2:  # soft labels
            self.classes_ = np.arange(y_arr.shape[1])
            target = torch.from_numpy(y_arr.astype(np.float32))
        elif (n_out is not None and np.issubdtype(y_arr.dtype, np.integer) and y_arr.size
              and y_arr.min() >= 0 and y_arr.max() < int(n_out)):
            # class indices: keep every output, even classes absent from this training set
            self.classes_ = np.arange(int(n_out))
            target = torch.from_numpy(y_arr.astype(np.int64))
        else:
            self.classes_, idx = np.unique(y_arr, return_inverse=True)
            if n_out is not None and len(self.classes_) != int(n_out):
                raise ConfigError(
                    f"TorchClassifier: y has {len(self.classes_)} classes but the architecture "
                    f"has n_classes={n_out}; give class indices in [0, {int(n_out) - 1}] or fix "
                    "kwargs['n_classes']"
                )
            target = torch.from_numpy(idx.astype(np.int64))
        torch.manual_seed(self.random_state)
        module = ARCHITECTURES.get(self.architecture)(**dict(self.kwargs or {}))
        pre = reshape_to(self.input_shape) if self.input_shape else None
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(X, dtype=np.float32)))
        opt = torch.optim.Adam(module.parameters(), lr=float(self.lr),
                               weight_decay=float(self.weight_decay))
        gen = torch.Generator().manual_seed(self.random_state)
        module.train()
        for _ in range(self.epochs):
            for batch in torch.randperm(len(x), generator=gen).split(self.batch_size):
                xb = pre(x[batch]) if pre is not None else x[batch]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(module(xb), target[batch]).backward()
                opt.step()
        self.module_ = module.eval()
        self.target_ = TorchTarget(self.module_, list(self.classes_),
                                   input_kind=self.input_kind,  # type: ignore[arg-type]
                                   preprocess=pre)
        self.capabilities = self.target_.capabilities
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.target_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        return self.target_.predict(X)

    def gradient(self, X: Any, y: Any) -> np.ndarray:
        """d cross-entropy / d input (``y``: class indices), as :meth:`TorchTarget.gradient`."""
        return self.target_.gradient(X, y)
