"""What one server process holds, independent of HTTP: :class:`Gateway`.

It composes the parts the routers use: the storage (:class:`GatewayDB`: keys, audit, feedback)
and its :class:`AuditWriter`, the :class:`KeyCache` (who is calling), the :class:`Guards` built
from the policy (budgets, extraction detection, output defence, input screen) on one counter
store, the :class:`InputValidator` of the feature schema and the :class:`Predictor` (model,
compiled paths, micro-batcher). Tests may use the parts directly.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from finmlsec.defences.ratelimit import CounterStore
from finmlsec.errors import ConfigError
from finmlsec.gateway.admission import AddressThrottle, InFlight
from finmlsec.gateway.audit import open_writer
from finmlsec.gateway.durable import PradaStates, open_counter_store
from finmlsec.gateway.guards import Guards
from finmlsec.gateway.keycache import KeyCache, Principal
from finmlsec.gateway.predictor import Predictor
from finmlsec.gateway.settings import Settings
from finmlsec.gateway.validation import InputValidator
from finmlsec.schema import FeatureSchema
from finmlsec.store.gateway import GatewayDB
from finmlsec.targets.base import Target
from finmlsec.targets.cutoff import cutoff_of

__all__ = ["Gateway", "Principal"]

T = TypeVar("T")


class Gateway:
    """One process's gateway: storage, keys, guards, validation, model."""

    def decide(self, P: np.ndarray) -> np.ndarray:
        """The class position of each row's decision on the unrounded probabilities ``P``: at
        the bank's cut-off where the spec gives one (``model.decision_threshold``), else the
        most probable class."""
        P = np.asarray(P, dtype=float)
        if self.cutoff is not None and P.ndim == 2 and P.shape[1] == 2:
            return self.cutoff.decide(P)
        return np.argmax(P, axis=1)

    def __init__(self, settings: Settings, *, target: Target, schema: FeatureSchema,
                 reference: Any = None, class_names: list[str] | None = None,
                 feedback_organisations: list[str] | None = None) -> None:
        self.settings = settings
        self.policy = settings.policy
        self.schema = schema
        self.classes = np.asarray(target.classes_)
        # the bank's cut-off (model.decision_threshold): the labels answered are its decisions
        self.cutoff = cutoff_of(target)
        self.class_names = list(class_names) if class_names else [str(c) for c in self.classes]
        if len(self.class_names) != len(self.classes):
            raise ConfigError(f"{len(self.class_names)} class names for a model with "
                              f"{len(self.classes)} classes")
        fb = self.policy.feedback.organisations
        self.feedback_organisations = list(fb) if fb is not None else feedback_organisations
        self.validator = InputValidator(schema)
        self.db = GatewayDB(settings.db_url, table_prefix=settings.table_prefix,
                            durable=settings.audit_durable)
        self.audit = open_writer(self.db, key_file=settings.audit_key_file,
                                 anchor=settings.audit_anchor,
                                 anchor_seconds=settings.audit_anchor_seconds,
                                 batch_max=settings.audit_batch_max,
                                 linger=settings.audit_linger_seconds, create_key=True)
        self.salt = self.db.digest_salt()
        self.keys = KeyCache(self.db, ttl=settings.key_cache_seconds)
        # budgets, blocks and PRADA's state outlive the process (durable.py)
        self.store: CounterStore
        self.store, self.store_warning = open_counter_store(self.db, settings.redis_url,
                                                            settings.redis_prefix)
        self.guards = Guards(self.policy, self.store, schema=schema, classes=self.classes,
                             target=target, reference=reference,
                             prada_log=lambda det, width: PradaStates(
                                 det, width, db=self.db, redis_url=settings.redis_url,
                                 prefix=settings.redis_prefix))
        # the guards' counter store and detector log are I/O (database, Redis): their calls run
        # on these threads, never in the event loop (a budget charge may wait on a database lock)
        self._guard_io: ThreadPoolExecutor | None = None  # made on first use, again after close
        i = self.policy.input
        self.in_flight = InFlight(i.max_in_flight_per_key, i.max_in_flight)
        self.throttle = AddressThrottle(
            per_minute=i.unauthenticated_per_minute, interval=i.refusals_audit_seconds,
            digest=lambda address: self.digest(address.encode("utf-8", "replace")))
        self.predictor = Predictor(target, schema, self.guards, reference=reference,
                                   max_rows=settings.predict_batch_max_rows,
                                   linger=settings.predict_batch_linger_seconds,
                                   sample=self.policy.extraction.max_rows_per_request)
        # what this process guards with, PRADA's per-model threshold included, is on the record
        # (one entry per process start; an auditor sees the threshold every block was judged by)
        self.audit.append_sync(self.entry(None, "gateway.start", 200, **self.status()))

    def status(self) -> dict[str, Any]:
        """This process's guards (:meth:`Guards.status`) and key settings, for the audit log's
        start entry and ``GET /v1/admin/status`` (never a key, a record or a host name)."""
        return {"pid": os.getpid(), "guards": self.guards.status(),
                "key_rotation_grace_seconds": self.settings.key_rotation_grace_seconds,
                "audit_key": self.audit.key is not None,
                "audit_anchor": self.audit.anchor is not None,
                "shared_counters": self.settings.redis_url is not None}

    async def guard(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` (a guards' method) on the guards' I/O threads."""
        if self._guard_io is None:
            self._guard_io = ThreadPoolExecutor(max_workers=8,
                                                thread_name_prefix="finmlsec-guards")
        return await asyncio.get_running_loop().run_in_executor(self._guard_io, fn, *args)

    def startup_warnings(self) -> list[str]:
        """What this process cannot guarantee, said at start-up: a volatile Redis, an audit log
        without a key or an anchor outside the database."""
        out = [] if self.store_warning is None else [self.store_warning]
        if self.audit.key is None:
            out.append("audit: no audit key (--audit-key-file): whoever can write the database "
                       "can rewrite the log undetected")
        if self.audit.anchor is None:
            out.append("audit: no anchor file (--audit-anchor): deleting the newest entries "
                       "cannot be detected")
        return out

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

    def flush_refusals(self, now: float) -> None:
        """Queue the aggregated audit entry of the refused unauthenticated requests counted
        since the last one (not awaited: nobody waits for it)."""
        detail = self.throttle.take(now=now)
        if detail is not None:
            self.audit.submit(self.entry(None, "auth.refused", 401, **detail))

    def close(self) -> None:
        self.flush_refusals(time.time())
        self.predictor.close()
        if self._guard_io is not None:
            self._guard_io.shutdown(wait=True)
            self._guard_io = None
        self.audit.close()
        self.db.dispose()
