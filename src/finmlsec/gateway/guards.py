"""The policy's guards, independent of HTTP: budgets and rate limits, the extraction detector
(PRADA) and its blocks, the output (confidence) defence and the input screen.

They are the components the scan measures, built by name from the registered serving guards
(:data:`~finmlsec.defences.GUARDS`: :class:`QueryBudget`, :class:`PradaDetector`, the input
screens) and the confidence meta-estimators, configured from the :class:`Policy` and sharing one
counter store (in-process memory, or Redis for several processes).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from finmlsec.defences import build_guard
from finmlsec.defences.extraction_detection import PradaDetector, SchemaEncoder
from finmlsec.defences.ratelimit import BudgetDecision, CounterStore, Limit, QueryBudget
from finmlsec.errors import ConfigError
from finmlsec.gateway.durable import PradaStates
from finmlsec.gateway.keycache import Principal
from finmlsec.gateway.policy import Policy
from finmlsec.schema import FeatureSchema

#: the registered guards (:data:`~finmlsec.defences.GUARDS`) the policy's sections configure
BUDGET = "ratelimit.query_budget"
PRADA = "detection.prada"
DEFAULT_PRADA_THRESHOLD = 0.82  # tuned on credit scoring; used without reference data


class _Precomputed(ClassifierMixin, BaseEstimator):
    """A fitted-looking estimator that returns probabilities computed just before, so an output
    defence can modify them without querying the model a second time."""

    def __init__(self, classes: Any = None) -> None:
        self.classes = classes
        self.classes_ = np.asarray(classes)
        self.p: np.ndarray = np.zeros((0, len(classes)))

    def fit(self, X: Any, y: Any = None) -> _Precomputed:
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.p

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.p, axis=1)]


def build_output_defence(policy_mode: str, decimals: int, k: int,
                         classes: np.ndarray) -> tuple[Any, _Precomputed] | None:
    """The confidence meta-estimator of the policy around a :class:`_Precomputed` source."""
    if policy_mode == "none":
        return None
    from finmlsec.defences import confidence as conf

    src = _Precomputed(classes)
    est: Any
    if policy_mode == "round":
        est = conf.RoundConfidence(src, decimals=decimals, prefit=True)
    elif policy_mode == "truncate":
        est = conf.TruncateConfidence(src, decimals=decimals, prefit=True)
    elif policy_mode == "top_k":
        est = conf.TopKConfidence(src, k=k, prefit=True)
    else:
        est = conf.LabelOnly(src, prefit=True)
    return est.fit(None, None), src


#: The scan's input screen (the ``input_screen`` defence: out-of-distribution detector and
#: feature squeezing), served as its two registered input guards, and the parameters it takes
COMBINED_SCREEN = "input_screen"
COMBINED_PARAMS = {"ood_quantile": ("input_screen.ood", "quantile"),
                   "random_state": ("input_screen.ood", "random_state"),
                   "squeeze_levels": ("input_screen.squeeze", "levels"),
                   "squeeze_fpr": ("input_screen.squeeze", "fpr")}


class AnyScreen:
    """Several fitted input guards as one screen: ``predict`` gives -1 for a record any of them
    refuses, +1 otherwise (the scan's ``input_screen`` refuses a record either of its detectors
    flags)."""

    def __init__(self, screens: dict[str, Any]) -> None:
        self.screens = screens

    def predict(self, X: Any) -> np.ndarray:
        bad = np.zeros(len(X), dtype=bool)
        for screen in self.screens.values():
            bad |= np.asarray(screen.predict(X)) == -1
        return np.where(bad, -1, 1)


def build_combined_screen(params: dict[str, Any], target: Any, reference: Any) -> AnyScreen:
    """The scan's ``input_screen`` at the gateway: ``input_screen.ood`` and (unless
    ``squeeze_levels`` is None) ``input_screen.squeeze`` against the served model, with the
    defence's defaults (quantile 0.01; 8 levels, 5% of clean records over the threshold) and
    its parameter names, each fitted on ``reference``. Schema validation, the defence's third
    part, is the gateway's own (every record is validated before the screen)."""
    from finmlsec.defences import DEFENCES, build_guard

    unknown = sorted(set(params) - set(COMBINED_PARAMS))
    if unknown:
        raise ConfigError(
            f"the screening defence {COMBINED_SCREEN!r} served at the gateway takes "
            f"{', '.join(COMBINED_PARAMS)}; got {unknown} (text screening does not apply to "
            "the gateway's tabular records)")
    from finmlsec.defences._params import validate_params

    cls = DEFENCES.get(COMBINED_SCREEN)
    validate_params(cls.__name__, params, cls._parameter_constraints)
    defaults = cls().get_params()
    merged = {k: params.get(k, defaults[k]) for k in COMBINED_PARAMS}
    per_guard: dict[str, dict[str, Any]] = {"input_screen.ood": {}}
    if merged["squeeze_levels"] is not None:
        per_guard["input_screen.squeeze"] = {}
    for key, (guard, name) in COMBINED_PARAMS.items():
        if guard in per_guard:
            per_guard[guard][name] = merged[key]
    model = getattr(target, "estimator", target)
    return AnyScreen({g: build_guard(g, model, **kw).fit(reference)
                      for g, kw in per_guard.items()})


