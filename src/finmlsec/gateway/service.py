"""The gateway's state and guards, independent of HTTP: what one server process holds.

:class:`Gateway` owns the model, the feature schema, the guard objects built from the policy (the
same defence classes the scan measures: the confidence meta-estimators, :class:`QueryBudget`,
:class:`PradaDetector`, an input screen), the storage (keys, audit, feedback) and the shared
counter store. The routers call its methods; tests may too.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sqlalchemy.exc import SQLAlchemyError

from finmlsec.datasets.schema import FeatureSchema
from finmlsec.defences.extraction_detection import PradaDetector, PradaState, SchemaEncoder
from finmlsec.defences.ratelimit import (
    BudgetDecision,
    CounterStore,
    Limit,
    MemoryCounterStore,
    QueryBudget,
    RedisCounterStore,
)
from finmlsec.errors import ConfigError, StoreError
from finmlsec.gateway import fastpath
from finmlsec.gateway.audit import AuditWriter
from finmlsec.gateway.batcher import MicroBatcher
from finmlsec.gateway.settings import Settings
from finmlsec.gateway.validation import RecordValidator
from finmlsec.store.gateway import ApiKey, GatewayDB
from finmlsec.targets.base import Target


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: key id, organisation, role (never the key itself)."""

    key_id: str
    org: str
    role: str


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


def build_output_defence(policy_mode: str, decimals: int, k: int, classes: np.ndarray) -> tuple[Any, _Precomputed] | None:
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


