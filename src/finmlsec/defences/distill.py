"""Defensive distillation for neural models (Papernot et al. 2016).

A teacher network is trained with its softmax at temperature ``T`` (logits divided by ``T``); its
softened outputs on the training data become the soft labels of a student of the same
architecture, also trained at ``T``; the student is deployed at ``T = 1``. Its logits are then
about ``T`` times larger, its softmax saturates, and the gradients of the cross-entropy loss that
gradient attacks follow vanish numerically.

That is gradient masking, not robustness: Carlini and Wagner (2017) break distilled networks
with an attack on the logits (a margin loss) instead of the saturated softmax. The benchmark
(``bench/_def_adversarial.py``, run by ``bench/bench_defences.py --only adversarial``) measures
both: the loss-gradient attack the defence was designed against, and a logit-margin attack (on
the OCR digits MLP at eps 0.2: cross-entropy PGD 0.995 -> 0.385, logit-margin PGD still 0.905).
For robustness use :class:`~finmlsec.defences.adversarial.AdversarialTraining`, which trains on
PGD examples inside the training loop for such networks.

``DefensiveDistillation(estimator)`` takes an unfitted
:class:`~finmlsec.targets.torch_estimator.TorchClassifier` (its architecture and training options
are reused); fitted, its ``estimator_`` is a fitted one holding the distilled student, a
white-box target like any other (the defence is ``transparent``: the scan attacks
``estimator_``).

Example:
    >>> import numpy as np
    >>> from finmlsec.targets.torch_estimator import TorchClassifier
    >>> X = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> net = TorchClassifier(kwargs={"in_features": 4, "n_classes": 2, "hidden": [16]},
    ...                       epochs=15, input_kind="tabular")
    >>> student = DefensiveDistillation(net, temperature=20).fit(X, y).estimator_
    >>> float((student.predict(X) == y).mean()) > 0.9, student.gradient(X[:3], y[:3]).shape
    (True, (3, 4))
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import clone

from finmlsec.defences._params import Float
from finmlsec.defences.base import DEFENCES, Defence
from finmlsec.errors import CapabilityError
from finmlsec.extras import require


def _train(est: Any, X: np.ndarray, target: Any, temperature: float) -> Any:
    """Train a fresh module of ``est``'s architecture with its softmax at ``temperature``;
    ``target``: class indices (int64 tensor) or soft labels (float tensor)."""
    torch = require("torch", "defensive distillation")

    from finmlsec.targets.torch import ARCHITECTURES, reshape_to

    torch.manual_seed(est.random_state)
    module = ARCHITECTURES.get(est.architecture)(**dict(est.kwargs or {}))
    pre = reshape_to(est.input_shape) if est.input_shape else None
    x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    opt = torch.optim.Adam(module.parameters(), lr=float(est.lr),
                           weight_decay=float(est.weight_decay))
    gen = torch.Generator().manual_seed(est.random_state)
    module.train()
    for _ in range(est.epochs):
        for batch in torch.randperm(len(x), generator=gen).split(est.batch_size):
            xb = pre(x[batch]) if pre is not None else x[batch]
            opt.zero_grad()
            logits = module(xb) / temperature
            torch.nn.functional.cross_entropy(logits, target[batch]).backward()
            opt.step()
    return module.eval(), pre


@DEFENCES.register("defensive_distillation")
class DefensiveDistillation(Defence):
    """Train teacher and student at ``temperature``, deploy the student at 1; see the module
    docstring. The estimator must be a ``TorchClassifier`` (a torch architecture to retrain);
    ``estimator_`` is the student (a fitted ``TorchClassifier``), ``teacher_`` the teacher's
    network."""

    countermeasure: ClassVar[str] = "defensive_distillation"
    counters: ClassVar[frozenset[str]] = frozenset({"induce_false_prediction"})
    stage: ClassVar[str] = "training"
    summary: ClassVar[str] = "defensive distillation at temperature T (falls to logit attacks)"
    neural_only: ClassVar[bool] = True
    #: its measured effect can be masking (scan/decide.py MASKING): never offered as a remedy
    masking: ClassVar[bool] = True
    transparent: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"temperature": [Float(1.0)]}

    def __init__(self, estimator: Any = None, *, temperature: float = 20.0) -> None:
        self.estimator = estimator
        self.temperature = temperature

    def fit_cost(self) -> float:
        """The teacher and the student."""
        return 2.0

    def _fit(self, X: Any, y: Any) -> None:
        torch = require("torch", "defensive distillation")
        from finmlsec.targets.torch import TorchTarget

        estimator = self.estimator
        T = float(self.temperature)
        if not all(hasattr(estimator, a) for a in ("architecture", "kwargs", "epochs")):
            raise CapabilityError(
                f"defensive distillation retrains a neural network; it needs a TorchClassifier, "
                f"got {type(estimator).__name__}"
            )
        Xf = np.asarray(X, dtype=np.float32)
        classes, idx = np.unique(np.asarray(y), return_inverse=True)
        teacher, pre = _train(estimator, Xf, torch.from_numpy(idx.astype(np.int64)), T)
        with torch.no_grad():
            xb = torch.from_numpy(np.ascontiguousarray(Xf))
            soft = torch.softmax(teacher(pre(xb) if pre is not None else xb) / T, dim=1)
        student, pre = _train(estimator, Xf, soft.float(), T)
        out = clone(estimator)
        out.classes_ = classes
        out.module_ = student
        out.target_ = TorchTarget(student, list(classes), input_kind=estimator.input_kind,
                                  preprocess=pre)
        out.capabilities = out.target_.capabilities
        self.teacher_ = teacher
        self._adopt(out)
