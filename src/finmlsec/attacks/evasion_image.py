"""Black-box image evasion for the OCR model (``evasion.image``).

SimBA (Guo et al. 2019, "Simple Black-box Adversarial Attacks") in the pixel basis: visit the
pixels in a random order; try ``-step`` then ``+step`` on the pixel and keep the change if the
model's probability of the current class (or, targeted, one minus the target's) goes down. Every
image stays in the valid box (``clip_min``..``clip_max``) and within ``eps`` of the original in
L-infinity; an image stops once its decision changed. Needs probabilities; works on any image
model (scikit-learn, ONNX, a remote service, PyTorch).

Example:
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from finmlsec.targets.oracle import Oracle
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((200, 16)); y = (X[:, :8].mean(axis=1) > 0.5).astype(int)
    >>> oracle = Oracle(LogisticRegression().fit(X, y), input_kind="image")
    >>> out = SimBA(eps=0.3, max_iter=64).generate(oracle, X[:20])
    >>> bool(out.valid.all()), bool(out.success.mean() > 0.5)
    (True, True)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from finmlsec.attacks.base import ATTACKS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.evasion_chance import DRAWS, noise_chance, rated
from finmlsec.attacks.evasion_common import EvasionOutput, check_positive, resolve_class
from finmlsec.errors import DataError
from finmlsec.targets.oracle import Oracle


def keep_against(oracle: Oracle, X: Any, y: Any, goal: Any
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The victims the attack can still win: not yet at ``goal`` (targeted) or classified
    correctly (untargeted, when true labels ``y`` are known); with their current decisions."""
    try:
        X = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise DataError(
            f"gradient and image attacks need numeric arrays; got {type(X).__name__} with "
            "non-numeric values; use evasion.constrained for mixed tabular records"
        ) from None
    pred = np.asarray(oracle.predict(X))
    if goal is not None:
        keep = pred != goal
    elif y is not None:
        lab = np.asarray(y)
        classes = np.asarray(oracle.classes_)
        if not np.isin(lab, classes).all():
            lab = classes[lab.astype(int)]
        keep = pred == lab
    else:
        keep = np.ones(len(X), dtype=bool)
    return X[keep], keep, pred[keep]