class Gateway:
    """One process's gateway: model, schema, guards, storage."""

    def __init__(self, settings: Settings, *, target: Target, schema: FeatureSchema,
                 reference: Any = None, class_names: list[str] | None = None,
                 feedback_organisations: list[str] | None = None) -> None:
        self.settings = settings
        self.policy = settings.policy
        self.target = target
        self.schema = schema
        self.classes = np.asarray(target.classes_)
        self.class_names = list(class_names) if class_names else [str(c) for c in self.classes]
        if len(self.class_names) != len(self.classes):
            raise ConfigError(f"{len(self.class_names)} class names for a model with "
                              f"{len(self.classes)} classes")
        self.validator = RecordValidator(schema)
        fb = self.policy.feedback.organisations
        self.feedback_organisations = list(fb) if fb is not None else feedback_organisations
        self.db = GatewayDB(settings.db_url, table_prefix=settings.table_prefix,
                            durable=settings.audit_durable)
        self.audit = AuditWriter(self.db, batch_max=settings.audit_batch_max,
                                 linger=settings.audit_linger_seconds)
        self.salt = self.db.digest_salt()
        self.store: CounterStore = (
            RedisCounterStore(settings.redis_url, prefix=settings.redis_prefix)
            if settings.redis_url else MemoryCounterStore()
        )
        b = self.policy.budget
        self.request_budget = QueryBudget(per_second=b.requests_per_second,
                                          per_minute=b.requests_per_minute)
        self.row_budget = QueryBudget(per_minute=b.per_minute, per_day=b.per_day,
                                      lifetime=b.lifetime)
        self.feedback_budget = QueryBudget(per_minute=None, per_day=b.feedback_per_day)
        for q in (self.request_budget, self.row_budget, self.feedback_budget):
            q.limits()
        self._request_limits = self.request_budget.limits()
        self._row_limits = self.row_budget.limits()
        o = self.policy.output
        self._output = build_output_defence(o.mode, o.decimals, o.k, self.classes)
        self._output_lock = threading.Lock()
        e = self.policy.extraction
        self.prada: PradaDetector | None = None
        if e.enabled:
            self.prada = PradaDetector(
                threshold=e.threshold, min_queries=e.min_queries, check_every=e.check_every,
                window=e.window, max_stored=e.max_stored, action=e.action,
                max_far_rate=e.max_far_rate, far_quantile=e.far_quantile,
            ).validate()
            self.encoder = SchemaEncoder(schema)
            if e.max_far_rate is not None and reference is not None:
                self.prada.fit_reference(self.encoder.encode_frame(reference))
        self.prada_states: dict[str, PradaState] = {}
        self._prada_lock = threading.Lock()
        self.screen = self._build_screen(reference)
        # compiled numpy paths for records (no DataFrame), used only where verified equal
        names = schema.names
        self.fast_model = fastpath.verified(
            fastpath.compile_model(getattr(target, "estimator", None)), target.predict_proba,
            reference, names)
        self.fast_screen = None if self.screen is None else fastpath.verified(
            fastpath.compile_screen(self.screen), self.screen_rows, reference, names)
        self.batcher = MicroBatcher(self._predict_records, max_rows=settings.predict_batch_max_rows,
                                    linger=settings.predict_batch_linger_seconds)
        self._keys: dict[bytes, tuple[float, ApiKey | None, Principal | None]] = {}
        self._keys_checked = time.monotonic()

    # -- construction helpers -------------------------------------------------------------------
    def _build_screen(self, reference: Any) -> Any:
        """The policy's input screen: one of the defences engineer's detectors (out of
        distribution: ``input_screen.ood``; feature squeezing against the served model:
        ``input_screen.squeeze``) or a registered defence following scikit-learn's outlier
        convention (``fit``, then ``predict`` giving -1 for suspicious records)."""
        s = self.policy.screening
        if not s.enabled:
            return None
        import importlib

        from finmlsec.defences import DEFENCES

        if reference is None:
            raise ConfigError(
                "input screening needs reference data (the training split) to fit the "
                f"detector {s.defence!r}; give the spec a data section or disable screening"
            )
        builtin = {"input_screen.ood": "OODDetector", "input_screen.squeeze": "SqueezeDetector"}
        if s.defence in builtin:
            mod = importlib.import_module("finmlsec.defences.input_screen")
            cls = getattr(mod, builtin[s.defence])
            model = getattr(self.target, "estimator", self.target)
            screen = (cls(model, **s.params) if s.defence == "input_screen.squeeze"
                      else cls(**s.params))
        else:
            screen = DEFENCES.get(s.defence)(**s.params)
        if not (hasattr(screen, "fit") and hasattr(screen, "predict")):
            raise ConfigError(
                f"the screening defence {s.defence!r} has no fit()/predict(); the gateway needs "
                "a detector whose predict gives -1 for suspicious inputs, e.g. input_screen.ood"
            )
        return screen.fit(reference)

    # -- authentication -------------------------------------------------------------------------
    def authenticate(self, token: str) -> Principal | None:
        """The principal of an API key, or None. A revoked (or deleted) key is refused within
        ``key_cache_seconds``: verified keys stay cached, and every ``key_cache_seconds`` one
        query of the active key ids evicts the others (rather than one lookup per key and
        period); unknown tokens are cached for ``key_cache_seconds``; 0 disables the cache."""
        ttl = self.settings.key_cache_seconds
        now = time.monotonic()
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        if ttl > 0:
            if now >= self._keys_checked + ttl:
                self._refresh_keys(now)
            hit = self._keys.get(digest)
            if hit is not None and (hit[1] is not None or hit[0] > now):
                return hit[2]
        try:
            key = self.db.verify_token(token)
        except SQLAlchemyError as exc:
            raise StoreError(f"the key store is unavailable: {type(exc).__name__}") from None
        if len(self._keys) > 10_000:
            self._keys.clear()
        p = None if key is None else Principal(key.key_id, key.org, key.role)
        if ttl > 0:
            self._keys[digest] = (now + ttl, key, p)
        return p

    def _refresh_keys(self, now: float) -> None:
        try:
            active = self.db.active_key_ids()
        except SQLAlchemyError as exc:
            raise StoreError(f"the key store is unavailable: {type(exc).__name__}") from None
        self._keys = {d: v for d, v in self._keys.items()
                      if (v[1].key_id in active if v[1] is not None else v[0] > now)}
        self._keys_checked = now

    def forget_key(self, key_id: str) -> None:
        self._keys = {d: v for d, v in self._keys.items() if v[1] is None or v[1].key_id != key_id}

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
        # limits validated once, at start-up, rather than on every request
        return self.request_budget.consume(self.store, f"req:{p.key_id}",
                                           limits=self._request_limits)

    def charge_rows(self, p: Principal, n: int) -> BudgetDecision:
        return self.row_budget.consume(self.store, f"rows:{p.key_id}", cost=n,
                                       limits=self._row_limits)

    def charge_feedback(self, p: Principal) -> BudgetDecision:
        return self.feedback_budget.consume(self.store, f"fb:{p.key_id}", cost=1)

    # -- the model ---------------------------------------------------------------------------------
    def _predict_records(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if self.fast_model is not None and (self.screen is None or self.fast_screen is not None):
            try:
                return self.predict_columns(
                    fastpath.records_to_columns(rows, self.schema.names),
                    lambda idx: self.encoder.encode_records([rows[i] for i in idx]))
            except fastpath.Unsupported:
                pass  # e.g. a null in a nullable field: the original objects handle it
        return self.predict_frame(self.validator.frame(rows))

    def predict_columns(self, columns: fastpath.Columns, encode: Any,
                        sample: int | None = None) -> np.ndarray:
        """:meth:`predict_frame` through the compiled model and screen; ``encode(idx)`` gives
        PRADA's encoding of the rows ``idx``."""
        assert self.fast_model is not None
        P = self.fast_model(columns)
        n = len(P)
        flags = (np.zeros(n, dtype=bool) if self.fast_screen is None
                 else np.asarray(self.fast_screen(columns), dtype=bool))
        return self._assemble(P, np.zeros((n, 1)), flags, encode, sample)

    def predict_frame(self, X: Any, sample: int | None = None) -> np.ndarray:
        """Everything the model thread computes for a batch, one row per record (see
        :meth:`split`): raw probabilities, the answer after the output defence, the input-screen
        flag and, with extraction detection, whether the row is observed, whether it is far from
        the training data, and its encoding. ``sample`` bounds the observed rows of one large
        request (a random subset)."""
        P = np.asarray(self.target.predict_proba(X), dtype=float)
        return self._assemble(
            P, X, self.screen_rows(X),
            lambda idx: self.encoder.encode_frame(X.iloc[idx] if hasattr(X, "iloc") else X[idx]),
            sample)

    def _assemble(self, P: np.ndarray, X: Any, suspicious: np.ndarray,
                  encode: Any, sample: int | None) -> np.ndarray:
        cols = [P, self.modify_output(P, X), suspicious.astype(float)[:, None]]
        if self.prada is not None:
            n = len(P)
            idx = np.arange(n) if sample is None or n <= sample else np.sort(
                np.random.default_rng(int(time.time_ns() % 2**32)).choice(n, sample, replace=False))
            E = np.zeros((n, self.encoder.width))
            E[idx] = encode(idx)
            seen = np.zeros(n)
            seen[idx] = 1.0
            far = np.zeros(n)
            far[idx] = self.prada.far_mask(E[idx])
            cols += [seen[:, None], far[:, None], E]
        return np.column_stack(cols)

    def predict_sampled(self, X: Any) -> np.ndarray:
        """:meth:`predict_frame` for one large request (PRADA sees a bounded sample). ``X`` is a
        DataFrame, or validated columns (:meth:`RecordValidator.columns_if_valid`)."""
        sample = self.policy.extraction.max_rows_per_request
        names = self.schema.names
        fast = self.fast_model is not None and (self.screen is None or self.fast_screen is not None)
        if isinstance(X, dict):
            if fast:
                try:
                    return self.predict_columns(X, lambda idx: self.encoder.encode_records(
                        [{n: X[n][i] for n in names} for i in idx]), sample)
                except fastpath.Unsupported:
                    pass
            import pandas as pd

            X = pd.DataFrame({n: np.asarray(X[n]) for n in names})
        elif fast and hasattr(X, "iloc"):
            try:
                return self.predict_columns(
                    {n: X[n].to_numpy() for n in names},
                    lambda idx: self.encoder.encode_frame(X.iloc[idx]), sample)
            except fastpath.Unsupported:
                pass
        return self.predict_frame(X, sample=sample)

    def split(self, out: np.ndarray) -> dict[str, np.ndarray]:
        """The parts of a :meth:`predict_frame` result."""
        k = len(self.classes)
        parts = {"proba": out[:, :k], "answer": out[:, k:2 * k], "suspicious": out[:, 2 * k] > 0}
        if self.prada is not None:
            parts.update(seen=out[:, 2 * k + 1] > 0, far=out[:, 2 * k + 2] > 0,
                         encoded=out[:, 2 * k + 3:])
        return parts

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
    def observe(self, p: Principal, parts: dict[str, np.ndarray]) -> tuple[bool, dict[str, Any]]:
        """Feed PRADA the observed rows of one request; returns (newly flagged, details)."""
        if self.prada is None or p.org in self.policy.extraction.exempt_organisations:
            return False, {}
        seen = np.flatnonzero(parts["seen"])
        cap = self.policy.extraction.max_rows_per_request
        if len(seen) > cap:
            seen = np.sort(np.random.default_rng(int(time.time_ns() % 2**32)).choice(
                seen, cap, replace=False))
        labels = np.argmax(parts["proba"][seen], axis=1)
        with self._prada_lock:
            state = self.prada_states.get(p.key_id)
            if state is None:
                state = self.prada_states[p.key_id] = self.prada.new_state()
            v = self.prada.observe(state, parts["encoded"][seen], labels, far=parts["far"][seen])
        if v.newly_flagged:
            self.store.set_flag(f"flag:{p.key_id}", self.prada.action)
        w = v.w if v.w is None or v.w == v.w else None  # NaN is not JSON
        return v.newly_flagged, {"w": w, "far_rate": v.far_rate, "reason": v.reason,
                                 "queries": v.queries}

    def unblock(self, key_id: str) -> None:
        self.store.clear_flag(f"flag:{key_id}")
        with self._prada_lock:
            self.prada_states.pop(key_id, None)

    # -- audit helpers -----------------------------------------------------------------------------
    def digest(self, payload: bytes) -> str:
        """Keyed digest of request contents: lets an auditor match a complaint to an entry
        without the log holding personal data."""
        return hmac.new(self.salt, payload, hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def entry(p: Principal | None, action: str, status: int, **detail: Any) -> dict[str, Any]:
        e: dict[str, Any] = {
            "action": action,
            "status": status,
            "key_id": p.key_id if p else None,
            "org": p.org if p else None,
            "role": p.role if p else None,
        }
        if detail:
            e["detail"] = detail  # JSON values only (the writer serialises with default=str)
        return e

    def close(self) -> None:
        self.batcher.close()
        self.audit.close()
        self.db.dispose()
