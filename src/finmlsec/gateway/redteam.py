"""Extraction attacks against a running gateway, over real HTTP on loopback: does the policy stop
them, and what does it cost genuine clients?

:class:`LoopbackGateway` serves an app with uvicorn in a thread of this process. Each attack gets
an API key of its own and reaches the model only through :class:`GatewayOracle`, whose queries
are HTTP requests to ``POST /v1/predict`` (:class:`GatewayTarget`, a
:class:`~finmlsec.targets.remote.RemoteTarget` that reads the gateway's refusals): the attacker
sees what the gateway answers (rounded probabilities under the default policy), sends batches of
``batch_size`` records, waits when told to by ``Retry-After``, and resends one by one the records
of a batch the input screen refused. The evaluator's side (fidelity on held-out records) uses the
model itself, which the attacker never touches.

Once the gateway blocks the key (403, or a 429 whose wait exceeds ``max_wait``: the daily budget),
the attacker learns nothing more: every later query is answered by its own copy trained on public
data, and the attack runs to its end. Its final fidelity is therefore what it reached with the
answers it got before the block. The attacker's no-query baseline is the better of the constant
copy and the copy trained on the public records (``fidelity_baseline`` of
:func:`~finmlsec.attacks.extraction_common.theft_metrics`); an attack is **not stopped** only when
its fidelity exceeds that baseline by more than :data:`MARGIN` (5 points) significantly: both
copies are scored record by record on the same evaluation records, and Tango's one-sided score
test of the paired difference (:func:`~finmlsec.metrics.paired_margin_p`) rejects "at most 5
points above" at :data:`ALPHA`. A point estimate above the margin that the test cannot separate
from it is reported as such, and counted stopped.

:func:`genuine_clients` replays held-out records through many keys at a steady rate and counts
the clients the gateway refuses or flags.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.attacks.base import Attack, AttackData
from finmlsec.errors import CapabilityError, TargetError
from finmlsec.targets.oracle import Access, Oracle
from finmlsec.targets.remote import RemoteConfig, RemoteTarget, RequestMapping, ResponseMapping

MARGIN = 0.05
ALPHA = 0.05  # the significance at which an attack is declared not stopped


class LoopbackGateway:
    """An ASGI app served by uvicorn on 127.0.0.1 (a free port) in a daemon thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="error", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="redteam-gateway",
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/predict"

    def __enter__(self) -> LoopbackGateway:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise TargetError("the gateway under test did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class _Blocked(Exception):
    pass


class _Screened(Exception):
    pass


class GatewayTarget(RemoteTarget):
    """The gateway's ``/v1/predict`` as one API key sees it. Answers probabilities (one-hot
    labels when the policy returns labels only); records refused by the input screen, and every
    record after the key is blocked, are answered by ``fallback`` (the attacker's own copy)."""

    def __init__(self, url: str, token: str, classes: Any, *, fallback: Any,
                 batch_size: int = 100, max_wait: float = 2.0) -> None:
        cfg = RemoteConfig(url=url, headers={"Authorization": f"Bearer {token}"},
                           request=RequestMapping(wrap="records", record="dict"),
                           response=ResponseMapping(output="proba", path="probabilities"),
                           batch_size=batch_size, retries=0, timeout=60)
        super().__init__(cfg, classes=list(classes))
        self.fallback = fallback
        self.max_wait = max_wait
        self.rows_sent = 0
        self.rows_answered = 0
        self.rows_screened = 0
        self.blocked_after: int | None = None  # records answered before the block
        self.blocked_by = ""

    def _post(self, body: Any) -> Any:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.config.timeout, headers=self._headers())
        while True:
            self.requests_sent += 1
            resp = self._client.post(self.config.url, json=body)
            if resp.status_code == 200:
                return resp.json()
            text = resp.text[:300]
            if resp.status_code == 403:
                raise _Blocked("extraction detection")
            if resp.status_code == 429:
                after = float(resp.headers.get("retry-after", "1") or 1)
                if after > self.max_wait:
                    raise _Blocked("budget")
                time.sleep(after)
                continue
            if resp.status_code == 422 and "out of distribution" in text:
                raise _Screened(text)
            raise TargetError(f"the gateway answered HTTP {resp.status_code}: {text!r}")

    def _ask(self, X: pd.DataFrame) -> np.ndarray:
        reply = self._post({"records": self._records(X)})
        self.rows_answered += len(X)
        p = reply.get("probabilities")
        if p is None:  # labels only
            idx = [list(map(str, reply["classes"])).index(str(lab)) for lab in reply["labels"]]
            return np.eye(len(self.classes_))[idx]
        return np.asarray(p, dtype=float)

    def _guess(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.fallback.predict_proba(X), dtype=float)

    def predict_proba(self, X: Any) -> np.ndarray:
        X = X.reset_index(drop=True)
        out = np.empty((len(X), len(self.classes_)))
        for s in range(0, len(X), self.config.batch_size):
            chunk = X.iloc[s:s + self.config.batch_size]
            if self.blocked_after is not None:
                out[s:s + len(chunk)] = self._guess(chunk)
                continue
            self.rows_sent += len(chunk)
            try:
                out[s:s + len(chunk)] = self._ask(chunk)
            except _Screened:  # resend one by one; the refused ones stay unanswered
                for i in range(len(chunk)):
                    one = chunk.iloc[i:i + 1]
                    try:
                        out[s + i] = (self._guess(one) if self.blocked_after is not None
                                      else self._ask(one))
                    except _Screened:
                        self.rows_screened += 1
                        out[s + i] = self._guess(one)
                    except _Blocked as exc:
                        self._block(str(exc))
                        out[s + i] = self._guess(one)
            except _Blocked as exc:
                self._block(str(exc))
                out[s:s + len(chunk)] = self._guess(chunk)
        return out

    def _block(self, why: str) -> None:
        self.blocked_after, self.blocked_by = self.rows_answered, why

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class GatewayOracle(Oracle):
    """An oracle whose queries go to the gateway (``remote``) while ``target`` (the model itself)
    serves the evaluator's measures only, as in any attack run."""

    def __init__(self, target: Any, remote: GatewayTarget, *, access: str = "proba",
                 decimals: int = 2, budget: int | None = None) -> None:
        super().__init__(target, access=access, decimals=decimals, budget=budget)
        self.remote = remote

    def predict(self, X: Any) -> np.ndarray:
        self._charge("predict", X)
        # the decisions on the answered scores: at the bank's cut-off where the spec gives one
        return self.decide(self.remote.predict_proba(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.access == Access.LABEL:
            raise CapabilityError("this oracle gives labels only (access='label')")
        self._charge("predict_proba", X)
        return self.remote.predict_proba(X)


@dataclass
class Scenario:
    """One served model and what the attacker and the evaluator know of it."""

    name: str
    app_factory: Callable[[], Any]  # builds the gateway app (a fresh database each time)
    target: Any  # the model itself (evaluator side)
    data: AttackData  # schema, public records (population), model_factory, test
    access: str = "proba"  # what the served output looks like to the attacker
    decimals: int = 2
    holdout: Any = None  # held-out records genuine clients send (default: data.test.X)

    @property
    def genuine_records(self) -> pd.DataFrame:
        if self.holdout is not None:
            return self.holdout
        assert self.data.test is not None
        return self.data.test.X


@dataclass
class AttackOutcome:
    scenario: str
    attack: str
    fidelity: float
    baseline: float
    rows_sent: int
    rows_answered: int
    rows_screened: int
    blocked_after: int | None
    blocked_by: str
    seconds: float
    error: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    n_eval: int = 0  # records the fidelity is measured on
    #: evaluation records only the attack's copy answers like the model (b), only the baseline
    #: copy (c); None when the attack did not report them (no paired test then)
    only_copy: int | None = None
    only_baseline: int | None = None

    @property
    def p_value(self) -> float:
        """One-sided p-value of "fidelity <= baseline + MARGIN" (Tango's paired score test on
        the evaluation records); without the paired counts, 1.0 at or below the margin and 0.0
        above it (the point estimate alone)."""
        from finmlsec.metrics import paired_margin_p

        if self.only_copy is None or self.only_baseline is None or self.n_eval <= 0:
            return 1.0 if self.fidelity <= self.baseline + MARGIN else 0.0
        return paired_margin_p(self.only_copy, self.only_baseline, self.n_eval, MARGIN)

    @property
    def lift_lower(self) -> float:
        """The one-sided 95% lower bound of fidelity minus baseline (nan without the paired
        counts): the attack is not stopped exactly when it exceeds :data:`MARGIN`."""
        from finmlsec.metrics import paired_difference_lower

        if self.only_copy is None or self.only_baseline is None or self.n_eval <= 0:
            return float("nan")
        return paired_difference_lower(self.only_copy, self.only_baseline, self.n_eval, ALPHA)

    @property
    def stopped(self) -> bool:
        """No error, and the fidelity not shown to exceed the baseline by more than
        :data:`MARGIN` (``p_value`` at or above :data:`ALPHA`)."""
        return not self.error and (self.fidelity <= self.baseline + MARGIN
                                   or self.p_value >= ALPHA)

    @property
    def verdict(self) -> str:
        """``yes``; ``yes (n.s.)`` when the point estimate is above the margin but not
        significantly; ``NO`` when measured above it; ``ERROR``."""
        if self.error:
            return "ERROR"
        if not self.stopped:
            return "NO"
        return "yes" if self.fidelity <= self.baseline + MARGIN else "yes (n.s.)"

    @property
    def interval(self) -> tuple[float, float]:
        """Wilson 95% interval of the fidelity (a share of ``n_eval`` records): on the small
        balanced sets of rare decisions (90 records on market anomaly) it spans about 20
        points, wider than the 5-point margin; the verdict rests on the paired test
        (:attr:`p_value`), which compares both copies on the same records."""
        return wilson(self.fidelity, self.n_eval)


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share ``p`` of ``n`` trials ((nan, nan) for none)."""
    if n <= 0 or p != p:
        return float("nan"), float("nan")
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


class CutoffOracle(Oracle):
    """The model itself answers the first ``answers`` queries and the attacker's own copy
    (``fallback``) every later one: the attack as if blocked after exactly that many answers,
    without the gateway (no screen, no rounding beyond the oracle's). A control for the harness:
    it shows how a blocked attack's final fidelity depends on the answers it got."""

    def __init__(self, target: Any, fallback: Any, answers: int, **kw: Any) -> None:
        super().__init__(target, **kw)
        self.fallback = fallback
        self.answers = answers
        self.given = 0

    def _answers(self, X: Any, method: str) -> np.ndarray:
        self._charge(method, X)
        X = X.reset_index(drop=True) if isinstance(X, pd.DataFrame) else X
        real = max(0, min(len(X), self.answers - self.given))
        self.given += len(X)
        parts = []
        if real:
            parts.append(np.asarray(self.target.predict_proba(X[:real]), dtype=float))
        if real < len(X):
            parts.append(np.asarray(self.fallback.predict_proba(X[real:]), dtype=float))
        return np.vstack(parts)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.access == Access.LABEL:
            raise CapabilityError("this oracle gives labels only (access='label')")
        p = self._answers(X, "predict_proba")
        return np.round(p, self.decimals) if self.access == Access.ROUNDED else p

    def predict(self, X: Any) -> np.ndarray:
        return self.decide(self._answers(X, "predict"))


def cutoff_fidelity(sc: Scenario, attack: Attack, budget: int, fallback: Any,
                    answers: int) -> float:
    """The fidelity ``attack`` reaches when the model answers its first ``answers`` queries and
    its own copy the rest (:class:`CutoffOracle`)."""
    oracle = CutoffOracle(sc.target, fallback, answers, access=sc.access,
                          decimals=sc.decimals, budget=budget)
    r = attack.run(oracle, sc.data)
    return float(r.metrics.get("fidelity_test", float("nan")))


def public_copy(sc: Scenario) -> Any:
    """The attacker's copy trained on its public records only (the no-query baseline)."""
    from finmlsec.attacks.extraction_common import truth_labels

    data = sc.data
    assert data.model_factory is not None and data.population is not None
    assert data.population.y is not None
    y = truth_labels(np.asarray(sc.target.classes_), np.asarray(data.population.y))
    return data.model_factory().fit(data.population.X, y)


def attack_gateway(sc: Scenario, attacks: list[tuple[str, Attack, int]], *, fallback: Any,
                   batch_size: int = 10) -> list[AttackOutcome]:
    """Serve ``sc`` once and run every attack ``(label, attack, query budget)`` with a key of its
    own (a separate attacker) sending ``batch_size`` records per request."""
    app = sc.app_factory()
    gw = app.state.gateway
    out: list[AttackOutcome] = []
    with LoopbackGateway(app) as server:
        for i, (label, attack, budget) in enumerate(attacks):
            key = gw.db.create_key(org=f"attacker{i}", role="system_user").token
            remote = GatewayTarget(server.url, key, sc.target.classes_, fallback=fallback,
                                   batch_size=batch_size)
            oracle = GatewayOracle(sc.target, remote, access=sc.access, decimals=sc.decimals,
                                   budget=budget)
            t0 = time.perf_counter()
            error, fid, base = "", float("nan"), float("nan")
            notes: tuple[str, ...] = ()
            b: int | None = None
            c: int | None = None
            try:
                r = attack.run(oracle, sc.data)
                fid = float(r.metrics.get("fidelity_test", float("nan")))
                base = float(r.metrics.get("fidelity_baseline", float("nan")))
                if "fidelity_lift_b" in r.metrics and "fidelity_lift_c" in r.metrics:
                    b, c = int(r.metrics["fidelity_lift_b"]), int(r.metrics["fidelity_lift_c"])
                notes = r.notes
            except (TargetError, CapabilityError) as exc:
                error = str(exc)[:200]
            finally:
                remote.close()
            out.append(AttackOutcome(sc.name, label, fid, base, remote.rows_sent,
                                     remote.rows_answered, remote.rows_screened,
                                     remote.blocked_after, remote.blocked_by,
                                     time.perf_counter() - t0, error, tuple(notes),
                                     n_eval=0 if sc.data.test is None else len(sc.data.test),
                                     only_copy=b, only_baseline=c))
    gw.close()
    return out


@dataclass
class GenuineOutcome:
    scenario: str
    clients: int
    rows_per_client: int
    blocked: int  # clients refused with 403 (flagged as extraction)
    flagged: int  # clients the audit log records as flagged
    screened_rows: int  # genuine records the input screen refused
    rows: int
    rate_limited: int  # 429 answers


def genuine_clients(sc: Scenario, records: pd.DataFrame, *, clients: int = 60,
                    rows_per_client: int = 150, per_request: int = 1, seed: int = 0,
                    pace: float = 0.0) -> GenuineOutcome:
    """``clients`` keys, each replaying ``rows_per_client`` of ``records`` (drawn in its own
    random order) ``per_request`` at a time, interleaved, ``pace`` seconds between rounds;
    a record the screen refuses is not resent, a refused client stops."""
    import httpx

    from finmlsec.gateway.audit import read_entries

    app = sc.app_factory()
    gw = app.state.gateway
    tokens = [gw.db.create_key(org="bank", role="system_user").token for _ in range(clients)]
    rows = [{k: _plain(v) for k, v in r.items()} for r in records.to_dict(orient="records")]
    streams = []
    for k in range(clients):
        order = np.random.default_rng(seed + 1000 + k).permutation(len(rows))
        take = [rows[i] for i in np.resize(order, rows_per_client)]
        streams.append(take)
    blocked, screened, sent, limited = set(), 0, 0, 0
    with LoopbackGateway(app) as server, httpx.Client(timeout=60) as c:
        for s in range(0, rows_per_client, per_request):
            for k, token in enumerate(tokens):
                if k in blocked:
                    continue
                body = {"records": streams[k][s:s + per_request]}
                while True:
                    r = c.post(server.url, json=body, headers={"Authorization": f"Bearer {token}"})
                    if r.status_code != 429:
                        break
                    limited += 1
                    time.sleep(float(r.headers.get("retry-after", "1") or 1))
                sent += len(body["records"])
                if r.status_code == 403:
                    blocked.add(k)
                elif r.status_code == 422:
                    screened += len(body["records"])
                elif r.status_code != 200:
                    raise TargetError(f"genuine client got HTTP {r.status_code}: {r.text[:200]}")
            if pace:
                time.sleep(pace)
    flagged = {e["key_id"] for e in read_entries(gw.db, limit=1_000_000)
               if e["action"] == "extraction.flagged"}
    gw.close()
    return GenuineOutcome(sc.name, clients, rows_per_client, len(blocked), len(flagged),
                          screened, sent, limited)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


# -- scenarios and attacks ---------------------------------------------------------------------
def output_access(policy: Any) -> tuple[str, int]:
    """The oracle access level that matches what the policy's answers show."""
    mode = policy.output.mode
    if mode in ("round", "truncate"):
        return "rounded", int(policy.output.decimals)
    if mode == "label_only":
        return "label", 2
    return "proba", 2


def _app_factory(policy: Any, workdir: Any, **kwargs: Any) -> Callable[[], Any]:
    import itertools
    from pathlib import Path

    from finmlsec.gateway.app import create_app
    from finmlsec.gateway.settings import Settings

    counter = itertools.count()
    Path(workdir).mkdir(parents=True, exist_ok=True)

    def make() -> Any:
        db = Path(workdir) / f"gateway-{next(counter)}-{time.time_ns()}.db"
        return create_app(Settings(db_url=f"sqlite:///{db}", policy=policy), **kwargs)

    return make


def _nasdaq_days() -> Any:
    from finmlsec.attacks.base import Labeled
    from finmlsec.datasets import load

    ds = load("market_anomalies", index="nasdaq")
    return Labeled(ds.X.reset_index(drop=True), np.asarray(ds.y))


#: Real records beyond a use case's splits that the evaluator adds to the pool its balanced set
#: is drawn from, where the splits hold too few of the rarer decision: the market-anomaly model
#: (trained on S&P 500 days) flags 24 days of its test and training splits, a balanced set of 48
#: whose Wilson interval spans 25 points; the NASDAQ Composite days of the same 20 years, with
#: the same scale-free features, add 21 more it flags (90 records). The attacker holds none of
#: them (its public records are the population split).
EXTRA_EVALUATION: dict[str, Callable[[], Any]] = {"market-anomaly": _nasdaq_days}


def usecase_scenario(usecase: str, model: str, workdir: Any, *, policy: Any = None,
                     seed: int = 0, balanced: bool = True, extra: bool = True) -> Scenario:
    """A use case built by ``finmlsec demo build`` (into ``workdir/usecase``, reused when there),
    served from the spec of ``model`` with ``policy`` (default: what ``finmlsec serve`` derives
    from the spec when no ``--policy`` is given). The attacker's public records are the use
    case's population split; fidelity is measured on its test split (``balanced``: on
    :func:`balanced_test` of the test and training splits, and with ``extra`` the use case's
    :data:`EXTRA_EVALUATION` records, when the model's decisions are imbalanced)."""
    from pathlib import Path

    from finmlsec.attacks.base import Labeled
    from finmlsec.gateway.defaults import spec_policy
    from finmlsec.scenario import load_scenario
    from finmlsec.usecases import build

    out = Path(workdir) / usecase
    if not (out / "spec.yaml").exists():
        build(usecase, out, seed=seed)
    spec = out / f"spec_{model}.yaml"
    spec = spec if spec.exists() else out / "spec.yaml"
    loaded = load_scenario(spec)
    if policy is None:
        policy = spec_policy(str(spec))[0]
    access, decimals = output_access(policy)
    data = loaded.attack_data(standard=False)
    name = f"{usecase}/{model}"
    if balanced and data.test is not None:
        # the evaluator's records (test and training splits; the attacker holds neither)
        pool = data.test
        if data.train is not None:
            from finmlsec.arrays import concat_rows

            pool = Labeled(concat_rows(data.test.X, data.train.X).reset_index(drop=True),
                           np.concatenate([np.asarray(data.test.y), np.asarray(data.train.y)]))
        if extra and usecase in EXTRA_EVALUATION:
            from finmlsec.arrays import concat_rows

            more = EXTRA_EVALUATION[usecase]()
            pool = Labeled(concat_rows(pool.X, more.X[list(pool.X.columns)])
                           .reset_index(drop=True),
                           np.concatenate([np.asarray(pool.y), np.asarray(more.y)]))
        test = balanced_test(loaded.target, pool, seed)
        if test is not pool:
            data, name = replace(data, test=test), name + " (bal.)"
    return Scenario(name, _app_factory(policy, out / "gateway-dbs", spec=spec),
                    loaded.target, data, access, decimals,
                    holdout=None if loaded.test is None else loaded.test.X)


def balanced_test(target: Any, test: Any, seed: int = 0, minority: float = 0.2) -> Any:
    """Where the model's decisions are imbalanced (the rarer one under ``minority`` of the
    test records: fraud, anomalies), every record of the rarer decision and as many others
    drawn at random: fidelity then measures agreement on both decisions (a constant copy scores
    0.5 instead of 0.998). Otherwise ``test`` itself."""
    from finmlsec.attacks.base import Labeled

    pred = np.asarray(target.predict(test.X)).astype(str)
    values, counts = np.unique(pred, return_counts=True)
    if len(values) != 2 or counts.min() >= minority * len(pred):
        return test
    rare = np.flatnonzero(pred == values[np.argmin(counts)])
    rest = np.flatnonzero(pred != values[np.argmin(counts)])
    keep = np.sort(np.concatenate([rare, np.random.default_rng(seed).choice(
        rest, len(rare), replace=False)]))
    X = test.X.iloc[keep].reset_index(drop=True)
    return Labeled(X, None if test.y is None else np.asarray(test.y)[keep])


def demo_scenario(*, policy: Any = None, seed: int = 0, workdir: Any) -> Scenario:
    """The built-in credit-scoring model (``finmlsec serve demo``); the attacker holds half of
    the held-out applicants as public records, fidelity is measured on the other half."""
    from sklearn.base import clone

    from finmlsec.attacks.base import Labeled
    from finmlsec.gateway.defaults import derive_policy
    from finmlsec.gateway.demo import credit_scoring_model

    m = credit_scoring_model(seed=seed)
    if policy is None:
        policy = derive_policy(None, has_reference=True)[0]
    half = len(m.heldout) // 2
    y = np.asarray(m.heldout_labels)
    est = m.target.estimator
    data = AttackData(schema=m.schema, population=Labeled(m.heldout.iloc[:half], y[:half]),
                      test=Labeled(m.heldout.iloc[half:], y[half:]),
                      model_factory=lambda: clone(est))
    access, decimals = output_access(policy)
    app = _app_factory(policy, workdir, target=m.target, schema=m.schema, reference=m.train)
    return Scenario("credit (demo)", app, m.target, data, access, decimals)


def standard_attacks(sc: Scenario, *, learning_budget: int = 1000, tree_budget: int = 1000,
                     seed: int = 0) -> list[tuple[str, Attack, int]]:
    """The repository's extraction attacks, as a remote attacker would run them, with their
    query budgets."""
    from finmlsec.attacks.extraction_common import Encoding, tabular_schema
    from finmlsec.attacks.extraction_equation import EquationSolving
    from finmlsec.attacks.extraction_learning import LearningExtraction
    from finmlsec.attacks.extraction_tree import TreePathFinding

    d = Encoding.from_schema(tabular_schema(sc.data.schema, "redteam", sc.data.population)).dim
    out: list[tuple[str, Attack, int]] = []
    if sc.access != "label":
        out += [(f"equation solving, d+1={d + 1}", EquationSolving(n_uniform=0, seed=seed),
                 d + 1),
                (f"equation solving, {10 * (d + 1)}",
                 EquationSolving(extra_queries=9 * (d + 1), n_uniform=0, seed=seed),
                 10 * (d + 1))]
    out += [(f"learning, {learning_budget}",
             LearningExtraction(budget=learning_budget, n_uniform=0, seed=seed),
             learning_budget),
            (f"learning labels only, {learning_budget}",
             LearningExtraction(budget=learning_budget, use_proba=False, n_uniform=0,
                                seed=seed), learning_budget)]
    if sc.access != "label" and tree_budget:
        out.append((f"tree path-finding, {tree_budget}",
                    TreePathFinding(decimals=min(sc.decimals, 10), max_leaves=100, n_uniform=0,
                                    seed=seed), tree_budget))
    return out
