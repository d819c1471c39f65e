"""Feedback-loop poisoning: the paper's flow G (``poisoning.feedback_loop``).

In types 3, 4 and 10 the system user reports false predictions (flow G) to the training-data
provider, who merges them into the training data; the model generator retrains on a schedule. An
attacker acting as a user submits crafted reports: near copies of their own profile (a few
actionable fields varied, every value valid) claiming that the right decision was the one they
want. Honest users report genuine errors at the same time. The simulation runs round by round
(submit, screen, merge, retrain) and measures how many rounds and what share of poisoned records
it took, and the collateral damage (accuracy on held-out data, and other decisions changed,
compared with the same loop run with the honest reports only).

**Several targets.** One applicant flipped or not is no risk estimate (a borderline applicant
flips in one round, another never), so the attack takes ``n_targets`` victims the deployed model
decides against (drawn with the seed; all of them when there are no more), each an attacker with
their own budget, and the success is the share of them the attacker's reports flip, with its
exact (Clopper-Pearson) 95% interval in the metrics (``n_targets``, ``flipped_by_attacker``,
``success_ci_low``, ``success_ci_high``) and the notes. The targets share one campaign: each
round carries every unflipped target's crafted reports and the honest ones, and the model is
retrained once (one retraining per target and round would cost ``n_targets`` times as much; the
screen, too, judges one batch a round, as it would on a real loop with several attackers). A
target stops reporting once its own reports flip it (below); the loop ends when all have
flipped or after ``max_rounds``.

**Only the attacker's flips count.** A target counts as flipped in the round its own campaign
flips it: when the retrained model decides it as wanted, the same rows with the other targets'
crafted reports weighted 0 (a learner that samples rows draws the same ones) are refitted, and if
that model does not decide it so, the other targets' reports did it and the target keeps
reporting (``flipped_by_other_targets`` counts those that never flip on their own). A flip the
same loop without the attacker also makes (its rows up to that round, every crafted report
weighted 0) is reported (``flipped_without_attacker``) but not counted: a borderline profile
flips with the honest reports or the retraining's own randomness. A learner without sample
weights is refitted on the rows kept: for a target's own campaign that is the model its own loop
would train, but without the attacker's rows it draws other rows, so no like-for-like reference
exists and its flip is counted as the attacker's, with the reason in the notes (a defence never
gets the credit for a flip the test cannot attribute).

What the shared campaign still changes against one loop per target: the own-campaign check runs
only in rounds where the loop's model decides the target as wanted (a target whose own rows
alone would flip it while the others' pull it back is missed); the honest reports are those the
shared model gets wrong; and a screen that tests whether a case's reports decide it (the
feedback screen's decisive check) lets a target's reports through when the others' already
decide the case, where a loop with that attacker alone would have held them (the own-campaign
check still requires the target's own merged reports to flip it). All three take targets whose
reports move each other's decisions. The collateral damage (accuracy,
other decisions changed) is that of all the targets' reports together.

A defence plugs in as ``screen``: any object with ``screen(X, y) -> np.ndarray[bool]`` (the
accept mask over one round's reports; the defences' ``feedback_screen``, fitted on the trusted
training data: the scan plugs in the unit's feedback-stage defence so). A screen with a ``reset()`` method
is reset at the start of each run. Rejected reports are not merged.

Example:
    >>> import numpy as np, pandas as pd
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from finmlsec.attacks.base import AttackData, Labeled
    >>> from finmlsec.datasets.schema_infer import infer_schema
    >>> from finmlsec.schema import FeatureSchema
    >>> from finmlsec.targets.oracle import Oracle
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"a": rng.integers(0, 50, 300), "b": rng.integers(0, 50, 300)})
    >>> y = (X.a > 25).astype(int).to_numpy()
    >>> factory = lambda: DecisionTreeClassifier(random_state=0)
    >>> data = AttackData(train=Labeled(X, y), model_factory=factory, schema=infer_schema(X).schema,
    ...                   victims=Labeled(pd.DataFrame({"a": [10], "b": [20]})))
    >>> r = FeedbackLoopPoisoning(target_class=1).run(Oracle(factory().fit(X, y)), data)
    >>> r.metrics["flipped"], r.metrics["rounds_to_flip"]
    (1.0, 1.0)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.arrays import concat_rows, take_rows
from finmlsec.attacks.base import ATTACKS, Attack, AttackData, Meter, Outcome, params_of
from finmlsec.attacks.evasion_common import check_positive, resolve_class
from finmlsec.attacks.evasion_search import Codec, _grids
from finmlsec.attacks.poisoning import fit, fit_weighted, weighs_rows
from finmlsec.errors import ConfigError
from finmlsec.metrics import clopper_pearson
from finmlsec.schema import FeatureSchema
from finmlsec.targets.oracle import Oracle


def resolve_screen(screen: Any) -> Any:
    """``screen`` checked: None, or an object with ``screen(X, y)``."""
    if screen is not None and not callable(getattr(screen, "screen", None)):
        raise ConfigError(
            "The 'screen' parameter of FeedbackLoopPoisoning must be None or an object with a "
            f"method screen(X, y) -> accept mask. Got {screen!r} instead."
        )
    return screen


def craft_reports(schema: FeatureSchema, profile: pd.DataFrame, n: int, n_fields: int,
                  rng: np.random.Generator, population: pd.DataFrame | None,
                  exact_first: bool = False) -> pd.DataFrame:
    """``n`` valid near copies of ``profile`` (one row), each with up to ``n_fields`` actionable
    fields moved to a neighbouring allowed value (categories: any other; numbers: an adjacent
    grid value), immutable fields kept; with ``exact_first`` the first is the profile itself."""
    codec = Codec(schema, profile, population)
    z = codec.encode(profile)[0]
    ref = codec.encode(population) if population is not None else z[None]
    grids = _grids(schema, np.vstack([ref, z[None]]), 8)
    mutable = [j for j, g in enumerate(grids) if g.size > 1]
    Z = np.repeat(z[None], n, axis=0)
    if not mutable or n_fields == 0:
        return codec.decode(Z)
    for r in range(1 if exact_first else 0, n):
        for j in rng.choice(mutable, size=min(n_fields, len(mutable)), replace=False):
            g = grids[j]
            if codec.schema.features[j].type == "categorical":
                choices = g[g != z[j]]
            else:
                pos = np.searchsorted(g, z[j])
                choices = g[max(0, pos - 1): pos + 2]
                choices = choices[choices != z[j]]
            f = codec.schema.features[j]
            if f.monotone == "increasing":
                choices = choices[choices >= z[j]]
            elif f.monotone == "decreasing":
                choices = choices[choices <= z[j]]
            if choices.size:
                Z[r, j] = choices[rng.integers(choices.size)]
    return codec.decode(Z)


class _Deployed:
    """The deployed model as the loop's first model: the oracle's decisions, as training labels
    (class indices when the training labels are indices)."""

    def __init__(self, oracle: Oracle, classes: list[Any], as_index: bool) -> None:
        self.oracle, self.classes, self.as_index = oracle, classes, as_index

    def predict(self, X: Any) -> np.ndarray:
        pred = np.asarray(self.oracle.predict(X))
        if self.as_index and pred.dtype.kind not in "iu":
            return np.array([self.classes.index(v) for v in pred.tolist()])
        return pred


@ATTACKS.register("poisoning.feedback_loop")
class FeedbackLoopPoisoning(Attack):
    """Poison the retraining loop through false-prediction reports; see the module docstring.

    Parameters: ``target_class`` (the decision the attacker wants for their profile; by default
    the schema's ``favourable_class``, and with neither each target is moved to any other
    decision), ``n_targets`` (victims the deployed model decides against that the campaign tries
    to flip, drawn with the seed), ``reports_per_round`` (crafted reports a round and target),
    ``benign_per_round`` (honest error reports a round, drawn from ``population``),
    ``max_rounds``, ``max_poison_share`` (each target's attacker stops once their reports would
    exceed this share of the training data), ``fields_varied`` (fields changed in each crafted report),
    ``screen`` (a feedback screen, see above), ``seed``.
    """

    name: ClassVar[str] = "poisoning.feedback_loop"
    threat: ClassVar[str] = "generate_malicious_model"
    via: ClassVar[str] = "false_prediction_data"
    needs: ClassVar[frozenset[str]] = frozenset(
        {"label", "train", "model_factory", "victims", "schema"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0020", "AML.T0018.000")
    owasp: ClassVar[tuple[str, ...]] = ("ML08", "ML02")
    summary: ClassVar[str] = (
        "Flow G: crafted false-prediction reports merged and retrained until the target flips"
    )
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular",)
    cost_rank: ClassVar[int] = 1
    strength_rank: ClassVar[int] = 1
    retrains_victim: ClassVar[bool] = True
    #: for models that are costly to train (CNNs): the loop retrains only in rounds where a
    #: crafted report was merged (honest reports merged meanwhile wait for that retrain). Every
    #: loop starts from the deployed model (the first honest reports are its errors, found
    #: through the oracle)
    lean_loop: ClassVar[bool] = False

    target_class: str | int | None = None
    reports_per_round: int = 2
    benign_per_round: int = 20
    max_rounds: int = 20
    max_poison_share: float = 0.05
    fields_varied: int = 1
    screen: Any = None
    seed: int = 0
    n_targets: int = 10

    @classmethod
    def contract_fixture(cls) -> dict[str, Any]:
        """Small parameters for the common attack contract tests."""
        return {"params": {'max_rounds': 3, 'benign_per_round': 10}}

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """A retraining a round, each target's own campaign and attribution reference (at most
        one each), the same loop without the attacker and a last retraining; a feedback screen
        in the loop (a ``feedback``-stage defence) adds its own fit (its ``fit_cost()``) and its
        influence test, one fit a round and one per target whose case a round's reports move."""
        n = float(self.max_rounds + self.n_targets + min(self.max_rounds, self.n_targets) + 2)
        for d in defences:
            if getattr(d, "stage", None) == "feedback":
                cost = getattr(d, "fit_cost", None)
                n += (float(cost()) if callable(cost) else 1.0) + self.max_rounds * (
                    1 + self.n_targets)
        return n

    def _validate(self) -> None:
        o = type(self).__name__
        check_positive(o, "reports_per_round", self.reports_per_round, integer=True, hi=10_000)
        check_positive(o, "benign_per_round", self.benign_per_round, integer=True, lo=0,
                       closed_lo=True, hi=100_000)
        check_positive(o, "max_rounds", self.max_rounds, integer=True, hi=10_000)
        check_positive(o, "max_poison_share", self.max_poison_share, hi=1.0)
        check_positive(o, "fields_varied", self.fields_varied, integer=True, lo=0, closed_lo=True,
                       hi=100)
        check_positive(o, "n_targets", self.n_targets, integer=True, hi=10_000)

    def _craft(self, data: AttackData, profile: Any, k: int, rng: np.random.Generator,
               first: bool) -> Any:
        """``k`` crafted reports about ``profile`` (the first one exact when ``first``)."""
        assert data.schema is not None
        pop = data.population
        return craft_reports(data.schema, profile, k, self.fields_varied, rng,
                             pop.X if pop is not None else None, exact_first=first)

    def _targets(self, against: np.ndarray) -> np.ndarray:
        """The victims attacked (indices into ``against``, in their order): ``n_targets`` of them
        drawn with the seed, or all when there are no more."""
        if against.size <= self.n_targets:
            return against
        pick = np.random.default_rng([self.seed, 1]).choice(against.size, self.n_targets,
                                                           replace=False)
        return against[np.sort(pick)]

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        assert data.train is not None and data.train.y is not None
        screen = resolve_screen(self.screen)
        if callable(getattr(screen, "reset", None)):
            screen.reset()  # each simulated loop starts with a screen that has seen no reports
        assert data.victims is not None and data.model_factory is not None
        rng = np.random.default_rng(self.seed)
        params = params_of(self)
        if screen is not None:
            params["screen"] = type(screen).__name__
        # the attacker wants the favourable decision for their own profile: target_class, else
        # the schema's favourable_class (as for evasion); with neither, any other decision
        name = self.target_class if self.target_class is not None else (
            data.schema.favourable_class if data.schema is not None else None)
        want = resolve_class(name, oracle.classes_, data.schema)
        if name is not None:
            params["target_class"] = name
        deployed = oracle.predict(data.victims.X)
        against = np.flatnonzero(deployed != want) if want is not None \
            else np.arange(len(deployed))
        if against.size == 0:
            return Outcome(0.0, {"flipped": 0.0, "n_targets": 0.0}, params=params,
                           notes=("the deployed model already decides every victim as wanted",))
        chosen = self._targets(against)
        nt = chosen.size
        profiles = [take_rows(data.victims.X, [i]) for i in chosen]
        X, y = data.train.X, np.asarray(data.train.y)
        classes = list(np.asarray(oracle.classes_).tolist())
        goals = []
        for i in chosen:
            goal = want if want is not None else next(
                c for c in oracle.classes_ if c != deployed[i])
            if y.dtype.kind in "iu" and not isinstance(goal, int | np.integer) and goal in classes:
                goal = classes.index(goal)  # the training labels are class indices
            goals.append(goal)
        goal_arr = np.asarray(goals).astype(y.dtype)
        all_profiles = concat_rows(*profiles)
        n_train = len(y)
        budget = int(np.floor(self.max_poison_share * n_train))  # per target (one attacker each)
        # the model before any report: the deployed one, through the oracle (the honest users
        # report its errors; a retraining less, seconds for a CNN or a bagged ensemble)
        model: Any = _Deployed(oracle, classes, y.dtype.kind in "iu")
        first = model
        stale = False  # reports merged since the last retraining (lean loop only)
        pop = data.population
        used = np.zeros(len(pop) if pop is not None else 0, dtype=bool)
        counts = dict(poison_sent=0, poison_acc=0, benign_sent=0, benign_acc=0)
        sent = np.zeros(nt, dtype=int)  # crafted reports sent per target
        curve: dict[str, list[float]] = {"round": [], "poison_share": [], "target_score": []}
        flipped_at: list[int | None] = [None] * nt  # the round each target's own reports won
        by_others = [False] * nt  # the loop decided a target as wanted, its own campaign did not
        benign_X: list[Any] = []
        benign_y: list[np.ndarray] = []
        owner = np.full(n_train, -1)  # per row of X: the target whose report it is, -1 none
        rows_after: dict[int, int] = {}  # rows of X once a round's reports are merged
        for rnd in range(1, self.max_rounds + 1):
            parts_X, parts_y, whose = [], [], []
            for t in range(nt):
                k = min(self.reports_per_round, budget - int(sent[t]))
                if flipped_at[t] is not None or k <= 0:
                    continue
                parts_X.append(self._craft(data, profiles[t], k, rng, first=sent[t] == 0))
                parts_y.append(np.full(k, goals[t]))
                whose.append(np.full(k, t))
                sent[t] += k
            if pop is not None and pop.y is not None and self.benign_per_round:
                free = np.flatnonzero(~used)
                if free.size:
                    cand = rng.permutation(free)[: 10 * self.benign_per_round]
                    wrong = cand[model.predict(take_rows(pop.X, cand)) != np.asarray(pop.y)[cand]]
                    pick = wrong[: self.benign_per_round]
                    used[pick] = True
                    parts_X.append(take_rows(pop.X, pick))
                    parts_y.append(np.asarray(pop.y)[pick])
                    whose.append(np.full(pick.size, -1))
            if not parts_X or sum(len(p) for p in parts_y) == 0:
                break
            Xb = concat_rows(*parts_X)
            yb = np.concatenate(parts_y).astype(y.dtype)
            who = np.concatenate(whose)
            pois = who >= 0
            ok = np.ones(len(yb), dtype=bool) if screen is None else \
                np.asarray(screen.screen(Xb, yb), dtype=bool)
            counts["poison_sent"] += int(pois.sum())
            counts["benign_sent"] += int((~pois).sum())
            counts["poison_acc"] += int((ok & pois).sum())
            counts["benign_acc"] += int((ok & ~pois).sum())
            if (ok & ~pois).any():
                benign_X.append(take_rows(Xb, np.flatnonzero(ok & ~pois)))
                benign_y.append(yb[ok & ~pois])
            if ok.any():
                X = concat_rows(X, take_rows(Xb, np.flatnonzero(ok)))
                y = np.concatenate([y, yb[ok]])
                owner = np.concatenate([owner, who[ok]])
                if self.lean_loop and not (ok & pois).any():
                    stale = True
                else:
                    model = fit(data.model_factory, X, y)
                    stale = False
            rows_after[rnd] = len(y)
            curve["round"].append(float(rnd))
            curve["poison_share"].append(counts["poison_acc"] / len(y))
            if not isinstance(model, _Deployed) and hasattr(model, "predict_proba"):
                cols = [int(np.flatnonzero(np.asarray(model.classes_) == g)[0]) for g in goals]
                P = np.asarray(model.predict_proba(all_profiles))
                curve["target_score"].append(float(np.mean(P[np.arange(nt), cols])))
            now = np.asarray(model.predict(all_profiles)) == goal_arr
            for t in map(int, np.flatnonzero(now)):
                if flipped_at[t] is not None:
                    continue
                if nt > 1 and ((owner >= 0) & (owner != t)).any():
                    # the target's own campaign: the same rows without the other targets'
                    # reports; when it does not flip the target, the target keeps reporting
                    own = fit_weighted(data.model_factory(), X, y,
                                       ((owner < 0) | (owner == t)).astype(float))
                    if own.predict(profiles[t])[0] != goals[t]:
                        by_others[t] = True
                        continue
                flipped_at[t] = rnd
            if all(f is not None for f in flipped_at):
                break
        honest_rows = None  # the rows ``first`` was fitted on with the crafted ones weighted 0
        needed = any(f is not None for f in flipped_at) or data.test is not None
        if not self.lean_loop and needed and len(y) > n_train:
            # the same loop without the attacker: the loop's rows with the crafted ones weighted
            # 0 (a learner without sample weights is fitted on the others: the training data
            # and the honest reports, in order), so that it also serves as the attribution
            # reference of the targets that flipped in the last round
            first = fit_weighted(data.model_factory(), X, y, (owner < 0).astype(float))
            honest_rows = len(y)
        elif not self.lean_loop and data.test is not None:
            first = fit(data.model_factory, X, y)  # nothing merged: the training data alone
        if self.lean_loop and benign_X and needed:
            # the same loop without the attacker (the honest reports it merged)
            Xh = data.train.X
            for part in benign_X:
                Xh = concat_rows(Xh, part)
            first = fit(data.model_factory, Xh,
                        np.concatenate([np.asarray(data.train.y), *benign_y]))
        by_others = [b and f is None for b, f in zip(by_others, flipped_at, strict=True)]
        alone, unattributed = self._attribute(data, X, y, owner, rows_after, flipped_at,
                                              profiles, goals, first, honest_rows)
        won = [bool(f is not None and not alone[t]) for t, f in enumerate(flipped_at)]
        n_won = int(sum(won))
        lo, hi = clopper_pearson(n_won, nt)
        rounds = [f for f in flipped_at if f is not None]
        m: dict[str, float] = {
            "n_targets": float(nt),
            "n_trials": float(nt),
            "flipped": float(len(rounds)),
            "flipped_by_attacker": float(n_won),
            "success_ci_low": lo,
            "success_ci_high": hi,
            "rounds_to_flip": float(np.median(rounds)) if rounds else float("nan"),
            "rounds_run": float(curve["round"][-1]) if curve["round"] else 0.0,
            "poisoned_submitted": float(counts["poison_sent"]),
            "poisoned_accepted": float(counts["poison_acc"]),
            "benign_submitted": float(counts["benign_sent"]),
            "benign_accepted": float(counts["benign_acc"]),
            "poison_share_train": counts["poison_acc"] / len(y),
            "poison_share_feedback": (counts["poison_acc"]
                                      / max(1, counts["poison_acc"] + counts["benign_acc"])),
            "poison_budget": float(budget),
            "flipped_without_attacker": float(sum(alone)),
            "flipped_by_other_targets": float(sum(by_others)),
        }
        if data.test is not None and data.test.y is not None:
            Xt, yt = data.test.X, np.asarray(data.test.y)
            p0 = first.predict(Xt)
            if (stale and counts["poison_acc"] == 0) or (
                    not self.lean_loop and isinstance(model, _Deployed)):
                p1 = p0  # nothing crafted got in: the loop's model is the honest one
            else:
                if stale:
                    model = fit(data.model_factory, X, y)
                p1 = model.predict(Xt)
            m["accuracy_without_attack"] = float(np.mean(p0 == yt))
            m["accuracy_after"] = float(np.mean(p1 == yt))
            m["accuracy_drop"] = m["accuracy_without_attack"] - m["accuracy_after"]
            m["collateral_changed"] = float(np.mean(p0 != p1))
            if len(set(map(str, goals))) == 1:
                m["collateral_to_target"] = float(np.mean((p0 != goals[0]) & (p1 == goals[0])))
        notes = [f"{nt} target(s): {n_won} flipped by the attacker's reports, 95% interval "
                 f"{lo:.2f}-{hi:.2f} (Clopper-Pearson)"] if nt > 1 else []
        one = nt == 1
        if any(alone):
            notes.append("the profile flipped, but the same loop without the attacker's reports "
                         "flips it too: not counted as the attack's success" if one else
                         f"{sum(alone)} target(s) flipped, but the same loop without the "
                         "attacker's reports flips each of them too: not counted as the attack's "
                         "success")
        if any(by_others):
            notes.append(f"{sum(by_others)} target(s) decided as wanted only with other "
                         "targets' reports in the training data (the same rows without them do "
                         "not flip it, in any round): not counted as the attack's success")
        if unattributed:
            notes.append("the profile flipped; the model takes no sample weights, so whether it "
                         "would flip without the attacker's reports cannot be tested like for "
                         "like: counted as the attack's success" if one else
                         f"{unattributed} target(s) flipped; the model takes no sample weights, "
                         "so whether each would flip without the attacker's reports cannot be "
                         "tested like for like: counted as the attack's success")
        details = {"targets": [int(i) for i in chosen],  # rows of the victims attacked
                   "flipped_round": flipped_at, "counted": won,
                   "flipped_by_other_targets": by_others}
        return Outcome(success=n_won / nt, metrics=m, params=params, curves={"loop": curve},
                       notes=tuple(notes), details=details)

    def _attribute(self, data: AttackData, X: Any, y: np.ndarray, owner: np.ndarray,
                   rows_after: dict[int, int], flipped_at: list[int | None],
                   profiles: list[Any], goals: list[Any], first: Any,
                   honest_rows: int | None = None) -> tuple[list[bool], int]:
        """Which flipped targets the same loop without any crafted report flips too (``alone``:
        a borderline profile flips with the honest reports or the retraining's own randomness),
        and how many flips could not be tested like for like (``unattributed``). The reference
        is the loop's own rows up to the round the target flipped with the crafted ones weighted
        0 (a learner that samples rows draws the same ones); one per round, shared by the
        targets that flipped in it (``first`` when it was fitted so on the first
        ``honest_rows`` rows)."""
        assert data.model_factory is not None
        nt = len(profiles)
        alone, unattributed = [False] * nt, 0
        weighs = weighs_rows(data.model_factory())
        refs: dict[int, Any] = {r: first for r, n in rows_after.items()
                                if weighs and honest_rows is not None and n == honest_rows}
        for t, rnd in enumerate(flipped_at):
            if rnd is None:
                continue
            n = rows_after[rnd]
            if self.lean_loop or not (owner[:n] == t).any():
                alone[t] = first.predict(profiles[t])[0] == goals[t]
            elif weighs:
                if rnd not in refs:
                    refs[rnd] = fit_weighted(data.model_factory(), take_rows(X, np.arange(n)),
                                             y[:n], (owner[:n] < 0).astype(float))
                alone[t] = refs[rnd].predict(profiles[t])[0] == goals[t]
            else:
                # without sample weights a refit on fewer rows draws other rows: no like-for-like
                # reference, so the flip is counted as the attacker's (never a defence's credit)
                unattributed += 1
        return alone, unattributed


