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

``adversarial`` (default None: plain training) trains it adversarially, Madry-style: every
mini-batch is replaced (or joined) by PGD examples crafted against the current weights in the
L-infinity ball of radius ``eps``; see :data:`ADVERSARIAL_KEYS` for the options and
:mod:`finmlsec.defences.adversarial`, which sets it.

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

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from finmlsec.errors import ConfigError
from finmlsec.extras import require

#: Options of ``TorchClassifier(adversarial={...})`` and their defaults. ``eps``: L-infinity radius
#: (input units, required); ``steps``: PGD steps per mini-batch; ``step``: step size (None:
#: 2.5 * eps / steps); ``clip_min``/``clip_max``: the valid input box (None: unbounded);
#: ``random_start``: start each PGD run at a uniform point of the ball; ``loss``: ``"pgd"``
#: (cross-entropy on the adversarial batch, Madry et al. 2018) or ``"trades"`` (cross-entropy on
#: the clean batch + ``beta`` * KL(clean || adversarial), Zhang et al. 2019); ``clean_weight``:
#: for ``"pgd"``, the weight of the clean batch's loss (0: adversarial only); ``warmup``: epochs
#: over which eps grows linearly from eps / warmup to eps (0: full eps from the start).
ADVERSARIAL_KEYS: dict[str, Any] = {
    "eps": None, "steps": 7, "step": None, "clip_min": None, "clip_max": None,
    "random_start": True, "loss": "pgd", "beta": 6.0, "clean_weight": 0.0, "warmup": 0,
}


def _adversarial_options(opts: Any) -> dict[str, Any]:
    """``opts`` merged over :data:`ADVERSARIAL_KEYS`, checked."""
    def bad(key: str, want: str) -> ConfigError:
        return ConfigError(
            f"The 'adversarial' parameter of TorchClassifier: {key!r} must be {want}. Got "
            f"{(opts or {}).get(key)!r} instead."
        )

    if not isinstance(opts, dict):
        raise ConfigError(
            f"The 'adversarial' parameter of TorchClassifier must be a dict of "
            f"{sorted(ADVERSARIAL_KEYS)} or None. Got {opts!r} instead."
        )
    unknown = sorted(set(opts) - set(ADVERSARIAL_KEYS))
    if unknown:
        raise ConfigError(
            f"The 'adversarial' parameter of TorchClassifier has unknown key(s) {unknown}; "
            f"known: {sorted(ADVERSARIAL_KEYS)}"
        )
    o = {**ADVERSARIAL_KEYS, **opts}
    num = (int, float)
    if not isinstance(o["eps"], num) or isinstance(o["eps"], bool) or not o["eps"] > 0:
        raise bad("eps", "a float > 0")
    if not isinstance(o["steps"], int) or isinstance(o["steps"], bool) or o["steps"] < 1:
        raise bad("steps", "an int >= 1")
    if o["step"] is not None and (not isinstance(o["step"], num) or not o["step"] > 0):
        raise bad("step", "a float > 0 or None")
    if o["loss"] not in ("pgd", "trades"):
        raise bad("loss", "'pgd' or 'trades'")
    if not isinstance(o["beta"], num) or o["beta"] < 0:
        raise bad("beta", "a float >= 0")
    if not isinstance(o["clean_weight"], num) or not 0 <= o["clean_weight"] < 1:
        raise bad("clean_weight", "a float in [0, 1)")
    if not isinstance(o["warmup"], int) or isinstance(o["warmup"], bool) or o["warmup"] < 0:
        raise bad("warmup", "an int >= 0")
    for k in ("clip_min", "clip_max"):
        if o[k] is not None and not isinstance(o[k], num):
            raise bad(k, "a float or None")
    if o["step"] is None:
        o["step"] = 2.5 * float(o["eps"]) / o["steps"]
    return o


