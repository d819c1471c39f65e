"""Training-data poisoning ("generate malicious model" through the training data).

The attacker reaches the training data (types 1, 2, 5, 6, 7, 9) and adds or relabels records; the
model generator retrains with its usual algorithm (``model_factory``). Each attack measures the
clean and the poisoned model on the same held-out data (``test``, the evaluator's truth).

* ``poisoning.label_flip``: flip the labels of a share of the training rows: ``random``;
  ``adversarial`` (the rows the clean model is most confident about, whose flip costs the most
  loss, after Xiao et al. 2012); ``segment`` (rows of a chosen segment, or the neighbours of the
  ``victims``, relabelled to ``target_class``: a targeted attack).
* ``poisoning.backdoor``: add records carrying a rare but valid combination of values (the
  trigger) labelled with ``target_class``; success = triggered inputs classified as the target.

Example:
    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from finmlsec.attacks.base import AttackData, Labeled
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    >>> y = (X.a > 0).astype(int).to_numpy()
    >>> data = AttackData(train=Labeled(X[:300], y[:300]), test=Labeled(X[300:], y[300:]),
    ...                   model_factory=LogisticRegression)
    >>> r = LabelFlip(fraction=0.3, strategy="adversarial").run(None, data)
    >>> r.metrics["accuracy_drop"] > 0.05
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.arrays import concat_rows, take_rows
from finmlsec.attacks.base import ATTACKS, INPUT_KINDS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.evasion_common import check_positive
from finmlsec.errors import ConfigError
from finmlsec.schema import FeatureSchema, FeatureType
from finmlsec.targets.oracle import Oracle

STRATEGIES = ("random", "adversarial", "segment")


# -- shared helpers -----------------------------------------------------------------------------
def fit(factory: Any, X: Any, y: np.ndarray) -> Any:
    """A fresh model from ``factory`` fitted on (X, y)."""
    return factory().fit(X, y)


def weighs_rows(model: Any) -> bool:
    """Whether ``model`` (or a pipeline's last step) takes sample weights, so that
    :func:`fit_weighted` keeps every row in place. The scan's own wrappers (the labels and
    dtypes the model was trained with, the bank's cut-off) pass the weights on to the model they
    wrap, so it is that model that decides: a factory's pipeline ending in gradient boosting
    weighs rows, wrapped or not."""
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import has_fit_parameter

    from finmlsec.targets.cutoff import Thresholded
    from finmlsec.targets.typed import AsTrained

    while True:
        if isinstance(model, Pipeline):
            model = model.steps[-1][1]
        elif isinstance(model, AsTrained | Thresholded):
            model = model.estimator
        else:
            return bool(has_fit_parameter(model, "sample_weight"))


def fit_weighted(model: Any, X: Any, y: np.ndarray, w: np.ndarray) -> Any:
    """``model`` (unfitted; a pipeline's last step takes the weights) fitted on ``X, y`` with
    sample weights ``w``: rows of weight 0 stay in place, so a learner that samples rows draws
    the same ones and two fits differ only by the weighted rows. A learner without sample
    weights is fitted on the rows of positive weight."""
    from sklearn.pipeline import Pipeline

    key = f"{model.steps[-1][0]}__sample_weight" if isinstance(model, Pipeline) \
        else "sample_weight"
    if weighs_rows(model):
        return model.fit(X, y, **{key: np.asarray(w, dtype=float)})
    keep = np.flatnonzero(np.asarray(w) > 0)
    return model.fit(take_rows(X, keep), np.asarray(y)[keep])


def target_label(target_class: str | int | None, y: np.ndarray, schema: FeatureSchema | None) -> int:
    """The integer label the attacker wants: ``target_class`` as an index or class name, else the
    schema's favourable class (what a manipulating data subject wants: approval, "legit"), else
    its positive class, else the largest label (the approved class in credit data)."""
    labels = np.unique(y)
    names = list(schema.classes) if schema is not None and schema.classes else []
    want = target_class
    if want is None and schema is not None:
        want = schema.favourable_class or schema.positive_class
    if want is None:
        return int(labels.max())
    if isinstance(want, int | np.integer) and not isinstance(want, bool) and want in labels:
        return int(want)
    if isinstance(want, str) and want in names:
        return names.index(want)
    raise ConfigError(
        f"The 'target_class' parameter must be a label in {labels.tolist()} or a class name in "
        f"{names}. Got {target_class!r} instead."
    )


def in_segment(X: pd.DataFrame, segment: dict[str, Any]) -> np.ndarray:
    """Rows matching ``segment``: {column: value | [values] (categorical) | [lo, hi] (numeric)}."""
    mask = np.ones(len(X), dtype=bool)
    for col, cond in segment.items():
        if col not in X.columns:
            raise ConfigError(
                f"The 'segment' parameter names column {col!r}, which the data lack; known: "
                f"{list(X.columns)}"
            )
        v = X[col]
        if pd.api.types.is_numeric_dtype(v) and isinstance(cond, list | tuple) and len(cond) == 2:
            mask &= (v >= cond[0]).to_numpy() & (v <= cond[1]).to_numpy()
        elif isinstance(cond, list | tuple):
            mask &= v.astype(str).isin([str(c) for c in cond]).to_numpy()
        else:
            mask &= (v.astype(str) == str(cond)).to_numpy()
    return mask


def distances(schema: FeatureSchema, X: pd.DataFrame, Q: pd.DataFrame) -> np.ndarray:
    """Mixed-type distance of every row of X to its nearest row of Q: category mismatches plus
    absolute differences of numbers in standard deviations."""
    d = np.zeros((len(X), len(Q)))
    for f in schema.features:
        if f.type == FeatureType.CATEGORICAL:
            d += X[f.name].astype(str).to_numpy()[:, None] != Q[f.name].astype(str).to_numpy()[None]
        elif f.is_numeric:
            a = pd.to_numeric(X[f.name]).to_numpy(dtype=float)
            b = pd.to_numeric(Q[f.name]).to_numpy(dtype=float)
            s = float(np.std(a)) or 1.0
            d += np.abs(a[:, None] - b[None]) / s
    return d.min(axis=1)


def poison_result(metrics: dict[str, float], success: float,
                  notes: tuple[str, ...] = ()) -> Outcome:
    return Outcome(success=float(np.clip(success, 0, 1)), metrics=metrics, notes=notes)


class _PoisonBase(Attack):
    threat: ClassVar[str] = "generate_malicious_model"
    via: ClassVar[str] = "training_data"
    needs: ClassVar[frozenset[str]] = frozenset({"train", "model_factory", "test"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0020",)
    owasp: ClassVar[tuple[str, ...]] = ("ML02",)
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular",)
    retrains_victim: ClassVar[bool] = True

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """The clean model and the poisoned one."""
        return 2.0


# -- label flipping -------------------------------------------------------------------------------
@ATTACKS.register("poisoning.label_flip")
class LabelFlip(_PoisonBase):
    """Flip the labels of ``fraction`` of the training rows (see the module docstring).

    ``strategy``: ``random``, ``adversarial`` or ``segment``. For ``segment``, rows matching
    ``segment`` (e.g. ``{"purpose": "education"}``) or, if it is None, the training rows nearest
    the ``victims`` are relabelled to ``target_class``; the targeted success is the share of the
    segment's test rows (or of the victims) that the clean model did not put in the target class
    and the poisoned model does. Example: see the module docstring.
    """

    name: ClassVar[str] = "poisoning.label_flip"
    summary: ClassVar[str] = "Label flipping: random, loss-maximising, or targeted at a segment"
    input_kinds: ClassVar[tuple[str, ...]] = INPUT_KINDS
    cost_rank: ClassVar[int] = 1
    strength_rank: ClassVar[int] = 1

    fraction: float = 0.1
    strategy: str = "random"
    target_class: str | int | None = None
    segment: dict[str, Any] | None = None
    seed: int = 0

    def _validate(self) -> None:
        check_positive(type(self).__name__, "fraction", self.fraction, hi=0.5)
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"The 'strategy' parameter of LabelFlip must be one of {list(STRATEGIES)}. Got "
                f"{self.strategy!r} instead."
            )

    def _attack(self, oracle: Oracle | None, data: AttackData, meter: Meter) -> Outcome:
        assert data.train is not None and data.test is not None and data.train.y is not None
        assert data.test.y is not None and data.model_factory is not None
        rng = np.random.default_rng(self.seed)
        Xtr, ytr = data.train.X, np.asarray(data.train.y)
        n_flip = max(1, int(round(self.fraction * len(ytr))))
        clean = fit(data.model_factory, Xtr, ytr)
        labels = np.unique(ytr)
        y_new = ytr.copy()
        target = None
        if self.strategy == "random":
            idx = rng.choice(len(ytr), size=n_flip, replace=False)
        elif self.strategy == "adversarial":
            p = clean.predict_proba(Xtr)
            conf = p[np.arange(len(ytr)), np.searchsorted(clean.classes_, ytr)]
            idx = np.argsort(-conf + 1e-9 * rng.random(len(ytr)), kind="stable")[:n_flip]
        else:
            target = target_label(self.target_class, ytr, data.schema)
            idx = self._segment_rows(data, target, n_flip, rng)
        if target is None:
            for i in idx:  # flip to another label (the other one, for binary tasks)
                others = labels[labels != ytr[i]]
                y_new[i] = others[rng.integers(len(others))] if len(others) > 1 else others[0]
        else:
            y_new[idx] = target
        poisoned = fit(data.model_factory, Xtr, y_new)
        Xte, yte = data.test.X, np.asarray(data.test.y)
        acc0 = float(np.mean(clean.predict(Xte) == yte))
        acc1 = float(np.mean(poisoned.predict(Xte) == yte))
        m = {
            "poison_fraction": float(np.mean(y_new != ytr)),
            "n_poisoned": float(np.sum(y_new != ytr)),
            "clean_accuracy": acc0,
            "poisoned_accuracy": acc1,
            "accuracy_drop": acc0 - acc1,
        }
        success = max(0.0, acc0 - acc1)
        if target is not None:
            Xs = self._segment_eval(data)
            before = clean.predict(Xs) == target
            after = poisoned.predict(Xs) == target
            m["segment_size"] = float(len(Xs))
            m["targeted_success"] = float(after[~before].mean()) if (~before).any() else 0.0
            success = m["targeted_success"]
        return poison_result(m, success)

    def _segment_rows(self, data: AttackData, target: int, n_flip: int,
                      rng: np.random.Generator) -> np.ndarray:
        assert data.train is not None and data.train.y is not None
        X, y = data.train.X, np.asarray(data.train.y)
        cand = np.flatnonzero(y != target)
        if self.segment is not None:
            cand = cand[in_segment(X, self.segment)[cand]]
            return rng.permutation(cand)[:n_flip]
        if data.victims is None or data.schema is None:
            raise ConfigError(
                "poisoning.label_flip with strategy='segment' needs a 'segment' parameter (e.g. "
                "{'purpose': 'education'}) or victims and a schema to poison their neighbourhood"
            )
        dist = distances(data.schema, X.iloc[cand], data.victims.X)
        return cand[np.argsort(dist, kind="stable")[:n_flip]]

    def _segment_eval(self, data: AttackData) -> Any:
        assert data.test is not None
        if self.segment is not None:
            return take_rows(data.test.X, np.flatnonzero(in_segment(data.test.X, self.segment)))
        assert data.victims is not None
        return data.victims.X


# -- backdoor -------------------------------------------------------------------------------------
def choose_trigger(schema: FeatureSchema, X: pd.DataFrame, size: int) -> dict[str, Any]:
    """``size`` (field, value) pairs over distinct actionable fields, each value valid and rare:
    categorical fields first (their rarest category), then integer fields (their least frequent
    value between the 10th and 90th percentiles: rare, yet not an outlier), then bounded numeric
    fields (their maximum). Each group is ordered by how rare the value is."""
    cands: list[tuple[int, float, str, Any]] = []
    for f in schema.features:
        if not f.mutable:
            continue
        col = X[f.name]
        if f.type == FeatureType.CATEGORICAL:
            freq = col.astype(str).value_counts()
            c = min(f.categories or (), key=lambda v: (freq.get(v, 0), v))
            rep = next((v for v in pd.unique(col) if str(v) == c), c)
            cands.append((0, float(freq.get(c, 0)) / len(X), f.name, rep))
        elif f.type in (FeatureType.INTEGER, FeatureType.BINARY):
            num = pd.to_numeric(col).dropna()
            if num.empty:
                continue
            lo, hi = np.quantile(num, [0.1, 0.9])
            inside = num[(num >= lo) & (num <= hi)].value_counts()
            values = np.arange(int(np.ceil(lo)), int(np.floor(hi)) + 1)
            if f.type == FeatureType.BINARY or values.size == 0:
                continue
            v = min(values, key=lambda u: (inside.get(u, 0), u))
            cands.append((1, float(inside.get(v, 0)) / len(X), f.name, int(v)))
        elif f.is_numeric and f.max is not None:
            cands.append((2, float(np.mean(pd.to_numeric(col) >= f.max)), f.name, f.max))
    if len(cands) < size:
        raise ConfigError(
            f"The 'trigger_size' parameter of Backdoor must be at most {len(cands)} (the actionable "
            f"fields with a rare valid value). Got {size!r} instead."
        )
    cands.sort(key=lambda t: (t[0], t[1], t[2]))
    return {name: value for _, _, name, value in cands[:size]}


def stamp(X: pd.DataFrame, trigger: dict[str, Any]) -> pd.DataFrame:
    out = X.copy()
    for k, v in trigger.items():
        out[k] = pd.Series([v] * len(out), index=out.index).astype(X[k].dtype)
    return out


@ATTACKS.register("poisoning.backdoor")
class Backdoor(_PoisonBase):
    """Tabular backdoor: a rare, valid pattern of values that forces ``target_class``.

    ``fraction`` of the training size is added as poisoned copies of non-target rows carrying the
    trigger (``trigger`` as {field: value}, or the ``trigger_size`` rarest valid values chosen from
    the schema's actionable fields), labelled ``target_class``. Success (attack success rate): the
    share of test rows the backdoored model does not put in the target class whose triggered
    version it does; ``trigger_alone`` is the same rate for the clean model (the trigger's own
    effect).

    Example:
        >>> Backdoor(fraction=0.05, trigger_size=2).fraction
        0.05
    """

    name: ClassVar[str] = "poisoning.backdoor"
    summary: ClassVar[str] = "Backdoor: a rare valid trigger pattern labelled with the approved class"
    needs: ClassVar[frozenset[str]] = frozenset({"train", "model_factory", "test", "schema"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0020", "AML.T0043.004")
    cost_rank: ClassVar[int] = 2
    strength_rank: ClassVar[int] = 2

    fraction: float = 0.05
    trigger_size: int = 2
    trigger: dict[str, Any] | None = None
    target_class: str | int | None = None
    seed: int = 0

    def _validate(self) -> None:
        owner = type(self).__name__
        check_positive(owner, "fraction", self.fraction, hi=0.5)
        check_positive(owner, "trigger_size", self.trigger_size, integer=True, hi=10)

    def _attack(self, oracle: Oracle | None, data: AttackData, meter: Meter) -> Outcome:
        assert data.train is not None and data.test is not None and data.train.y is not None
        assert data.test.y is not None and data.model_factory is not None
        assert data.schema is not None
        rng = np.random.default_rng(self.seed)
        Xtr, ytr = data.train.X, np.asarray(data.train.y)
        target = target_label(self.target_class, ytr, data.schema)
        trigger = self.trigger or choose_trigger(data.schema, Xtr, self.trigger_size)
        n_add = max(1, int(round(self.fraction * len(ytr))))
        pool = np.flatnonzero(ytr != target)
        src = rng.choice(pool, size=n_add, replace=n_add > len(pool))
        X_p = stamp(take_rows(Xtr, src), trigger)
        if not data.schema.is_valid(X_p).all():
            raise ConfigError(f"The trigger {trigger!r} is not valid under the schema; fix it")
        clean = fit(data.model_factory, Xtr, ytr)
        bad = fit(data.model_factory, concat_rows(Xtr, X_p), np.concatenate([ytr, np.full(n_add, target)]))
        Xte, yte = data.test.X, np.asarray(data.test.y)
        Xtrig = stamp(Xte, trigger)
        acc0 = float(np.mean(clean.predict(Xte) == yte))
        acc1 = float(np.mean(bad.predict(Xte) == yte))
        base_bad = bad.predict(Xte) != target
        base_clean = clean.predict(Xte) != target
        asr = float(np.mean(bad.predict(Xtrig)[base_bad] == target)) if base_bad.any() else 0.0
        alone = (float(np.mean(clean.predict(Xtrig)[base_clean] == target))
                 if base_clean.any() else 0.0)
        in_train = float(np.mean(in_segment(Xtr, {k: [v] for k, v in trigger.items()})))
        m = {
            "poison_fraction": n_add / (len(ytr) + n_add),
            "n_poisoned": float(n_add),
            "clean_accuracy": acc0,
            "poisoned_accuracy": acc1,
            "accuracy_drop": acc0 - acc1,
            "attack_success_rate": asr,
            "trigger_alone": alone,
            "trigger_frequency_in_clean_data": in_train,
            "targeted_success": asr,
        }
        note = "trigger: " + ", ".join(f"{k}={v!r}" for k, v in trigger.items())
        return poison_result(m, asr, notes=(note,))