#: words a user might add to or drop from an inquiry without changing what it asks
_FILLERS = ("please", "thanks", "hi", "hello", "now", "again", "quickly", "my", "the", "?")


def craft_text(text: str, n: int, n_edits: int, rng: np.random.Generator,
               exact_first: bool = False) -> list[str]:
    """``n`` near copies of ``text``: each with ``n_edits`` word edits (drop a word, repeat one,
    swap two neighbours, or add a filler word such as "please"); with ``exact_first`` the first
    is ``text`` itself.

    Example:
        >>> craft_text("what is my balance", 3, 1, np.random.default_rng(0), exact_first=True)[0]
        'what is my balance'
    """
    out = []
    for r in range(n):
        words = str(text).split()
        if not (exact_first and r == 0):
            for _ in range(n_edits):
                op = int(rng.integers(4)) if len(words) > 1 else 3
                i = int(rng.integers(len(words))) if words else 0
                if op == 0:
                    del words[i]
                elif op == 1:
                    words.insert(i, words[i])
                elif op == 2:
                    j = min(i + 1, len(words) - 1)
                    words[i], words[j] = words[j], words[i]
                else:
                    words.insert(int(rng.integers(len(words) + 1)),
                                 _FILLERS[int(rng.integers(len(_FILLERS)))])
        out.append(" ".join(words))
    return out