@ATTACKS.register("evasion.image")
class SimBA(Attack):
    """Score-based black-box evasion of image classifiers; see the module docstring.

    Parameters: ``eps`` (L-infinity bound), ``step`` (per pixel change; default ``eps``),
    ``max_iter`` (pixel trials per image; each costs up to two queries), ``target_class``,
    ``clip_min``/``clip_max``, ``baseline_draws`` (random sign noise of radius ``eps`` per
    victim for the no-model baseline, see :mod:`finmlsec.attacks.evasion_chance`), ``seed``.
    """

    name: ClassVar[str] = "evasion.image"
    threat: ClassVar[str] = "induce_false_prediction"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"proba", "victims"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0015", "AML.T0043.001")
    owasp: ClassVar[tuple[str, ...]] = ("ML01",)
    summary: ClassVar[str] = "Black-box image evasion by random pixel search (SimBA)"
    input_kinds: ClassVar[tuple[str, ...]] = ("image",)
    cost_rank: ClassVar[int] = 3
    strength_rank: ClassVar[int] = 3
    generates: ClassVar[bool] = True

    eps: float = 0.3
    step: float | None = None
    max_iter: int = 256
    target_class: str | int | None = None
    clip_min: float = 0.0
    clip_max: float = 1.0
    baseline_draws: int = DRAWS
    seed: int = 0

    def generate(self, oracle: Oracle, X: Any, y: Any = None, schema: Any = None) -> EvasionOutput:
        o = type(self).__name__
        check_positive(o, "eps", self.eps)
        check_positive(o, "max_iter", self.max_iter, integer=True, hi=1_000_000)
        check_positive(o, "baseline_draws", self.baseline_draws, integer=True, hi=10_000)
        if self.step is not None:
            check_positive(o, "step", self.step)
        oracle.require({"proba"}, who=f"attack {self.name!r}")
        try:
            X0 = np.asarray(X, dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"evasion.image needs numeric image arrays; got {type(X).__name__}") \
                from None
        q0 = oracle.queries_used
        shape = X0.shape
        n = shape[0]
        flat0 = X0.reshape(n, -1)
        d = flat0.shape[1]
        classes = np.asarray(oracle.classes_)
        goal = resolve_class(self.target_class, classes, None)
        ref = np.asarray(oracle.predict(X0)) if y is None else np.asarray(y)
        if y is not None and not np.isin(ref, classes).all():
            ref = classes[ref.astype(int)]
        col = (np.searchsorted(classes, ref) if goal is None
               else np.full(n, int(np.flatnonzero(classes == goal)[0])))
        sign = 1.0 if goal is None else -1.0  # minimise p(ref), or maximise p(goal)
        lo = np.maximum(flat0 - self.eps, self.clip_min)
        hi = np.minimum(flat0 + self.eps, self.clip_max)
        step = self.step if self.step is not None else self.eps
        rng = np.random.default_rng(self.seed)
        order = np.concatenate([rng.permutation(d) for _ in range(self.max_iter // d + 1)])
        cur = flat0.copy()

        def ask(Z: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            p = oracle.predict_proba(Z.reshape((len(rows), *shape[1:])))
            lab = oracle.decide(p)
            met = lab == goal if goal is not None else lab != ref[rows]
            return sign * p[np.arange(len(rows)), col[rows]], np.asarray(met, dtype=bool)

        score, done = ask(cur, np.arange(n)) if n else (np.zeros(0), np.zeros(0, dtype=bool))
        for k in order[: self.max_iter]:
            act = np.flatnonzero(~done)
            if act.size == 0:
                break
            rem = oracle.remaining
            if rem is not None and rem < 2 * act.size:
                break
            for direction in (-1.0, 1.0):
                trial = cur[act].copy()
                trial[:, k] = np.clip(trial[:, k] + direction * step, lo[act, k], hi[act, k])
                moved = trial[:, k] != cur[act, k]
                if not moved.any():
                    continue
                rows = act[moved]
                s, met = ask(trial[moved], rows)
                better = s < score[rows]
                cur[rows[better]] = trial[moved][better]
                score[rows[better]] = s[better]
                done[rows[better]] = met[better]
                act = act[~np.isin(act, rows[better])]
                if act.size == 0:
                    break
        X_adv = cur.reshape(shape)
        success = done
        rem = oracle.remaining
        if n and (rem is None or rem >= n):
            pred = np.asarray(oracle.predict(X_adv))
            success = pred == goal if goal is not None else pred != ref
        valid = ((cur >= self.clip_min - 1e-9) & (cur <= self.clip_max + 1e-9)).all(axis=1)
        valid &= (np.abs(cur - flat0) <= self.eps + 1e-9).all(axis=1)
        return EvasionOutput(X_adv=X_adv, success=np.asarray(success, dtype=bool), valid=valid,
                             queries=oracle.queries_used - q0)

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        assert data.victims is not None
        goal = resolve_class(self.target_class, oracle.classes_, None)
        X, keep, pred = keep_against(oracle, data.victims.X, data.victims.y, goal)
        out = self.generate(oracle, X, pred)
        n = len(X)
        won = out.success & out.valid
        diff = np.abs(np.asarray(out.X_adv) - X).reshape(n, -1)
        m = {
            "n_victims": float(n),
            "n_already_at_goal": float((~keep).sum()),
            "success_rate": float(won.mean()) if n else 0.0,
            "validity_rate": float(out.valid.mean()) if n else 1.0,
            "mean_linf": float(diff.max(axis=1)[won].mean()) if won.any() else float("nan"),
            "median_pixels_changed": float(np.median((diff > 1e-9).sum(axis=1)[won]))
            if won.any() else float("nan"),
            "queries_per_victim": meter.queries / n if n else 0.0,
        }
        p, any_, cost = self.chance(oracle, X, out, goal, pred)
        return rated(Outcome(m["success_rate"], m), won, p, any_, self.baseline_draws, cost)

    def chance(self, oracle: Oracle, X0: Any, out: EvasionOutput, goal: Any,
               ref: np.ndarray | None, schema: Any = None, population: Any = None,
               accept: Any = None) -> tuple[np.ndarray, np.ndarray, str]:
        """Per image, the share of ``baseline_draws`` random sign noises of radius ``eps`` (the
        attack's budget, in the valid box) that turn it, whether any does, and the words for the
        cost; evaluator side. See :mod:`finmlsec.attacks.evasion_chance`."""
        p, any_ = noise_chance(oracle.target, X0, self.eps, self.clip_min, self.clip_max, None,
                               None, goal, ref, self.baseline_draws, self.seed, accept=accept)
        return p, any_, f"of the same L-infinity radius {self.eps:g}"
