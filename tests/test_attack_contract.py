"""The contract every registered attack keeps, run over ``ATTACKS`` (a new attack gets it free).

Subclasses :class:`Attack` with keyword-only parameters; declares its metadata (needs, input kinds,
cost and strength ranks distinct among the attacks for the same threat, capabilities that match
its methods); constructs with defaults; parameters serialise to JSON and back; catalogue ids
exist; results are deterministic under a seed; target and data are left unchanged; the query
budget holds and the reported query count is the oracle's; an oracle or data lacking a declared
need is refused with CapabilityError before the first query.

Fast setup: an attack class may define ``contract_fixture()`` (a classmethod) returning a dict
with any of ``params`` (small keyword parameters), ``target`` (a fitted model or Target),
``access``, ``input_kind``, ``data`` (AttackData). Otherwise the suite uses the fixtures below
(German credit, a logistic regression; text, image and HTTP fixtures for the attacks whose
``input_kinds`` or ``needs`` ask for them) and the small parameters in ``FAST``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
from dataclasses import replace
from functools import cache
from typing import Any

import joblib
import numpy as np
import pytest

from finmlsec.attacks import (
    ATTACKS,
    INPUT_KINDS,
    Attack,
    AttackData,
    AttackResult,
    Labeled,
    params_of,
)
from finmlsec.attacks.base import DATA_NEEDS, ORACLE_NEEDS
from finmlsec.datasets import load
from finmlsec.errors import CapabilityError, FinmlsecError
from finmlsec.targets.oracle import Oracle

THREATS = {"infer_training_data", "generate_malicious_model", "dos_model_generator",
           "infer_model", "induce_false_prediction", "dos_model_operator",
           "dos_training_data_provider"}
VIA = {"training_data", "model_io", "false_prediction_data"}

FAST: dict[str, dict[str, Any]] = {
    "membership.lira": {"n_reference": 4},
    "membership.rmia": {"n_reference": 4, "n_population": 100},
    "membership.shadow": {"n_shadow": 2},
    "membership.metric": {"reference": "per_example", "n_reference": 2},
    "membership.label_only": {"n_perturb": 4},
    "inversion.attribute": {"attribute": "personal_status_sex", "max_victims": 10},
    "extraction.equation": {"n_uniform": 200},
    "extraction.tree_path": {"n_uniform": 200},
    "extraction.learning": {"budget": 120, "rounds": 2, "pool": 400, "n_uniform": 200},
    "evasion.image": {"max_iter": 32},
    "dos.load": {"rates": (10.0,), "step_seconds": 0.2, "timeout": 0.3},
}
TIME_LIKE = re.compile(r"second|latency|throughput|time|rps|elapsed|_ms$|_p\d\d", re.I)


@cache
def _credit() -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    from finmlsec.schema import preprocessor

    ds = load("german_credit")
    schema = ds.schema
    assert schema is not None

    def factory(est: Any) -> Any:
        def make() -> Any:
            from sklearn.base import clone

            return Pipeline([("prep", preprocessor(schema)), ("model", clone(est))])
        return make

    perm = np.random.default_rng(0).permutation(len(ds))
    tr, pop, te = perm[:150], perm[150:250], perm[250:350]
    sub = ds.subset
    train, popu, test = sub(tr), sub(pop), sub(te)
    lr_factory = factory(LogisticRegression(max_iter=1000))
    lr = lr_factory().fit(train.X, train.y)
    tree = factory(DecisionTreeClassifier(max_leaf_nodes=3, min_samples_leaf=10,
                                          random_state=0))().fit(train.X, train.y)
    pool_X = __import__("pandas").concat([train.X, popu.X], ignore_index=True)
    data = AttackData(
        schema=schema,
        population=Labeled(pool_X, np.concatenate([train.y, popu.y])),
        model_factory=lr_factory,
        train=Labeled(train.X, train.y),
        victims=Labeled(test.X.iloc[:10].reset_index(drop=True), test.y[:10]),
        members=Labeled(train.X.iloc[:40].reset_index(drop=True), train.y[:40]),
        nonmembers=Labeled(popu.X.iloc[:40].reset_index(drop=True), popu.y[:40]),
        test=Labeled(test.X, test.y),
    )
    return {"lr": lr, "tree": tree, "data": data}


@cache
def _text() -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    ds = load("bank_intents")
    train, test = ds.split(0.3, seed=0)
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=300)).fit(train.X,
                                                                                  train.y)
    return {"target": model, "input_kind": "text", "access": "proba",
            "data": AttackData(victims=Labeled(list(test.X[:8]), np.asarray(test.y[:8])))}


@cache
def _image() -> dict[str, Any]:
    import torch

    from finmlsec.targets.torch import TorchTarget

    ds = load("ocr_digits")
    X = np.asarray(ds.X, dtype=np.float32)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    xt, yt = torch.from_numpy(X[:600]), torch.from_numpy(ds.y[:600].astype(np.int64))
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    target = TorchTarget(net, classes=list(range(10)))
    return {"target": target, "input_kind": "image", "access": "white_box",
            "data": AttackData(victims=Labeled(X[600:606], ds.y[600:606]))}


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/predict"


def case(name: str) -> dict[str, Any]:
    """Everything needed to run attack ``name`` quickly: params, target, access, data."""
    cls = ATTACKS.get(name)
    custom = getattr(cls, "contract_fixture", None)
    base: dict[str, Any]
    if tuple(cls.input_kinds) == ("text",):
        base = dict(_text())
    elif tuple(cls.input_kinds) == ("image",) or "gradient" in cls.needs:
        base = dict(_image())
        if "gradient" not in cls.needs:
            base["access"] = "proba"
    elif "endpoint" in cls.needs:
        base = {"target": None, "access": None,
                "data": AttackData(endpoint=_closed_port_url())}
    else:
        c = _credit()
        needs = set(cls.needs)
        base = {"target": c["tree"] if name == "extraction.tree_path" else c["lr"],
                "input_kind": "tabular", "data": c["data"],
                "access": "proba" if needs & {"proba", "rounded"} else "label"}
    base["params"] = dict(FAST.get(name, {}))
    if callable(custom):
        base.update(custom())
    return base


def oracle_for(c: dict[str, Any], budget: int | None = None) -> Oracle | None:
    if c.get("target") is None:
        return None
    return Oracle(c["target"], access=c["access"], budget=budget,
                  input_kind=c.get("input_kind", "tabular"))


def comparable(r: AttackResult) -> dict[str, Any]:
    d = r.to_dict()
    d.pop("seconds")
    d["metrics"] = {k: v for k, v in d["metrics"].items() if not TIME_LIKE.search(k)}
    if any(TIME_LIKE.search(k) for k in r.metrics):
        d.pop("success")  # timing-driven attacks: compare what does not depend on the clock
        d.pop("curves")
    return d


def fingerprint(c: dict[str, Any]) -> tuple[str, str]:
    target = c.get("target")
    t = joblib.hash(getattr(target, "estimator", target)) if target is not None else ""
    data = c["data"]
    fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)
              if f.name != "extra" and not callable(getattr(data, f.name))}
    return t, joblib.hash(fields)


NAMES = ATTACKS.names()


def test_registry_covers_the_contracted_names() -> None:
    mine = {"membership.metric", "membership.shadow", "membership.lira",
            "membership.label_only", "inversion.attribute", "extraction.equation",
            "extraction.tree_path", "extraction.learning"}
    assert mine <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_declaration(name: str) -> None:
    cls = ATTACKS.get(name)
    assert issubclass(cls, Attack) and "run" not in vars(cls), \
        "an attack subclasses Attack and implements _attack, not run"
    assert all(f.kw_only for f in dataclasses.fields(cls)), "parameters are keyword-only"
    attack = cls()  # constructs with defaults, no work
    assert cls.name == name
    assert cls.threat in THREATS and cls.via in VIA
    assert set(cls.needs) <= ORACLE_NEEDS | DATA_NEEDS, set(cls.needs) - ORACLE_NEEDS - DATA_NEEDS
    assert isinstance(cls.summary, str) and cls.summary.strip()
    assert isinstance(cls.atlas, tuple) and isinstance(cls.owasp, tuple)
    assert all(a.startswith("AML.") for a in cls.atlas)
    assert all(re.fullmatch(r"ML\d\d", o) for o in cls.owasp)
    assert cls.__doc__ and cls.__doc__.strip()
    assert isinstance(cls.input_kinds, tuple) and cls.input_kinds
    assert set(cls.input_kinds) <= set(INPUT_KINDS), cls.input_kinds
    for rank in (cls.cost_rank, cls.strength_rank):
        assert isinstance(rank, int) and not isinstance(rank, bool) and rank >= 0
    assert cls.generates is callable(getattr(cls, "generate", None))
    assert isinstance(cls.retrains_victim, bool)
    if cls.retrains_victim:
        assert "model_factory" in cls.needs, "an attack that retrains the victim needs its factory"
    assert isinstance(cls.reads_training_data, bool)
    if cls.reads_training_data:
        assert "train" in cls.needs and cls.via == "training_data", \
            "an attack on the shared training data needs them and goes through them"
    assert attack.required() >= cls.needs
    # the scan's time limits count the fits of the model an attack makes (scan.plan.unit_limit)
    fits = attack.fits()
    assert isinstance(fits, float) and fits >= 0
    if "model_factory" in attack.required():
        assert fits > 0, "an attack that trains the model like the deployed one declares fits()"
    params = params_of(attack)
    text = json.dumps(params)
    again = cls(**{k: tuple(v) if isinstance(getattr(attack, k), tuple) else v
                   for k, v in json.loads(text).items()})
    assert params_of(again) == params


@pytest.mark.parametrize("rank", ["cost_rank", "strength_rank"])
def test_ranks_order_the_attacks_of_each_threat_without_ties(rank: str) -> None:
    groups: dict[tuple[str, str], dict[int, str]] = {}
    for name in NAMES:
        cls = ATTACKS.get(name)
        seen = groups.setdefault((cls.threat, cls.via), {})
        value = getattr(cls, rank)
        assert value not in seen, (f"{name} and {seen.get(value)} share {rank} {value} for "
                                   f"{cls.threat}@{cls.via}: the scan's order would be by name")
        seen[value] = name


def test_catalogue_knows_every_threat_and_via() -> None:
    from finmlsec.threatmodel.catalogue import load_catalogue

    cat = load_catalogue()
    for name in NAMES:
        cls = ATTACKS.get(name)
        assert cls.threat in cat.attacks, name
        assert cls.via in cat.data, name


@cache
def first_run(name: str) -> tuple[AttackResult, int | None]:
    """One run of ``name`` on a fresh oracle (shared by the tests below to keep them fast)."""
    c = case(name)
    oracle = oracle_for(c)
    result = ATTACKS.get(name)(**c["params"]).run(oracle, c["data"])
    return result, None if oracle is None else oracle.queries_used


@pytest.mark.parametrize("name", NAMES)
def test_run_is_deterministic_leaves_inputs_and_counts_queries(name: str) -> None:
    c = case(name)
    before = fingerprint(c)
    attack = ATTACKS.get(name)(**c["params"])
    r1, used1 = first_run(name)
    o2 = oracle_for(c)
    r2 = attack.run(o2, c["data"])
    assert isinstance(r1, AttackResult)
    assert r1.attack == name and r1.threat == attack.threat and r1.via == attack.via
    assert 0.0 <= r1.success <= 1.0
    json.loads(r1.to_json())
    if o2 is not None:
        assert r1.queries == used1 and r2.queries == o2.queries_used, \
            "reported queries must be the oracle's count"
    assert comparable(r1) == comparable(r2)
    assert fingerprint(c) == before, "the attack changed the target or the data"


@pytest.mark.parametrize("name", NAMES)
def test_budget_is_respected(name: str) -> None:
    c = case(name)
    if c.get("target") is None:
        pytest.skip(f"{name} queries no oracle (it has no query budget to respect)")
    _, used = first_run(name)
    assert used is not None
    budget = max(used // 2, 1)
    oracle = oracle_for(c, budget=budget)
    assert oracle is not None
    try:
        r = ATTACKS.get(name)(**c["params"]).run(oracle, c["data"])
    except FinmlsecError:
        pass  # refusing cleanly is allowed; exceeding the budget is not
    else:
        assert r.queries <= budget and r.queries == oracle.queries_used
    assert oracle.queries_used <= budget


@pytest.mark.parametrize("name", NAMES)
def test_refuses_what_it_lacks_before_the_first_query(name: str) -> None:
    cls = ATTACKS.get(name)
    c = case(name)
    needs = set(cls.needs)
    if needs & {"proba", "gradient", "white_box", "rounded"} and c.get("target") is not None:
        weaker = "label" if "proba" in needs or "rounded" in needs else "proba"
        oracle = Oracle(c["target"], access=weaker, input_kind=c.get("input_kind", "tabular"))
        with pytest.raises(CapabilityError):
            cls(**c["params"]).run(oracle, c["data"])
        assert oracle.queries_used == 0
    data_needs = sorted(needs & DATA_NEEDS)
    assert data_needs or needs & ORACLE_NEEDS, f"{name} declares no needs at all"
    for need in data_needs:
        oracle = oracle_for(c)
        with pytest.raises(CapabilityError, match=need):
            cls(**c["params"]).run(oracle, replace(c["data"], **{need: None}))
        if oracle is not None:
            assert oracle.queries_used == 0
