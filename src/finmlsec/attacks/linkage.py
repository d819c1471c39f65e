"""Linkage (re-identification) of people in the training data by whoever obtains the data.

The paper's first route to training data (section III.C.1, types 1, 2, 5, 6, 7, 9): a party
that obtains the training data as the data owner shares them with the model generator (the
model generator itself, or whoever it leaks them to) and knows, from other sources, some
**quasi-identifiers** of people it is interested in (age, sex, a transaction's amount and time:
the fields the schema marks personal, immutable or ``quasi_identifier``, and the personal numbers
the spec declares). A transaction's hour and weekday are not personal attributes and the
cardholder may change them, but whoever saw the purchase (the merchant, a companion, a receipt)
knows them: the card-fraud schema marks them ``quasi_identifier``.
For each target it links the target to the released records that match its quasi-identifiers
and reads off a sensitive value (the label: defaulted, fraud; or a field). It claims the target
was in the training data when at least one record matches, and guesses the sensitive value as
the matching records' most common one (the population's most common one when nothing matches).

When the released data were generalised (rounded, truncated, recoded: the ``Generalise``
defence) the attacker first learns how, from the release and its own population records: a
column with far fewer distinct values than raw data of its size is generalised, and the target's
value is mapped to the nearest released value or truncated to the released value below it,
whichever makes the population's mapped values distributed most like the released ones; a
category the release no longer has was regrouped and matches any value. Missing values are a
value of their own (a missing age matches a missing age).

Scoring (evaluator side): targets are half training members and half not; the attack is right
on a target when its membership claim **and** its sensitive value are right. The baseline is the
best a party without the data does with the same targets: one membership claim for everyone and
the population's most common sensitive value. The success is the lift over that baseline,
``(rate - baseline) / (1 - baseline)`` as for model extraction, counted only when McNemar's exact
test on the targets where the two differ says it is beyond noise
(:func:`~finmlsec.attacks.extraction_common.mcnemar_exact`). The metrics also give the
prosecutor re-identification rate (the share of member targets matched to their own record
alone) and the k-anonymity of the released data on the quasi-identifiers.

Example:
    >>> import pandas as pd
    >>> from finmlsec.schema import Feature, FeatureSchema
    >>> s = FeatureSchema(features=(Feature(name="age", type="integer", min=18, max=99,
    ...                                     personal=True), Feature(name="x", type="numeric")))
    >>> quasi_identifiers(s, declared=["x"])
    ['age', 'x']
    >>> ages = pd.Series(range(18, 78), dtype=float)
    >>> how, to_release = generalisation(ages, ages // 10 * 10)
    >>> how, to_release(np.array([27.0, np.nan])).tolist()
    ('floor', [20.0, nan])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.attacks.base import ATTACKS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.extraction_common import (
    ESTIMATE,
    LIFT_ALPHA,
    check_int,
    mcnemar_exact,
    tabular_schema,
)
from finmlsec.attacks.membership_common import candidates, row_keys
from finmlsec.errors import CapabilityError, ConfigError
from finmlsec.schema import FeatureSchema, FeatureType

#: How the note of a linkage whose gain over the no-data guess is within noise begins.
LINKAGE_NOISE = "the linkage's gain over the guess without the data is within noise"
#: A released column is read as generalised when it has fewer than this share of the distinct
#: values raw data of its size have.
COARSE = 0.5
_MISSING = "\x00missing"
_WILDCARD, _ABSENT = -1, -2


def quasi_identifiers(schema: FeatureSchema, declared: Iterable[str] = (),
                      exclude: Iterable[str] = ()) -> list[str]:
    """The fields an outsider knows about a person: those the schema marks personal, immutable
    or ``quasi_identifier`` (a transaction's time), and ``declared`` ones (the spec's personal
    numbers), in schema order; free text and images are not linked on."""
    declared, exclude = set(declared), set(exclude)
    return [f.name for f in schema.features
            if (f.personal or f.immutable or f.quasi_identifier or f.name in declared)
            and f.name not in exclude
            and f.type not in (FeatureType.TEXT, FeatureType.IMAGE)]


def _floats(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)


#: A released column is also read as generalised when the raw values it never shows, among
#: those common enough that a release of its size would show each about 5 times or more, carry
#: at least this share of the population (weekday bands of 2 keep 4 of 7 days: 3/7 missing).
ABSENT_MASS = 0.1
_EXPECTED = 5.0


def _coarse(raw: np.ndarray, released: np.ndarray) -> bool:
    """Whether ``released`` has markedly fewer distinct values than as many raw values, or never
    shows raw values common enough that a release of its size as is would show them (an
    as-is release misses one with probability about ``exp(-5)``)."""
    m = min(len(raw), len(released))
    if m == 0:
        return False
    if len(np.unique(released[:m])) < COARSE * len(np.unique(raw[:m])):
        return True
    return _absent_mass(raw, released) >= ABSENT_MASS


def _absent_mass(raw: np.ndarray, released: np.ndarray) -> float:
    """The share of the population whose value is common (expected ``_EXPECTED`` times or more
    in a release of ``len(released)``) yet never appears in the release."""
    if len(raw) == 0 or len(released) == 0:
        return 0.0
    values, counts = np.unique(raw, return_counts=True)
    share = counts / len(raw)
    common = share * len(released) >= _EXPECTED
    absent = ~np.isin(values, np.unique(released))
    return float(share[common & absent].sum())


def _nearest(V: np.ndarray, x: np.ndarray) -> np.ndarray:
    i = np.clip(np.searchsorted(V, x), 1, len(V) - 1) if len(V) > 1 else np.zeros(len(x), int)
    if len(V) == 1:
        return np.full(len(x), V[0])
    lo, hi = V[i - 1], V[i]
    return np.where(np.abs(x - lo) < np.abs(hi - x), lo, hi)  # halves go up, as rounding does


def _floor(V: np.ndarray, x: np.ndarray) -> np.ndarray:
    i = np.clip(np.searchsorted(V, x, side="right") - 1, 0, len(V) - 1)
    return V[i]


def generalisation(population: pd.Series, released: pd.Series
                   ) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """How a numeric column was released, learnt from the attacker's raw ``population`` values
    and the ``released`` ones: ``"as is"``, ``"round"`` (to the nearest released value) or
    ``"floor"`` (truncated to the released value below), and the map from raw values to
    released ones (missing stays missing)."""
    raw, rel = _floats(population), _floats(released)
    raw, rel_ok = raw[~np.isnan(raw)], rel[~np.isnan(rel)]
    V = np.unique(rel_ok)
    if len(V) == 0 or not _coarse(raw, rel_ok):
        return "as is", lambda x: x
    counts = pd.Series(rel_ok).value_counts(normalize=True)
    maps: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "round": _nearest, "floor": _floor}
    # the map under which the population's values fall most like the released ones (total
    # variation distance; the first on a tie)
    tv = {how: 0.5 * float(pd.Series(m(V, raw)).value_counts(normalize=True).sub(
        counts, fill_value=0.0).abs().sum()) for how, m in maps.items()}
    how = min(tv, key=lambda h: tv[h])
    fn = maps[how]

    def to_release(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        out = np.full(len(x), np.nan)
        ok = ~np.isnan(x)
        out[ok] = fn(V, x[ok])
        return out

    return how, to_release


def _tokens(values: Any, numeric: bool) -> np.ndarray:
    """Comparable string tokens, one per value (missing is a token of its own)."""
    if numeric:
        v = np.asarray(values, dtype=float)
        return np.array([_MISSING if math.isnan(a) else repr(float(a)) for a in v], dtype=object)
    s = pd.Series(values, dtype=object)
    return np.where(s.isna().to_numpy(), _MISSING, s.astype(str).to_numpy()).astype(object)


@ATTACKS.register("linkage.reidentification")
class Linkage(Attack):
    """Link target people to the shared training data on their quasi-identifiers and read a
    sensitive value (the label by default); success is the lift over the no-data guess of
    membership and value. ``quasi_identifiers``: the fields linked on (empty: the schema's
    personal, immutable and ``quasi_identifier`` fields and the spec's personal numbers);
    ``sensitive``: the field
    read (empty: the label); ``n_targets``: people targeted, half of them training members;
    ``n_bins``: population quantile bins a numeric sensitive field is read in. See the module
    docstring."""

    name: ClassVar[str] = "linkage.reidentification"
    threat: ClassVar[str] = "infer_training_data"
    via: ClassVar[str] = "training_data"
    needs: ClassVar[frozenset[str]] = frozenset(
        {"train", "schema", "population", "members", "nonmembers"})
    summary: ClassVar[str] = (
        "re-identification of people in the shared training data by linking quasi-identifiers "
        "(age, amount, ...), against a guess without the data")
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular",)
    cost_rank: ClassVar[int] = 1
    strength_rank: ClassVar[int] = 1
    reads_training_data: ClassVar[bool] = True

    quasi_identifiers: tuple[str, ...] = ()
    sensitive: str = ""
    n_targets: int = 1000
    n_bins: int = 4
    seed: int = 0

    def _validate(self) -> None:
        check_int("Linkage", "n_targets", self.n_targets, 2)
        check_int("Linkage", "n_bins", self.n_bins, 2, 100)
        check_int("Linkage", "seed", self.seed, 0)
        if not isinstance(self.quasi_identifiers, tuple | list) or not all(
                isinstance(q, str) for q in self.quasi_identifiers):
            raise ConfigError("The 'quasi_identifiers' parameter of Linkage must be a list of "
                              f"field names. Got {self.quasi_identifiers!r} instead.")
        if not isinstance(self.sensitive, str):
            raise ConfigError("The 'sensitive' parameter of Linkage must be a field name or '' "
                              f"(the label). Got {self.sensitive!r} instead.")

    def _attack(self, oracle: Any, data: AttackData, meter: Meter) -> Outcome:
        who = f"attack {self.name!r}"
        schema = tabular_schema(data.schema, who, data.population)
        assert data.train is not None and data.population is not None
        shared, pop = data.train.X, data.population.X
        if not isinstance(shared, pd.DataFrame) or not isinstance(pop, pd.DataFrame):
            raise ConfigError(f"{who} links tabular records (DataFrames) only")
        if self.sensitive and self.sensitive not in schema.names:
            raise ConfigError(f"{who}: sensitive field {self.sensitive!r} is not in the schema; "
                              f"known: {', '.join(schema.names)}")
        qi = list(self.quasi_identifiers) or quasi_identifiers(
            schema, data.extra.get("personal_fields") or (), exclude=[self.sensitive])
        unknown = [q for q in qi if q not in schema.names]
        if unknown:
            raise ConfigError(f"{who}: quasi-identifiers {unknown} are not in the schema; "
                              f"known: {', '.join(schema.names)}")
        if not qi:
            raise ConfigError(f"{who}: the schema marks no field personal, immutable or "
                              "quasi_identifier; name the "
                              "fields an outsider knows in 'quasi_identifiers'")
        if self.sensitive in qi:
            raise ConfigError(f"{who}: the sensitive field {self.sensitive!r} is also a "
                              "quasi-identifier")
        assert data.members is not None and data.nonmembers is not None
        half = min(self.n_targets // 2, len(data.members), len(data.nonmembers))
        if half < 1:
            raise CapabilityError(f"{who} needs at least one member and one non-member target")
        cands, _ = candidates(data, 2 * half, self.seed)  # as many members as non-members
        notes: list[str] = []
        T = cands.X
        # the released records' quasi-identifiers and the targets', both as tokens
        R_codes, t_codes, how = self._encode(schema, qi, shared, pop, T, notes)
        # the sensitive value: classes of the released records, the targets' truth, the prior
        rel_s, true_s, prior = self._sensitive(schema, data, T, np.asarray(cands.y))
        groups = pd.Series(np.arange(len(R_codes))).groupby(
            [R_codes[:, j] for j in range(R_codes.shape[1])], sort=False).size()
        k_anon = int(groups.min()) if len(groups) else 0
        unique_share = float((groups == 1).sum() / max(len(R_codes), 1))
        claim = np.zeros(len(T), dtype=int)
        guess = np.full(len(T), prior[0], dtype=object)
        n_match = np.zeros(len(T), dtype=int)
        first = np.full(len(T), -1)
        rank = {v: i for i, v in enumerate(prior)}
        for i in range(len(T)):
            t = t_codes[i]
            if (t == _ABSENT).any():
                continue
            cols = np.flatnonzero(t != _WILDCARD)
            mask = np.all(R_codes[:, cols] == t[cols], axis=1) if len(cols) else np.ones(
                len(R_codes), dtype=bool)
            hits = np.flatnonzero(mask)
            n_match[i] = len(hits)
            if len(hits) == 0:
                continue
            claim[i] = 1
            first[i] = hits[0]
            vals, counts = np.unique(rel_s[hits].astype(str), return_counts=True)
            top = vals[counts == counts.max()]
            guess[i] = min(top, key=lambda v: rank.get(v, len(rank)))
        truth = np.asarray(cands.truth)
        right_value = guess.astype(str) == true_s.astype(str)
        attack_ok = (claim == truth) & right_value
        prior_ok = true_s.astype(str) == str(prior[0])
        constant = max((1, 0), key=lambda c: float(np.mean((truth == c) & prior_ok)))
        base_ok = (truth == constant) & prior_ok
        rate, base = float(np.mean(attack_ok)), float(np.mean(base_ok))
        lift = max(0.0, (rate - base) / (1.0 - base)) if base < 1.0 else 0.0
        b = int(np.sum(attack_ok & ~base_ok))
        c = int(np.sum(~attack_ok & base_ok))
        p = mcnemar_exact(b, c)
        members = truth == 1
        own = self._own(data, cands, shared, first)
        reid = float(np.mean((n_match[members] == 1) & own[members])) if members.any() else 0.0
        metrics = {
            "success_rate": rate, "baseline_rate": base, "lift": lift,
            "lift_b": float(b), "lift_c": float(c), "lift_p": p,
            "membership_tpr": float(np.mean(claim[members] == 1)) if members.any() else 0.0,
            "membership_fpr": float(np.mean(claim[~members] == 1)) if (~members).any() else 0.0,
            "value_accuracy_members": float(np.mean(right_value[members])) if members.any()
            else 0.0,
            "reidentification": reid, "k_anonymity": float(k_anon),
            "released_unique": unique_share, "released_records": float(len(R_codes)),
            "quasi_identifiers": float(len(qi)), "n_trials": float(len(T)),
        }
        label = self.sensitive or "the label"
        notes.append(
            f"linked {len(T)} targets ({int(members.sum())} members) to {len(R_codes)} shared "
            f"records on {', '.join(f'{q} ({how[q]})' for q in qi)}; reading {label}: right on "
            f"{rate:.3f} against {base:.3f} without the data; prosecutor re-identification "
            f"{reid:.3f}, k-anonymity {k_anon}")
        success = lift
        if lift > 0 and p >= LIFT_ALPHA:
            success = 0.0
            metrics[ESTIMATE] = lift
            notes.append(
                f"{LINKAGE_NOISE} (b={b}, c={c} targets, p={p:.3g}; McNemar's exact test, "
                f"one-sided, at {LIFT_ALPHA:g}): success counted as 0, not the lift {lift:.3f}")
        details = {"quasi_identifiers": qi, "generalisation": how, "sensitive": label}
        return Outcome(success=float(success), metrics=metrics, notes=tuple(notes),
                       details=details)

    @staticmethod
    def _encode(schema: FeatureSchema, qi: list[str], shared: pd.DataFrame, pop: pd.DataFrame,
                T: pd.DataFrame, notes: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
        """Integer codes of the released records' quasi-identifiers and the targets' (a target
        value mapped to the release; -1 matches anything, -2 nothing), and how each column was
        read."""
        R = np.zeros((len(shared), len(qi)), dtype=np.int64)
        Tc = np.zeros((len(T), len(qi)), dtype=np.int64)
        how: dict[str, str] = {}
        for j, q in enumerate(qi):
            if q not in shared.columns:  # the field was withheld: it links nothing
                how[q] = "withheld"
                Tc[:, j] = _WILDCARD
                continue
            f = schema[q]
            numeric = f.is_numeric and pd.api.types.is_numeric_dtype(shared[q])
            if numeric:
                how[q], to_release = generalisation(pop[q], shared[q])
                rel_tok = _tokens(_floats(shared[q]), True)
                tgt_tok = _tokens(to_release(_floats(T[q])), True)
            else:
                rel_tok, tgt_tok = _tokens(shared[q], False), _tokens(T[q], False)
                raw_tok = _tokens(pop[q], False)
                m = min(len(raw_tok), len(rel_tok))
                grouped = m > 0 and (
                    len(set(rel_tok[:m])) < COARSE * len(set(raw_tok[:m]))
                    or _absent_mass(np.asarray(raw_tok, dtype=object),
                                    np.asarray(rel_tok, dtype=object)) >= ABSENT_MASS)
                how[q] = "regrouped" if grouped else "as is"
            lookup = {v: i for i, v in enumerate(dict.fromkeys(rel_tok))}
            R[:, j] = [lookup[v] for v in rel_tok]
            missing = _WILDCARD if how[q] == "regrouped" else _ABSENT
            Tc[:, j] = [lookup.get(v, missing) for v in tgt_tok]
        if any(h != "as is" for h in how.values()):
            notes.append("the shared data are generalised: " + ", ".join(
                f"{q} {h}" for q, h in how.items() if h != "as is"))
        return R, Tc, how

    def _sensitive(self, schema: FeatureSchema, data: AttackData, T: pd.DataFrame,
                   y: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The sensitive value of each released record and each target (as tokens), and the
        population's values from the most common down (the guess without the data)."""
        assert data.train is not None and data.population is not None
        pop = data.population
        if not self.sensitive:
            if data.train.y is None or pop.y is None:
                raise CapabilityError(f"attack {self.name!r} reads the label: the shared data "
                                      "and the population need labels")
            rel, tgt, prior_vals = (_tokens(np.asarray(data.train.y), False),
                                    _tokens(y, False), _tokens(np.asarray(pop.y), False))
        else:
            f = schema[self.sensitive]
            shared = data.train.X
            if self.sensitive not in shared.columns:
                raise ConfigError(f"attack {self.name!r}: the shared data withhold the "
                                  f"sensitive field {self.sensitive!r}")
            if f.type in (FeatureType.NUMERIC, FeatureType.INTEGER):
                from finmlsec.attacks.inversion import _candidates

                _, _, _, index = _candidates(f, pop.X, self.n_bins, 100)

                def binned(col: pd.Series) -> np.ndarray:
                    v = _floats(col)
                    out = np.asarray(index(np.nan_to_num(v)), dtype=object)
                    out[np.isnan(v)] = _MISSING
                    return _tokens(out, False)

                rel, tgt, prior_vals = (binned(shared[self.sensitive]),
                                        binned(T[self.sensitive]), binned(pop.X[self.sensitive]))
            else:
                rel, tgt, prior_vals = (_tokens(shared[self.sensitive], False),
                                        _tokens(T[self.sensitive], False),
                                        _tokens(pop.X[self.sensitive], False))
        prior = [str(v) for v in pd.Series(prior_vals).value_counts().index]
        return rel, tgt, prior or [_MISSING]

    @staticmethod
    def _own(data: AttackData, cands: Any, shared: pd.DataFrame, first: np.ndarray
             ) -> np.ndarray:
        """Evaluator side: whether each target's first match is its own record. The release
        says which member each record came from (``extra["released_rows"]``); without it the
        shared data are the members' records as they are, found by content."""
        rows = data.extra.get("released_rows")
        truth = np.asarray(cands.truth)
        if rows is None:
            assert data.members is not None
            where = {k: i for i, k in enumerate(row_keys(data.members.X))}
            rows = np.array([where.get(k, -1) for k in row_keys(shared)])
        rows = np.asarray(rows)
        origin = np.where(first >= 0, rows[np.clip(first, 0, None)], -2)
        return (truth == 1) & (origin == np.asarray(cands.rows))