def build_screen(policy: Policy, target: Any, reference: Any) -> Any:
    """The policy's input screen, fitted on ``reference``: the registered input guard it names
    (:data:`~finmlsec.defences.GUARDS`, stage ``input``: out of distribution,
    ``input_screen.ood``; feature squeezing against the served model, ``input_screen.squeeze``),
    built by name with the policy's parameters, or the scan's combination of both
    (``input_screen``, :func:`build_combined_screen`); None when off."""
    s = policy.screening
    if not s.enabled:
        return None
    from finmlsec.defences import GUARDS, build_guard

    if reference is None:
        raise ConfigError(
            "input screening needs reference data (the training split) to fit the "
            f"detector {s.defence!r}; give the spec a data section or disable screening"
        )
    if s.defence == COMBINED_SCREEN:
        return build_combined_screen(s.params, target, reference)
    if s.defence not in GUARDS:
        screens = [n for n, c in GUARDS.items() if c.stage == "input"]
        raise ConfigError(
            f"unknown screening guard {s.defence!r}; screening takes an input guard: "
            f"{', '.join(screens)}, or {COMBINED_SCREEN} (both, as the scan measures them)")
    if GUARDS.get(s.defence).stage != "input":
        screens = [n for n, c in GUARDS.items() if c.stage == "input"]
        raise ConfigError(
            f"the screening guard {s.defence!r} acts on a client's requests, not on single "
            f"inputs; screening takes an input guard: {', '.join(screens)}"
        )
    return build_guard(s.defence, getattr(target, "estimator", target), **s.params).fit(reference)