def pgd_batch(module: Any, x: Any, target: Any, eps: float, step: float, steps: int,
              lo: float | None, hi: float | None, random_start: bool, gen: Any,
              reference: Any = None) -> Any:
    """L-infinity PGD on a batch, in torch (used inside the training loop): maximise the
    cross-entropy against ``target`` (class indices or soft labels) or, when ``reference``
    (clean-input probabilities) is given, the KL divergence from it (TRADES). Returns the
    adversarial batch, detached; the module's mode is left as it was."""
    import torch

    f = torch.nn.functional
    was_training = module.training
    module.eval()
    x0 = x.detach()
    if random_start:
        xa = x0 + (torch.rand(x0.shape, generator=gen) * 2 - 1) * eps
    else:
        xa = x0 + 0.001 * torch.randn(x0.shape, generator=gen) if reference is not None else x0
    for _ in range(steps + 1):
        xa = torch.max(torch.min(xa, x0 + eps), x0 - eps)
        if lo is not None or hi is not None:
            xa = xa.clamp(lo, hi)
        if _ == steps:
            break
        xa = xa.detach().requires_grad_(True)
        logits = module(xa)
        if reference is not None:
            loss = f.kl_div(f.log_softmax(logits, dim=1), reference, reduction="sum")
        else:
            loss = f.cross_entropy(logits, target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        xa = xa.detach() + step * grad.sign()
    module.train(was_training)
    return xa.detach()


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
        adversarial: dict[str, Any] | None = None,
        private: dict[str, Any] | None = None,
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
        self.adversarial = adversarial
        self.private = private

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
        """Train on ``X`` (class indices, labels or soft labels ``y``; adversarially when
        ``adversarial`` is set: ``adversarial_examples_`` then counts the PGD examples made)."""
        torch = require("torch", "TorchClassifier")

        from finmlsec.targets.torch import ARCHITECTURES, TorchTarget, reshape_to

        self._validate()
        adv = None if self.adversarial is None else _adversarial_options(self.adversarial)
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
        self.adversarial_examples_ = 0
        if self.private is not None:
            self.module_ = self._fit_private(module, x, target, pre, gen).eval()
            self.target_ = TorchTarget(self.module_, list(self.classes_),
                                       input_kind=self.input_kind,  # type: ignore[arg-type]
                                       preprocess=pre)
            self.capabilities = self.target_.capabilities
            return self
        for epoch in range(self.epochs):
            for batch in torch.randperm(len(x), generator=gen).split(self.batch_size):
                xb = pre(x[batch]) if pre is not None else x[batch]
                opt.zero_grad()
                if adv is None:
                    loss = torch.nn.functional.cross_entropy(module(xb), target[batch])
                else:
                    loss = self._adversarial_loss(module, xb, target[batch], adv, epoch, gen)
                loss.backward()
                opt.step()
        self.module_ = module.eval()
        self.target_ = TorchTarget(self.module_, list(self.classes_),
                                   input_kind=self.input_kind,  # type: ignore[arg-type]
                                   preprocess=pre)
        self.capabilities = self.target_.capabilities
        return self

    def _fit_private(self, module: Any, x: Any, target: Any, pre: Any, gen: Any) -> Any:
        """DP-SGD (``private``: ``noise_multiplier``, ``max_grad_norm``, ``sample_rate``,
        ``steps``; set by :class:`finmlsec.defences.dp.DPSGD`, which accounts for it): ``steps``
        Poisson-sampled batches, per-example gradients clipped and noised by Opacus, Adam."""
        import torch

        require("opacus", "DP-SGD")
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer

        o = dict(self.private or {})
        if self.adversarial is not None:
            raise ConfigError("TorchClassifier: 'private' (DP-SGD) and 'adversarial' training "
                              "cannot be combined")
        q, steps = float(o["sample_rate"]), int(o["steps"])
        gs = GradSampleModule(module)
        opt = DPOptimizer(torch.optim.Adam(gs.parameters(), lr=float(self.lr)),
                          noise_multiplier=float(o["noise_multiplier"]),
                          max_grad_norm=float(o["max_grad_norm"]),
                          expected_batch_size=max(1, int(round(q * len(x)))),
                          generator=gen)
        with warnings.catch_warnings():
            # Opacus's hooks fire on outputs: inputs need no gradient (a harmless torch warning)
            warnings.filterwarnings("ignore", message="Full backward hook is firing",
                                    category=UserWarning)
            for _ in range(steps):
                batch = torch.rand(len(x), generator=gen) < q
                if not bool(batch.any()):  # probability (1 - q)^n: negligible at these sizes
                    continue
                xb = pre(x[batch]) if pre is not None else x[batch]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(gs(xb), target[batch]).backward()
                opt.step()
        gs.remove_hooks()
        return gs._module

    def _adversarial_loss(self, module: Any, xb: Any, tb: Any, o: dict[str, Any], epoch: int,
                          gen: Any) -> Any:
        import torch

        f = torch.nn.functional
        ramp = min(1.0, (epoch + 1) / o["warmup"]) if o["warmup"] else 1.0
        eps, step = float(o["eps"]) * ramp, float(o["step"]) * ramp
        lo, hi = o["clip_min"], o["clip_max"]
        self.adversarial_examples_ += len(xb)
        if o["loss"] == "trades":
            clean = module(xb)
            ref = f.softmax(clean, dim=1).detach()
            xa = pgd_batch(module, xb, None, eps, step, o["steps"], lo, hi, False, gen, ref)
            kl = f.kl_div(f.log_softmax(module(xa), dim=1), f.softmax(clean, dim=1),
                          reduction="batchmean")
            return f.cross_entropy(clean, tb) + float(o["beta"]) * kl
        xa = pgd_batch(module, xb, tb, eps, step, o["steps"], lo, hi, bool(o["random_start"]),
                       gen)
        loss = f.cross_entropy(module(xa), tb)
        w = float(o["clean_weight"])
        return (1 - w) * loss + w * f.cross_entropy(module(xb), tb) if w else loss

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.target_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        return self.target_.predict(X)

    def gradient(self, X: Any, y: Any) -> np.ndarray:
        """d cross-entropy / d input (``y``: class indices), as :meth:`TorchTarget.gradient`."""
        return self.target_.gradient(X, y)