def craft_images(image: np.ndarray, n: int, noise: float, lo: float, hi: float,
                 rng: np.random.Generator, exact_first: bool = False) -> np.ndarray:
    """``n`` near copies of one ``image``: Gaussian pixel noise of ``noise`` times the pixel
    range ``hi - lo``, clipped to it; with ``exact_first`` the first is the image itself.

    Example:
        >>> x = np.zeros((1, 4), dtype=np.float32)
        >>> out = craft_images(x, 3, 0.1, 0.0, 1.0, np.random.default_rng(0), exact_first=True)
        >>> out.shape, out.dtype.name, float(out[0].sum()), bool(out.min() >= 0.0)
        ((3, 4), 'float32', 0.0, True)
    """
    x = np.asarray(image)
    Z = np.repeat(x, n, axis=0).astype(np.float64)
    Z += rng.normal(0.0, noise * (hi - lo), size=Z.shape)
    if exact_first:
        Z[0] = x[0]
    return np.clip(Z, lo, hi).astype(x.dtype if x.dtype.kind == "f" else np.float32)


@ATTACKS.register("poisoning.feedback_loop_unstructured")
class FeedbackLoopUnstructured(FeedbackLoopPoisoning):
    """Flow G for text and image models: the feedback loop of ``poisoning.feedback_loop`` with
    reports that are near copies of the attacker's own input (an inquiry reworded by a word or
    two; a scanned form with pixel noise) claiming the class they want.

    Parameters as for ``poisoning.feedback_loop``; ``fields_varied`` is the number of word edits
    per text report, ``noise`` the pixel noise of an image report (a share of the training
    images' pixel range). The loop is lean (a CNN takes seconds to train): it starts from the
    deployed model and retrains only in rounds where a crafted report was merged. Several targets
    share one campaign and are counted as in the tabular loop (``n_targets``; the scan's profiles
    set 5, 10 or 20): a target flipped while others report costs one more retraining, of its own
    campaign.
    """

    name: ClassVar[str] = "poisoning.feedback_loop_unstructured"
    needs: ClassVar[frozenset[str]] = frozenset({"label", "train", "model_factory", "victims"})
    summary: ClassVar[str] = (
        "Flow G for text and images: near copies of the attacker's input reported with the "
        "class they want, merged and retrained until it flips"
    )
    input_kinds: ClassVar[tuple[str, ...]] = ("text", "image")
    #: a CNN retrained a round and once more for each target flipped while others report: on
    #: the OCR use case under robust.bagging, 5 targets ran past the quick limit at rank 2
    cost_rank: ClassVar[int] = 4
    strength_rank: ClassVar[int] = 2
    lean_loop: ClassVar[bool] = True

    noise: float = 0.05

    @classmethod
    def contract_fixture(cls) -> dict[str, Any]:
        """A small text system (bank intents, TF-IDF + logistic regression) for the contract
        tests."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        from finmlsec.attacks.base import Labeled
        from finmlsec.datasets import load

        ds = load("bank_intents")
        train, rest = ds.split(0.5, seed=0)
        X, y = list(train.X[:300]), np.asarray(train.y[:300])

        def factory() -> Any:
            return make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=300))

        pop = Labeled(list(rest.X[:200]), np.asarray(rest.y[:200]))
        data = AttackData(train=Labeled(X, y), model_factory=factory, population=pop,
                          victims=Labeled(list(rest.X[200:204]), np.asarray(rest.y[200:204])),
                          test=Labeled(list(rest.X[204:304]), np.asarray(rest.y[204:304])))
        return {"params": {"max_rounds": 3, "benign_per_round": 5},
                "target": factory().fit(X, y), "input_kind": "text", "access": "label",
                "data": data}

    def _validate(self) -> None:
        super()._validate()
        check_positive(type(self).__name__, "noise", self.noise, hi=1.0)

    def _craft(self, data: AttackData, profile: Any, k: int, rng: np.random.Generator,
               first: bool) -> Any:
        if isinstance(profile, list | tuple) or np.asarray(profile).dtype.kind in "OUS":
            return craft_text(str(profile[0]), k, self.fields_varied, rng, exact_first=first)
        assert data.train is not None
        pixels = np.asarray(data.train.X, dtype=np.float64)
        return craft_images(np.asarray(profile), k, self.noise, float(pixels.min()),
                            float(pixels.max()), rng, exact_first=first)