class Guards:
    """Budgets, blocks, PRADA, the output defence and the input screen of one process."""

    def __init__(self, policy: Policy, store: CounterStore, *, schema: FeatureSchema,
                 classes: np.ndarray, target: Any, reference: Any = None,
                 prada_log: Any = None) -> None:
        self.policy = policy
        self.store = store
        b = policy.budget
        self.request_budget: QueryBudget = build_guard(
            BUDGET, per_second=b.requests_per_second, per_minute=b.requests_per_minute)
        self.row_budget: QueryBudget = build_guard(
            BUDGET, per_minute=b.per_minute, per_day=b.per_day, lifetime=b.lifetime)
        self.feedback_budget: QueryBudget = build_guard(
            BUDGET, per_minute=None, per_day=b.feedback_per_day)
        self.org_budget: QueryBudget = build_guard(BUDGET, per_minute=None, per_day=b.org_per_day)
        self._org_limits = self.org_budget.limits()
        # limits validated once, at start-up, rather than on every request
        self._request_limits = self.request_budget.limits()
        self._row_limits = self.row_budget.limits()
        self._feedback_limits = self.feedback_budget.limits()
        o = policy.output
        self._output = build_output_defence(o.mode, o.decimals, o.k, classes)
        self._output_lock = threading.Lock()
        e = policy.extraction
        self.prada: PradaDetector | None = None
        self.encoder = SchemaEncoder(schema)
        if e.enabled:
            self.prada = build_guard(
                PRADA, threshold=DEFAULT_PRADA_THRESHOLD if e.threshold is None else e.threshold,
                min_queries=e.min_queries,
                check_every=e.check_every, window=e.window, max_stored=e.max_stored,
                action=e.action, max_far_rate=e.max_far_rate, far_quantile=e.far_quantile,
            )
            if e.max_far_rate is not None and reference is not None:
                self.prada.fit_reference(self.encoder.encode_frame(reference))
            self.prada_threshold_source = "policy" if e.threshold is not None else "default"
            if e.threshold is None and reference is not None:
                self._calibrate_prada(target, reference)
        # PRADA's per-client state, replayed from a log shared by replicas and kept across
        # restarts (``prada_log(detector, width)`` builds it; in this process only without)
        self.prada_states: PradaStates | None = None if self.prada is None else (
            prada_log or PradaStates)(self.prada, self.encoder.width)
        self.screen = build_screen(policy, target, reference)

    def _calibrate_prada(self, target: Any, reference: Any) -> None:
        """PRADA's threshold for this model, from simulated genuine clients replaying the
        reference records (random draws and contiguous runs; see
        :meth:`~finmlsec.defences.extraction_detection.PradaDetector.calibrate`)."""
        assert self.prada is not None
        e = self.policy.extraction
        E = self.encoder.encode_frame(reference)
        labels = np.argmax(np.asarray(target.predict_proba(reference), dtype=float), axis=1)
        if len(E) <= e.min_queries + 1:
            return  # too little reference data: the default threshold stays
        self.prada.calibrate(E, labels, target_false_block_rate=e.target_false_block_rate,
                             margin=e.calibration_margin, cap=e.max_threshold,
                             streams=e.calibration_streams, length=e.calibration_queries,
                             seed=e.calibration_seed, contiguous=e.calibration_contiguous)
        self.prada_threshold_source = "calibrated"

    def prada_summary(self) -> str | None:
        """One line on PRADA's threshold and where it came from (None when detection is off)."""
        if self.prada is None:
            return None
        line = f"extraction: PRADA threshold W < {self.prada.threshold:.3f}"
        cal = getattr(self.prada, "calibration_", None)
        if self.prada_threshold_source == "calibrated" and cal is not None:
            return (f"{line}, calibrated on {cal['streams']} simulated genuine clients of "
                    f"{cal['length']} reference records (their {cal['target_false_block_rate']:g} "
                    f"quantile of lowest W {cal['genuine_w_quantile']:.3f}, margin "
                    f"{cal['margin']:g}, cap {cal['cap']:g}; median {cal['genuine_w_median']:.3f})")
        if self.prada_threshold_source == "policy":
            return f"{line}, set by the policy"
        return f"{line}, the default (no reference data to calibrate on)"

    def prada_status(self) -> dict[str, Any] | None:
        """PRADA's threshold, where it came from and (when calibrated) what it was derived from;
        None when extraction detection is off. Written to the audit log at start-up and shown
        to admins (``GET /v1/admin/status``)."""
        if self.prada is None:
            return None
        e = self.policy.extraction
        cal = getattr(self.prada, "calibration_", None)
        return {"threshold": round(float(self.prada.threshold), 4),
                "threshold_source": self.prada_threshold_source,
                "calibration": dict(cal) if self.prada_threshold_source == "calibrated" and cal
                else None,
                "min_queries": e.min_queries, "max_far_rate": e.max_far_rate,
                "action": e.action}

    def status(self) -> dict[str, Any]:
        """What this process guards with (never a key or a record): the output defence, the
        budgets, PRADA (see :meth:`prada_status`) and the input screen."""
        p = self.policy
        return {"output": {"mode": p.output.mode, "decimals": p.output.decimals},
                "budget": p.budget.model_dump(mode="json"),
                "extraction": self.prada_status(),
                "screening": {"enabled": p.screening.enabled,
                              "defence": p.screening.defence if p.screening.enabled else None,
                              "action": p.screening.action if p.screening.enabled else None}}

    # -- limits -----------------------------------------------------------------------------------
    def check_block(self, p: Principal) -> BudgetDecision | str | None:
        """``"block"`` when the client is blocked, a refusing decision when it is throttled and
        came too early, else None."""
        flag = self.store.get_flag(f"flag:{p.key_id}")
        if flag is None:
            return None
        if flag == "block":
            return "block"
        secs = self.policy.extraction.throttle_seconds
        d = self.store.consume(f"throttle:{p.key_id}", [Limit("throttle", secs, 1)], 1, time.time())
        return None if d.allowed else d

    def charge_request(self, p: Principal) -> BudgetDecision:
        return self.request_budget.consume(self.store, f"req:{p.key_id}",
                                           limits=self._request_limits)

    def charge_rows(self, p: Principal, n: int) -> BudgetDecision:
        """Charge ``n`` records to the key, then to its organisation (``org_per_day``); records
        the organisation's budget refuses stay charged to the key."""
        d = self.row_budget.consume(self.store, f"rows:{p.key_id}", cost=n,
                                    limits=self._row_limits)
        if not d.allowed or not self._org_limits:
            return d
        d = self.org_budget.consume(self.store, f"orgrows:{p.org}", cost=n,
                                    limits=self._org_limits)
        return d if d.allowed else replace(d, window=f"{d.window} (all keys of the organisation)")

    def charge_feedback(self, p: Principal) -> BudgetDecision:
        return self.feedback_budget.consume(self.store, f"fb:{p.key_id}", cost=1,
                                            limits=self._feedback_limits)

    # -- output and input defences ------------------------------------------------------------------
    def modify_output(self, P: np.ndarray, X: Any) -> np.ndarray:
        """The policy's confidence modification applied to raw probabilities ``P``."""
        if self._output is None:
            return P
        est, src = self._output
        with self._output_lock:
            src.p = P
            return np.asarray(est.predict_proba(X), dtype=float)

    def screen_rows(self, X: Any) -> np.ndarray:
        """Boolean mask of rows the input screen finds suspicious (all False without a screen)."""
        if self.screen is None:
            return np.zeros(len(X), dtype=bool)
        return np.asarray(self.screen.predict(X)) == -1

    # -- extraction detection --------------------------------------------------------------------
    def observe(self, p: Principal, rows: np.ndarray, encoded: np.ndarray, proba: np.ndarray,
                far: np.ndarray) -> tuple[bool, dict[str, Any]]:
        """Feed PRADA the observed ``rows`` of one request (their encodings, raw probabilities
        and far-from-training flags); returns (newly flagged, details)."""
        if self.prada is None or p.org in self.policy.extraction.exempt_organisations:
            return False, {}
        cap = self.policy.extraction.max_rows_per_request
        if len(rows) > cap:
            rows = np.sort(np.random.default_rng(int(time.time_ns() % 2**32)).choice(
                rows, cap, replace=False))
        labels = np.argmax(proba[rows], axis=1)
        assert self.prada_states is not None
        v = self.prada_states.observe(p.key_id, encoded[rows], labels, far[rows])
        if v.newly_flagged:
            self.store.set_flag(f"flag:{p.key_id}", self.prada.action)
        w = v.w if v.w is None or v.w == v.w else None  # NaN is not JSON
        return v.newly_flagged, {"w": w, "far_rate": v.far_rate, "reason": v.reason,
                                 "queries": v.queries}

    def unblock(self, key_id: str) -> None:
        self.store.clear_flag(f"flag:{key_id}")
        if self.prada_states is not None:
            self.prada_states.reset(key_id)
