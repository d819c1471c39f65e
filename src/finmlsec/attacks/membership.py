"""Membership inference from the target's confidence: calibrated metric attacks and shadow models.

* :class:`MetricAttack` (Yeom et al. 2018; calibration after Watson et al. 2022): the score is the
  negative loss ``log p_y`` (or the confidence ``p_y``) of the candidate's true label, calibrated
  by a reference: ``none``; ``population`` (the candidate's percentile among population records
  of the same class, so that easy and hard classes compare); ``per_example`` (minus the mean
  loss reference models that did not train on the record give it).
* :class:`ShadowModels` (Shokri et al. 2017): shadow models trained like the target on halves of
  the population; an attack classifier per class learns IN/OUT from their outputs.

Example:
    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from finmlsec.attacks.base import AttackData, Labeled
    >>> from finmlsec.targets.oracle import Oracle
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4)); y = (X[:, 0] + rng.normal(size=200) > 0).astype(int)
    >>> target = RandomForestClassifier(n_estimators=20, random_state=0).fit(X[:100], y[:100])
    >>> data = AttackData(members=Labeled(X[:100], y[:100]), nonmembers=Labeled(X[100:], y[100:]))
    >>> result = MetricAttack(reference="none").run(Oracle(target, input_kind="image"), data)
    >>> result.metrics["auc"] > 0.6
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from finmlsec.arrays import take_rows
from finmlsec.attacks.base import ATTACKS, INPUT_KINDS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.extraction_common import check_choice, check_int
from finmlsec.attacks.membership_common import (
    ReferenceModels,
    candidates,
    label_columns,
    logit_confidence,
    membership_result,
    true_proba,
)
from finmlsec.attacks.membership_lira import train_references
from finmlsec.targets.cutoff import decision_columns
from finmlsec.targets.oracle import Oracle

_EPS = 1e-12


def _signal(P: np.ndarray, cols: np.ndarray, kind: str) -> np.ndarray:
    p = true_proba(P, cols)
    if kind == "confidence":
        return p
    if kind == "logit":
        return logit_confidence(P, cols)
    return np.log(np.clip(p, _EPS, 1.0))  # negative cross-entropy loss


@ATTACKS.register("membership.metric")
class MetricAttack(Attack):
    """Threshold on the loss (``signal='loss'``), confidence or logit-scaled confidence of the
    true label, with an optional ``reference`` calibration (``none``, ``population``,
    ``per_example`` with ``n_reference`` reference models). See the module docstring."""

    name: ClassVar[str] = "membership.metric"
    threat: ClassVar[str] = "infer_training_data"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"proba", "members", "nonmembers"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0024.000",)
    owasp: ClassVar[tuple[str, ...]] = ("ML04",)
    summary: ClassVar[str] = (
        "loss/confidence threshold (Yeom 2018), calibrated by population or per-example "
        "reference (Watson 2022)"
    )
    input_kinds: ClassVar[tuple[str, ...]] = INPUT_KINDS
    cost_rank: ClassVar[int] = 1
    strength_rank: ClassVar[int] = 5

    signal: str = "loss"
    reference: str = "none"
    n_reference: int = 8
    seed: int = 0

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """``n_reference`` reference models with the per-example reference, else none."""
        return float(self.n_reference if self.reference == "per_example" else 0)

    def _validate(self) -> None:
        check_choice("MetricAttack", "signal", self.signal, ("loss", "confidence", "logit"))
        check_choice("MetricAttack", "reference", self.reference,
                     ("none", "population", "per_example"))
        check_int("MetricAttack", "n_reference", self.n_reference, 1, 1024)
        check_int("MetricAttack", "seed", self.seed, 0)

    def required(self) -> frozenset[str]:
        extra = {"none": set(), "population": {"population"},
                 "per_example": {"population", "model_factory"}}[self.reference]
        return self.needs | extra

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        pop = data.population if self.reference == "population" else None
        n_pop = len(pop) if pop is not None else 0
        if oracle.remaining is not None:
            n_pop = min(n_pop, oracle.remaining // 2)
        limit = None if oracle.remaining is None else oracle.remaining - n_pop
        cands, notes = candidates(data, limit, self.seed)
        cols = label_columns(oracle.classes_, cands.y)
        s = _signal(oracle.predict_proba(cands.X), cols, self.signal)
        if self.reference == "population":
            assert pop is not None and pop.y is not None
            pick = np.sort(np.random.default_rng(self.seed + 2).choice(
                len(pop), size=n_pop, replace=False))
            pcols = label_columns(oracle.classes_, np.asarray(pop.y)[pick])
            sp = _signal(oracle.predict_proba(take_rows(pop.X, pick)), pcols, self.signal)
            score = np.empty_like(s)
            for c in np.unique(cols):
                ref = np.sort(sp[pcols == c]) if (pcols == c).any() else np.sort(sp)
                score[cols == c] = np.searchsorted(ref, s[cols == c], side="right") / len(ref)
            score = score + 1e-9 * s  # ties broken by the raw signal
        elif self.reference == "per_example":
            refs = train_references(data, self.n_reference, self.seed)
            sr = np.stack([_signal(p, cols, self.signal) for p in refs.proba(cands.X)])
            out = ~refs.membership_of(cands.X)
            n_out = out.sum(axis=0)
            mean_out = np.where(out, sr, 0.0).sum(axis=0) / np.maximum(n_out, 1)
            mean_all = sr.mean(axis=0)
            score = s - np.where(n_out > 0, mean_out, mean_all)
        else:
            score = s
        notes.append(f"signal {self.signal}, reference {self.reference}")
        return membership_result(score, cands, notes)


def _features(P: np.ndarray, cols: np.ndarray, decided: np.ndarray) -> np.ndarray:
    """The attack classifier's features of records with probabilities ``P``, true-label
    columns ``cols`` and decided columns ``decided`` (the model's decisions: at the bank's
    cut-off where it has one, see :func:`decision_features`)."""
    p = np.clip(P, _EPS, 1.0)
    py = true_proba(p, cols)
    entropy = -(p * np.log(p)).sum(axis=1)
    top = np.sort(p, axis=1)[:, ::-1]
    second = top[:, 1] if p.shape[1] > 1 else np.zeros(len(p))
    return np.column_stack([logit_confidence(P, cols), np.log(py), entropy, top[:, 0] - second,
                            (np.asarray(decided) == cols).astype(float)])


def decision_features(P: Any, cols: np.ndarray, model: Any) -> np.ndarray:
    """:func:`_features` of ``model``'s probabilities ``P``, with whether ``model`` is right on
    each record read from its decisions (:func:`~finmlsec.targets.cutoff.decision_columns`; an
    :class:`~finmlsec.targets.oracle.Oracle`: those of the target it queries), not from the most
    probable class: on 95/5 data decided at a cut-off of 0.1 the two differ on every record
    scored between 0.1 and 0.5."""
    P = np.asarray(P, dtype=float)
    decided = (model.decided_columns(P) if isinstance(model, Oracle)
               else decision_columns(model, P))
    return _features(P, cols, decided)


@ATTACKS.register("membership.shadow")
class ShadowModels(Attack):
    """Shokri et al.'s shadow-model attack: ``n_shadow`` shadow models, one attack classifier
    (gradient boosting on confidence features) per class. See the module docstring."""

    name: ClassVar[str] = "membership.shadow"
    threat: ClassVar[str] = "infer_training_data"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset(
        {"proba", "population", "model_factory", "members", "nonmembers"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0024.000",)
    owasp: ClassVar[tuple[str, ...]] = ("ML04",)
    summary: ClassVar[str] = "shadow models with a per-class attack classifier (Shokri 2017)"
    input_kinds: ClassVar[tuple[str, ...]] = INPUT_KINDS
    cost_rank: ClassVar[int] = 4
    strength_rank: ClassVar[int] = 4

    n_shadow: int = 8
    seed: int = 0

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """``n_shadow`` shadow models."""
        return float(self.n_shadow)

    def _validate(self) -> None:
        check_int("ShadowModels", "n_shadow", self.n_shadow, 2, 1024)
        check_int("ShadowModels", "seed", self.seed, 0)

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        from sklearn.ensemble import GradientBoostingClassifier

        assert data.population is not None and data.population.y is not None
        cands, notes = candidates(data, oracle.remaining, self.seed)
        shadows: ReferenceModels = train_references(data, self.n_shadow, self.seed)
        pop_y = np.asarray(data.population.y)
        pcols = label_columns(oracle.classes_, pop_y)
        feats, labels, klass = [], [], []
        for model, keep in zip(shadows.models, shadows.keep, strict=True):
            feats.append(decision_features(model.predict_proba(data.population.X), pcols,
                                           model))
            labels.append(keep.astype(int))
            klass.append(pcols)
        F, L, K = np.vstack(feats), np.concatenate(labels), np.concatenate(klass)
        cols = label_columns(oracle.classes_, cands.y)
        Ft = decision_features(oracle.predict_proba(cands.X), cols, oracle)
        score = np.zeros(len(cands))
        models: dict[Any, Any] = {}
        for c in np.unique(cols):
            sel = np.equal(K, c)
            if sel.sum() < 10 or len(np.unique(L[sel])) < 2:
                sel = np.ones(len(K), dtype=bool)
            clf = GradientBoostingClassifier(n_estimators=100, max_depth=2,
                                             random_state=self.seed).fit(F[sel], L[sel])
            models[c] = clf
            score[cols == c] = clf.predict_proba(Ft[cols == c])[:, 1]
        notes.append(f"{self.n_shadow} shadow models, {len(models)} attack classifier(s)")
        return membership_result(score, cands, notes,
                                 {"shadow_models": float(self.n_shadow)})
