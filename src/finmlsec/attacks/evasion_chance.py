"""Evasion's no-model baseline: how often a *random* valid change of the same cost turns a victim.

An evasion success rate alone does not say whether model access helped: where any change an
applicant can make crosses the decision boundary, random changes turn the victims as often as the
attack, and the figure measures a fragile boundary, not an attacker's advantage. So every evasion
attack is rated on its lift over chance, as extraction is on its lift over the no-model copy:

* **The baseline attacker** makes one random valid change of the same cost, with no access to
  the model (no query, no score, no surrogate): ``baseline_draws`` such changes are drawn per
  victim (seeded) and ``p_i``, the share of them that reach the attacker's goal (and are valid,
  and pass the input screen where there is one), is the probability that one random change turns
  victim ``i``. ``baseline_rate`` is its mean over the victims; ``baseline_any_rate`` the share
  of victims at least one of the draws turns (an applicant who tries ``baseline_draws`` random
  changes through the portal: a weak attack that does query the model, reported, not rated).
* **Same cost**, tabular (``evasion.constrained``, ``evasion.transfer``): the cost of the change
  the attack submitted for that victim (:func:`~finmlsec.attacks.evasion_common.changes_and_cost`:
  per standard deviation of a number, per change of a category, weighted by ``Feature.cost``);
  a victim it left unchanged (it found nothing that works) gets the median cost of its successful
  changes. The constrained search has no cost budget of its own (it minimises the cost), so the
  cost it spent is the only like-for-like price. A random change picks a random subset of the
  actionable fields (immutable, non-actionable and derived fields are never drawn; a missing cell
  stays missing), a random other category (in the monotone direction) for each categorical or
  binary field it can afford, and spreads the rest of the cost over the numbers it picked in
  random shares and directions (monotone fields only in theirs), clipped to the ranges and rounded
  towards the original for integers; derived fields are recomputed. So its cost is at most the
  budget and as close to it as the ranges allow. A draw that fails the checks the attack's own
  outputs face (:func:`~finmlsec.attacks.evasion_common.constraint_ok`) counts as not turning
  the victim.
* **Same cost**, norm-bounded (``evasion.pgd``, ``evasion.image``): noise of the attack's declared
  L-infinity radius ``eps``, a random sign per movable coordinate (the corner of the ball, the
  largest change the budget allows), clipped to the valid box, integers rounded.

**Lift and test** (:func:`rate`): ``lift = (success_rate - baseline_rate) / (1 - baseline_rate)``,
the share of the victims chance leaves unturned that the attack turns (as extraction and linkage
define their lift). Paired per victim, ``lift_b`` is the expected number of victims the attack
turns and one random change does not (the sum over won victims of ``1 - p_i``), ``lift_c`` the
reverse (the sum over lost victims of ``p_i``); ``success_rate - baseline_rate = (b - c) / n``.
McNemar's exact test (one-sided; :func:`~finmlsec.attacks.extraction_common.mcnemar_exact`, on
``b`` and ``c`` rounded) gives ``lift_p``. The attack's success (what the scan rates) is the lift
when ``lift_p < 0.05``, else 0 (the lift then kept as ``success_estimate``, which a
countermeasure's comparison with the system as deployed reads: a defended model that leaves
few victims cannot show a significant lift, and its 0 is no fall), and the attack's note says
which, with the raw rate and the baseline beside it. The draws are evaluator-side: one batched prediction on the target (not the
attacker's oracle), not charged to the attacker's query budget.

Example:
    >>> import numpy as np
    >>> s, m, note = rate(np.array([True] * 20), np.zeros(20), np.zeros(20, dtype=bool), 100)
    >>> s, m["baseline_rate"], m["lift_b"], m["lift_p"] == 0.5 ** 20
    (1.0, 0.0, 20.0, True)
    >>> s, m, note = rate(np.array([True] * 20), np.full(20, 0.95), np.ones(20, dtype=bool), 100)
    >>> s, round(m["lift"], 3), note.startswith(CHANCE_NOISE)
    (0.0, 1.0, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.attacks.base import Outcome
from finmlsec.attacks.evasion_common import changes_and_cost, constraint_ok, feature_scales
from finmlsec.attacks.evasion_search import Codec
from finmlsec.attacks.extraction_common import ESTIMATE, LIFT_ALPHA, mcnemar_exact
from finmlsec.schema import FeatureSchema, FeatureType

#: Random valid changes drawn per victim for the baseline (an attack's ``baseline_draws``).
DRAWS = 100
#: How the note of a success counted as 0 because chance does as well begins.
CHANCE_NOISE = "the attack's success beyond random valid changes of the same cost is within noise"


def rate(won: np.ndarray, p_random: np.ndarray, any_random: np.ndarray, draws: int,
         cost: str = "of the same cost") -> tuple[float, dict[str, float], str]:
    """The attack's success (its lift over chance, or 0 when that lift is within noise), the
    baseline metrics and the one-line note saying which; see the module docstring. ``won``: per
    victim, whether the attack turned it (valid and at the goal); ``p_random``: the share of the
    random changes that turned it; ``any_random``: whether any did."""
    won = np.asarray(won, dtype=bool)
    p = np.clip(np.asarray(p_random, dtype=float), 0.0, 1.0)
    n = len(won)
    succ = float(won.mean()) if n else 0.0
    base = float(p.mean()) if n else 0.0
    lift = float(max(0.0, (succ - base) / (1.0 - base))) if base < 1.0 else 0.0
    b = float(np.sum(won * (1.0 - p)))
    c = float(np.sum(~won * p))
    pval = mcnemar_exact(int(round(b)), int(round(c)))
    m = {"baseline_rate": base,
         "baseline_any_rate": float(np.mean(any_random)) if n else 0.0,
         "baseline_draws": float(draws), "lift": lift, "lift_b": b, "lift_c": c,
         "lift_p": pval}
    figures = (f"turned {succ:.3f} of {n} victims, one random valid change {cost} "
               f"{base:.3f} (any of {draws}: {m['baseline_any_rate']:.3f}); b={b:.1f}, "
               f"c={c:.1f} victims, p={pval:.3g}, McNemar's exact test, one-sided")
    if lift > 0 and pval < LIFT_ALPHA:
        return lift, m, f"success is the lift over chance {lift:.3f}: the attack {figures}"
    if lift > 0:
        m[ESTIMATE] = lift
        return 0.0, m, (f"{CHANCE_NOISE} (the attack {figures}, at {LIFT_ALPHA:g}): success "
                        f"counted as 0, not the lift {lift:.3f}")
    return 0.0, m, (f"the attack does no better than random valid changes {cost} (it "
                    f"{figures}): success counted as 0" if n else
                    "no victim to attack: success 0")


def _judge(target: Any, X: Any, goal: Any, ref: np.ndarray | None, owner: np.ndarray,
           ok: np.ndarray, accept: Callable[[Any], np.ndarray] | None) -> np.ndarray:
    """Which candidate rows reach the goal (or, untargeted, leave their owner's decision ``ref``),
    are valid (``ok``) and pass ``accept`` (an input screen)."""
    if len(owner) == 0:
        return np.zeros(0, dtype=bool)
    pred = np.asarray(target.predict(X))
    hit = pred == goal if goal is not None else pred != np.asarray(ref)[owner]
    hit = np.asarray(hit, dtype=bool) & ok
    if accept is not None and hit.any():
        hit &= np.asarray(accept(X), dtype=bool)
    return hit


def _per_victim(hit: np.ndarray, n: int, draws: int) -> tuple[np.ndarray, np.ndarray]:
    h = hit.reshape(n, draws)
    return h.mean(axis=1), np.asarray(h.any(axis=1), dtype=bool)


def budgets(cost: np.ndarray, won: np.ndarray) -> np.ndarray:
    """The cost a random change gets per victim: what the attack spent on it, or, where it left
    the victim unchanged, the median cost of its successful changes (0 with none).

    Example:
        >>> budgets(np.array([0.5, 0.0, 2.0]), np.array([True, False, True])).tolist()
        [0.5, 1.25, 2.0]
    """
    cost = np.asarray(cost, dtype=float)
    won = np.asarray(won, dtype=bool)
    typical = float(np.median(cost[won])) if won.any() else 0.0
    return np.where(cost > 0, cost, typical)


def random_changes(schema: FeatureSchema, X0: pd.DataFrame, budget: np.ndarray, draws: int,
                   seed: int, scale: dict[str, float],
                   population: pd.DataFrame | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """``draws`` random valid changes of each row of ``X0``, each of cost at most the row's
    ``budget`` (in the units of :func:`~finmlsec.attacks.evasion_common.changes_and_cost` with
    ``scale``), as one frame of ``len(X0) * draws`` rows, and the row of ``X0`` each came from.
    See the module docstring for how a change is drawn."""
    rng = np.random.default_rng([seed, 7717])
    n = len(X0)
    X0 = X0.reset_index(drop=True)
    codec = Codec(schema, X0, population)
    Z0 = codec.encode(X0)
    feats = schema.features
    d = len(feats)
    owner = np.repeat(np.arange(n), draws)
    Z = Z0[owner].copy()
    R = len(Z)
    B = np.repeat(np.asarray(budget, dtype=float), draws)
    kind = np.array([f.type for f in feats], dtype=object)
    discrete = np.array([f.type in (FeatureType.CATEGORICAL, FeatureType.BINARY) for f in feats])
    numeric = np.array([f.type in (FeatureType.NUMERIC, FeatureType.INTEGER) for f in feats])
    movable = np.array([f.mutable and (discrete[j] or numeric[j]) for j, f in enumerate(feats)])
    mono = np.array([0 if f.monotone is None else (1 if f.monotone == "increasing" else -1)
                     for f in feats])
    w = np.array([f.cost / scale.get(f.name, 1.0) if numeric[j] or kind[j] == FeatureType.BINARY
                  else f.cost for j, f in enumerate(feats)])
    if R == 0 or not movable.any():
        return codec.decode(Z), owner
    pick = (rng.random((R, d)) < 0.5) & movable[None, :] & np.isfinite(Z)
    none = ~pick.any(axis=1)
    if none.any():  # at least one field per draw, where the victim has one it can change
        cand = movable[None, :] & np.isfinite(Z[none])
        r = rng.random(cand.shape) * cand
        j = np.argmax(r, axis=1)
        rows = np.flatnonzero(none)[cand.any(axis=1)]
        pick[rows, j[cand.any(axis=1)]] = True
    # discrete fields: a random other value (in the monotone direction), if the budget allows
    new = Z.copy()
    for j in np.flatnonzero(discrete & movable):
        f = feats[j]
        k = len(f.categories or ()) if kind[j] == FeatureType.CATEGORICAL else 2
        cur = Z[:, j]
        ok = pick[:, j] & np.isfinite(cur) & (cur >= 0)
        lo = np.where(mono[j] > 0, cur + 1, 0)
        hi = np.where(mono[j] < 0, cur - 1, k - 1)
        room = np.where(ok, hi - lo + 1 - ((cur >= lo) & (cur <= hi)), 0)
        ok &= room > 0
        v = lo + np.floor(rng.random(R) * np.maximum(room, 1))
        v = np.where((cur >= lo) & (v >= cur), v + 1, v)  # skip the current value
        new[:, j] = np.where(ok, v, cur)
        pick[:, j] = ok
    dcost = np.where(pick & discrete[None, :], w[None, :], 0.0)
    order = np.argsort(rng.random((R, d)), axis=1)
    spent = np.cumsum(np.take_along_axis(dcost, order, axis=1), axis=1)
    keep_sorted = spent <= B[:, None] + 1e-9
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=1)
    dkeep = pick & discrete[None, :] & keep
    Z = np.where(dkeep, new, Z)
    left = np.maximum(B - (dkeep * w[None, :]).sum(axis=1), 0.0)
    # numbers: the rest of the budget in random shares, random directions (or the monotone one)
    # an integer field the budget cannot move by one is no candidate
    integer = np.array([f.type == FeatureType.INTEGER for f in feats])
    afford = (numeric & movable)[None, :] & (~integer[None, :] | (w[None, :] <= left[:, None]
                                                                   + 1e-9)) & np.isfinite(Z)
    num = pick & afford
    idle = ~num.any(axis=1) & (left > 1e-12)
    if idle.any():  # budget left and no number picked: spend it on one random number
        cand = afford[idle]
        has = cand.any(axis=1)
        j = np.argmax(rng.random(cand.shape) * cand, axis=1)
        num[np.flatnonzero(idle)[has], j[has]] = True
    g = rng.exponential(size=(R, d)) * num
    tot = g.sum(axis=1, keepdims=True)
    share = np.divide(g, tot, out=np.zeros_like(g), where=tot > 0)
    sign = np.where(mono[None, :] != 0, mono[None, :], rng.choice([-1.0, 1.0], size=(R, d)))
    step = share * left[:, None] / w[None, :]
    for j in np.flatnonzero(numeric & movable):
        f = feats[j]
        s = step[:, j]
        if f.type == FeatureType.INTEGER:
            s = np.floor(s + 1e-9)
        v = Z[:, j] + sign[:, j] * s
        v = np.clip(v, f.min if f.min is not None else -np.inf,
                    f.max if f.max is not None else np.inf)
        Z[:, j] = np.where(num[:, j], v, Z[:, j])
    return codec.decode(Z), owner


def tabular_chance(target: Any, schema: FeatureSchema, X0: pd.DataFrame, X_adv: pd.DataFrame,
                   won: np.ndarray, goal: Any, ref: np.ndarray | None, scale: dict[str, float],
                   draws: int, seed: int, population: pd.DataFrame | None = None,
                   accept: Callable[[Any], np.ndarray] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per victim, the share of ``draws`` random valid changes of the cost the attack spent
    (:func:`budgets`) that turn it, and whether any does (see the module docstring)."""
    n = len(X0)
    if n == 0 or draws <= 0:
        return np.zeros(n), np.zeros(n, dtype=bool)
    X0 = X0.reset_index(drop=True)
    _, cost = changes_and_cost(schema, X0, X_adv.reset_index(drop=True), scale)
    Xr, owner = random_changes(schema, X0, budgets(cost, won), draws, seed, scale, population)
    Xr = Xr.astype({c: X0[c].dtype for c in X0.columns
                    if pd.api.types.is_integer_dtype(X0[c]) and not Xr[c].isna().any()})
    ok = constraint_ok(schema, X0.iloc[owner].reset_index(drop=True), Xr)
    return _per_victim(_judge(target, Xr, goal, ref, owner, ok, accept), n, draws)


def noise_chance(target: Any, X0: Any, eps: float, low: np.ndarray | float,
                 high: np.ndarray | float, move: np.ndarray | None, integer: np.ndarray | None,
                 goal: Any, ref: np.ndarray | None, draws: int, seed: int,
                 accept: Callable[[Any], np.ndarray] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per victim, the share of ``draws`` random sign perturbations of L-infinity radius ``eps``
    (movable coordinates only, clipped to ``low``..``high``, integers rounded) that turn it, and
    whether any does; ``accept``: an input screen they must pass too. Predicted in chunks of at
    most 20,000 rows."""
    X = np.asarray(X0, dtype=float)
    shape = X.shape
    n = shape[0]
    if n == 0 or draws <= 0:
        return np.zeros(n), np.zeros(n, dtype=bool)
    flat = X.reshape(n, -1)
    dim = flat.shape[1]
    mv = np.ones(dim, dtype=bool) if move is None else np.asarray(move, dtype=bool)
    rng = np.random.default_rng([seed, 7717])
    owner = np.repeat(np.arange(n), draws)
    hit = np.zeros(len(owner), dtype=bool)
    for start in range(0, len(owner), 20_000):
        own = owner[start:start + 20_000]
        sign = rng.choice([-1.0, 1.0], size=(len(own), dim)) * mv
        C = flat[own] + eps * sign
        if integer is not None:
            C = np.where(integer, np.round(C), C)
        C = np.clip(C, low, high)
        batch = C.reshape((len(own), *shape[1:]))
        hit[start:start + len(own)] = _judge(target, batch, goal, ref, own,
                                             np.ones(len(own), dtype=bool), accept)
    return _per_victim(hit, n, draws)


def rated(outcome: Outcome, won: np.ndarray, p_random: np.ndarray, any_random: np.ndarray,
          draws: int, cost: str = "of the same cost") -> Outcome:
    """``outcome`` (its ``success_rate`` raw) rated on its lift over chance (:func:`rate`): the
    success replaced, the baseline metrics added and the note appended."""
    success, m, note = rate(won, p_random, any_random, draws, cost)
    return dataclasses.replace(outcome, success=success, metrics={**outcome.metrics, **m},
                               notes=(*outcome.notes, note))


def tabular_chance_of(attack: Any, oracle: Any, X0: pd.DataFrame, out: Any, goal: Any,
                      ref: np.ndarray | None, schema: FeatureSchema,
                      population: pd.DataFrame | None = None,
                      accept: Callable[[Any], np.ndarray] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray, str]:
    """:func:`tabular_chance` for a tabular evasion ``attack`` (its ``baseline_draws`` and
    ``seed``) whose ``generate`` gave ``out`` on ``X0``, with the cost scales its result uses;
    with the words for the cost."""
    won = np.asarray(out.success, dtype=bool) & np.asarray(out.valid, dtype=bool)
    p, any_ = tabular_chance(oracle.target, schema, X0, out.X_adv, won, goal, ref,
                             feature_scales(schema, population, X0), attack.baseline_draws,
                             attack.seed, population, accept)
    return p, any_, "of the same cost"
