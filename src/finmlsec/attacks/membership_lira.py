"""Membership inference with reference models: LiRA (Carlini et al. 2022) and RMIA (Zarifzadeh
et al. 2024).

Both train reference models like the target on random halves of the attacker's population
(:class:`~finmlsec.attacks.membership_common.ReferenceModels`) and query the target once per
candidate record.

* LiRA fits, per candidate, a Gaussian to the logit-scaled confidence ``log(p_y / (1 - p_y))``
  of the reference models that trained on it (IN) and of those that did not (OUT); the score is
  the likelihood ratio of the target's value (online), or how far above the OUT distribution it
  lies (offline: OUT models only, usable when the candidates are outside the population).
* RMIA compares ``Pr(x | target) / Pr(x)`` with the same ratio on population records ``z``: the
  score is the share of ``z`` the candidate dominates by a factor ``gamma``.

Progress: if ``data.extra["progress"]`` is a callable ``(done, total)``, it is called as reference
models are trained.

Example:
    >>> LiRA(n_reference=8).params_ok()
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import stats

from finmlsec.arrays import concat_rows, take_rows
from finmlsec.attacks.base import ATTACKS, INPUT_KINDS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.extraction_common import check_choice, check_int
from finmlsec.attacks.membership_common import (
    ReferenceModels,
    candidates,
    label_columns,
    logit_confidence,
    membership_result,
    row_keys,
    true_proba,
)
from finmlsec.errors import ConfigError
from finmlsec.targets.oracle import Oracle

_NEEDS = frozenset({"proba", "population", "model_factory", "members", "nonmembers"})


_CACHE: list[tuple[tuple[Any, ...], ReferenceModels]] = []


def train_references(data: AttackData, n: int, seed: int) -> ReferenceModels:
    """Reference models for ``data`` (the last set is kept: LiRA, RMIA and the calibrated
    attacks on the same population, factory, size and seed share them)."""
    assert data.population is not None and data.model_factory is not None
    if data.population.y is None:
        raise ConfigError("reference models need the labels of the population records")
    key = (data.model_factory, row_keys(data.population.X).tobytes(),
           np.asarray(data.population.y).tobytes(), n, seed)
    for k, refs in _CACHE:
        if k[0] is key[0] and k[1:] == key[1:]:
            return refs
    cb = data.extra.get("progress")

    def progress(done: int) -> None:
        if callable(cb):
            cb(done, n)

    refs = ReferenceModels(data.model_factory, data.population.X, data.population.y, n, seed,
                           progress)
    _CACHE.append((key, refs))
    del _CACHE[:-1]
    return refs


@ATTACKS.register("membership.lira")
class LiRA(Attack):
    """Likelihood-ratio membership attack with ``n_reference`` reference models.

    ``mode``: ``online`` (IN and OUT models), ``offline`` (OUT only) or ``auto`` (online when
    every candidate lies in the population, else offline). ``fixed_variance``: one variance for
    all records (more stable with few reference models).
    """

    name: ClassVar[str] = "membership.lira"
    threat: ClassVar[str] = "infer_training_data"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = _NEEDS
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0024.000",)
    owasp: ClassVar[tuple[str, ...]] = ("ML04",)
    summary: ClassVar[str] = (
        "likelihood-ratio attack (Carlini 2022) with reference models, online or offline"
    )
    input_kinds: ClassVar[tuple[str, ...]] = INPUT_KINDS
    cost_rank: ClassVar[int] = 6
    strength_rank: ClassVar[int] = 1

    n_reference: int = 16
    mode: str = "auto"
    fixed_variance: bool = False
    seed: int = 0

    def params_ok(self) -> bool:
        check_int("LiRA", "n_reference", self.n_reference, 2, 1024)
        check_choice("LiRA", "mode", self.mode, ("auto", "online", "offline"))
        if not isinstance(self.fixed_variance, bool):
            raise ConfigError(f"The 'fixed_variance' parameter of LiRA must be a bool. Got "
                              f"{self.fixed_variance!r} instead.")
        check_int("LiRA", "seed", self.seed, 0)
        return True

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """``n_reference`` reference models."""
        return float(self.n_reference)

    def _validate(self) -> None:
        self.params_ok()

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        cands, notes = candidates(data, oracle.remaining, self.seed)
        refs = train_references(data, self.n_reference, self.seed)
        cols = label_columns(oracle.classes_, cands.y)
        phi_t = logit_confidence(oracle.predict_proba(cands.X), cols)
        P = refs.proba(cands.X)
        phi_r = np.stack([logit_confidence(p, cols) for p in P])  # (models, records)
        inn = refs.membership_of(cands.X)
        mode = self.mode
        if mode == "auto":
            mode = "online" if (inn.sum(axis=0) >= 2).all() else "offline"
        if mode == "online" and not (inn.sum(axis=0) >= 1).all():
            raise ConfigError("online LiRA needs every candidate in the population (IN models); "
                              "use mode='offline' or add the candidates to the population")
        out = ~inn
        mu_out, sd_out = _masked_stats(phi_r, out, self.fixed_variance)
        if mode == "online":
            mu_in, sd_in = _masked_stats(phi_r, inn, self.fixed_variance)
            score = (stats.norm.logpdf(phi_t, mu_in, sd_in)
                     - stats.norm.logpdf(phi_t, mu_out, sd_out))
        else:
            score = (phi_t - mu_out) / sd_out
        notes.append(f"{mode} LiRA with {self.n_reference} reference models")
        return membership_result(score, cands, notes,
                                 {"reference_models": float(self.n_reference)})


def _masked_stats(phi: np.ndarray, mask: np.ndarray, fixed: bool) -> tuple[np.ndarray, np.ndarray]:
    n = np.maximum(mask.sum(axis=0), 1)
    mu = np.where(mask, phi, 0.0).sum(axis=0) / n
    var = np.where(mask, (phi - mu) ** 2, 0.0).sum(axis=0) / np.maximum(n - 1, 1)
    if fixed or (mask.sum(axis=0) < 2).any():
        pooled = float(np.median(var[mask.sum(axis=0) >= 2])) if (mask.sum(axis=0) >= 2).any() else 1.0
        var = np.full_like(var, pooled) if fixed else np.where(mask.sum(axis=0) >= 2, var, pooled)
    return mu, np.sqrt(np.maximum(var, 1e-6))


@ATTACKS.register("membership.rmia")
class RMIA(Attack):
    """Relative membership inference (Zarifzadeh et al. 2024): ``Pr(x|target)/Pr(x)`` against
    ``n_population`` population records. ``offline_a`` scales the OUT-only estimate of ``Pr(x)``
    when no reference model trained on ``x``."""

    name: ClassVar[str] = "membership.rmia"
    threat: ClassVar[str] = "infer_training_data"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = _NEEDS
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0024.000",)
    owasp: ClassVar[tuple[str, ...]] = ("ML04",)
    summary: ClassVar[str] = (
        "relative membership inference (Zarifzadeh 2024): likelihood ratio against population "
        "records"
    )
    input_kinds: ClassVar[tuple[str, ...]] = INPUT_KINDS
    cost_rank: ClassVar[int] = 5
    strength_rank: ClassVar[int] = 3

    n_reference: int = 16
    n_population: int = 500
    gamma: float = 2.0
    offline_a: float = 0.3
    seed: int = 0

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """``n_reference`` reference models."""
        return float(self.n_reference)

    def _validate(self) -> None:
        check_int("RMIA", "n_reference", self.n_reference, 1, 1024)
        check_int("RMIA", "n_population", self.n_population, 1)
        check_int("RMIA", "seed", self.seed, 0)
        if not isinstance(self.gamma, int | float) or self.gamma < 1:
            raise ConfigError(f"The 'gamma' parameter of RMIA must be a float >= 1. Got "
                              f"{self.gamma!r} instead.")
        if not isinstance(self.offline_a, int | float) or not 0 <= self.offline_a <= 1:
            raise ConfigError(f"The 'offline_a' parameter of RMIA must be a float in [0, 1]. "
                              f"Got {self.offline_a!r} instead.")

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        assert data.population is not None and data.population.y is not None
        rng = np.random.default_rng(self.seed + 1)
        npop = len(data.population)
        zi = np.sort(rng.choice(npop, size=min(self.n_population, npop), replace=False))
        Z, zy = take_rows(data.population.X, zi), np.asarray(data.population.y)[zi]
        # one target query per distinct record among candidates and population samples
        cand_limit = None
        if oracle.remaining is not None:
            cand_limit = max(oracle.remaining - len(zi), 2)
        cands, notes = candidates(data, cand_limit, self.seed)
        refs = train_references(data, self.n_reference, self.seed)
        allX = concat_rows(cands.X, Z)
        ally = np.concatenate([cands.y, zy])
        keys = row_keys(allX)
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        if oracle.remaining is not None and len(uniq) > oracle.remaining:
            raise ConfigError(f"RMIA needs {len(uniq)} queries but only {oracle.remaining} remain; "
                              "lower n_population or raise the budget")
        cols = label_columns(oracle.classes_, ally)
        P_t = oracle.predict_proba(take_rows(allX, first))[inverse]
        p_t = true_proba(P_t, cols)
        P_r = refs.proba(allX)
        p_r = np.stack([true_proba(p, cols) for p in P_r])
        inn = refs.membership_of(allX)
        online = (inn.sum(axis=0) >= 1).all()
        if online:
            pr_x = p_r.mean(axis=0)
        else:
            out = ~inn
            mean_out = np.where(out, p_r, 0).sum(axis=0) / np.maximum(out.sum(axis=0), 1)
            a = self.offline_a
            pr_x = 0.5 * ((1 + a) * mean_out + (1 - a))
        ratio = p_t / np.maximum(pr_x, 1e-12)
        rc, rz = ratio[: len(cands)], ratio[len(cands):]
        rz_sorted = np.sort(rz)
        # share of z with ratio(x) / ratio(z) >= gamma, i.e. ratio(z) <= ratio(x) / gamma
        score = np.searchsorted(rz_sorted, rc / self.gamma, side="right") / len(rz_sorted)
        # tie-break by the ratio itself, so that records dominating every z are still ranked
        score = score + 1e-6 * np.tanh(np.log(np.maximum(rc, 1e-12)))
        notes.append(f"{'online' if online else 'offline'} RMIA with {self.n_reference} "
                     f"reference models and {len(zi)} population records")
        extra: dict[str, Any] = {"reference_models": float(self.n_reference)}
        return membership_result(score, cands, notes, extra)
