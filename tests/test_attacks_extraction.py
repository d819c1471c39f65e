"""Model extraction on German credit: exact equation solving, path-finding, adaptive learning."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.attacks.extraction_common import Encoding, sample_records
from finmlsec.attacks.extraction_equation import design_queries
from finmlsec.datasets import load
from finmlsec.errors import CapabilityError, ConfigError
from finmlsec.schema import Feature, FeatureSchema, preprocessor
from finmlsec.targets.oracle import Oracle


def _pipe(schema: FeatureSchema, est: Any) -> Pipeline:
    return Pipeline([("prep", preprocessor(schema)), ("model", est)])


@pytest.fixture(scope="module")
def credit() -> dict[str, Any]:
    ds = load("german_credit")
    perm = np.random.default_rng(0).permutation(len(ds))
    tr, te = perm[:500], perm[500:]
    X, y = ds.X, np.asarray(ds.y)
    Xtr, ytr = X.iloc[tr].reset_index(drop=True), y[tr]
    test = Labeled(X.iloc[te].reset_index(drop=True), y[te])
    return {
        "schema": ds.schema, "test": test, "public": Labeled(test.X.iloc[:100], None),
        "lr": _pipe(ds.schema, LogisticRegression(max_iter=2000)).fit(Xtr, ytr),
        "tree": _pipe(ds.schema, DecisionTreeClassifier(max_leaf_nodes=5, min_samples_leaf=20,
                                                        random_state=0)).fit(Xtr, ytr),
    }


def test_design_queries_are_valid_raw_records_one_change_each(credit: dict) -> None:
    schema = credit["schema"]
    Q = design_queries(schema)
    enc = Encoding.from_schema(schema)
    assert len(Q) == enc.dim + 1 == 49
    assert schema.is_valid(Q).all()
    Z = enc.encode(Q)
    assert (np.abs(Z[1:] - Z[0]) > 0).sum(axis=1).tolist() == [1] * enc.dim
    assert np.linalg.matrix_rank(np.hstack([np.ones((len(Z), 1)), Z])) == enc.dim + 1


def test_logistic_regression_is_extracted_exactly_with_d_plus_one_queries(credit: dict) -> None:
    oracle = Oracle(credit["lr"], budget=49)
    r = ATTACKS.get("extraction.equation")(n_uniform=1000).run(
        oracle, AttackData(schema=credit["schema"], test=credit["test"]))
    assert r.queries == oracle.queries_used == 49
    assert r.metrics["fidelity_test"] == 1.0 and r.metrics["fidelity_uniform"] == 1.0
    assert r.metrics["max_proba_error"] < 1e-9
    assert r.metrics["stolen_accuracy"] == r.metrics["target_accuracy"]


def test_softmax_model_is_extracted_exactly() -> None:
    schema = FeatureSchema(features=(
        Feature(name="x", type="numeric", min=-3, max=3),
        Feature(name="n", type="integer", min=0, max=10),
        Feature(name="c", type="categorical", categories=("a", "b", "c", "d")),
    ))
    X = schema.sample_uniform(400, 1)
    y = np.digitize(X.x + 0.3 * X.n + (X.c == "b") * 2, [0.5, 2.5])
    model = _pipe(schema, LogisticRegression(max_iter=2000)).fit(X, y)
    r = ATTACKS.get("extraction.equation")(n_uniform=2000).run(
        Oracle(model), AttackData(schema=schema))
    assert r.queries == 6 and r.metrics["fidelity_uniform"] == 1.0
    assert r.metrics["max_proba_error"] < 1e-9


def test_rounded_outputs_weaken_exactness_but_not_the_labels(credit: dict) -> None:
    r = ATTACKS.get("extraction.equation")(extra_queries=60, n_uniform=500).run(
        Oracle(credit["lr"], access="rounded", decimals=2),
        AttackData(schema=credit["schema"], test=credit["test"]))
    assert r.queries == 109
    assert 1e-4 < r.metrics["max_proba_error"] < 0.2
    assert r.metrics["fidelity_test"] > 0.95


def test_equation_solving_under_a_smaller_budget_is_approximate_not_over_budget(
        credit: dict) -> None:
    oracle = Oracle(credit["lr"], budget=20)
    r = ATTACKS.get("extraction.equation")(n_uniform=200).run(
        oracle, AttackData(schema=credit["schema"], test=credit["test"]))
    assert oracle.queries_used == 20 and "approximate" in r.notes[0]


def test_tree_path_finding_copies_a_tree_exactly(credit: dict) -> None:
    tree = credit["tree"]
    oracle = Oracle(tree)
    r = ATTACKS.get("extraction.tree_path")(n_uniform=2000).run(
        oracle, AttackData(schema=credit["schema"], test=credit["test"]))
    assert r.metrics["fidelity_test"] == 1.0 and r.metrics["fidelity_uniform"] == 1.0
    assert r.metrics["leaves"] == tree[-1].get_n_leaves()
    assert r.queries == oracle.queries_used < 300
    curve = r.curves["leaves_vs_queries"]
    assert curve["leaves"][-1] == r.metrics["leaves"] and curve["queries"] == sorted(curve["queries"])


def test_tree_path_finding_stops_at_the_budget_with_a_partial_copy(credit: dict) -> None:
    oracle = Oracle(credit["tree"], budget=60)
    r = ATTACKS.get("extraction.tree_path")(n_uniform=200).run(
        oracle, AttackData(schema=credit["schema"], test=credit["test"]))
    assert oracle.queries_used <= 60 and "budget exhausted" in r.notes[0]
    assert r.metrics["fidelity_test"] < 1.0


def test_tree_path_finding_refuses_a_model_that_is_not_a_tree(credit: dict) -> None:
    # a logistic regression's output moves with every number field: every "leaf" is a point,
    # so the search stops after its probe leaves instead of running to max_leaves
    oracle = Oracle(credit["lr"])
    with pytest.raises(CapabilityError, match="not a decision tree"):
        ATTACKS.get("extraction.tree_path")(probe_leaves=4).run(
            oracle, AttackData(schema=credit["schema"], test=credit["test"]))
    assert 0 < oracle.queries_used < 400
    # with the check off, the same search runs on (here up to max_leaves)
    r = ATTACKS.get("extraction.tree_path")(probe_leaves=0, max_leaves=5, n_uniform=0).run(
        Oracle(credit["lr"]), AttackData(schema=credit["schema"], test=credit["test"]))
    assert r.metrics["leaves"] == 5 and "max_leaves=5" in r.notes[0]


def test_label_only_learning_copies_a_logistic_regression(credit: dict) -> None:
    oracle = Oracle(credit["lr"], access="label", budget=300)
    r = ATTACKS.get("extraction.learning")(budget=300, rounds=3, pool=1000, n_uniform=500,
                                           surrogate="logistic").run(
        oracle, AttackData(schema=credit["schema"], test=credit["test"],
                           population=credit["public"]))
    assert r.queries == oracle.queries_used == 300
    assert r.metrics["fidelity_test"] >= 0.93
    curve = r.curves["fidelity_vs_queries"]
    assert curve["queries"][-1] == 300 and len(curve["queries"]) == 4
    assert curve["fidelity"][-1] > curve["fidelity"][0] - 0.02
    assert "labels only" in r.notes


def test_query_by_committee_within_the_budget(credit: dict) -> None:
    oracle = Oracle(credit["lr"], access="label", budget=150)
    r = ATTACKS.get("extraction.learning")(budget=150, rounds=2, pool=500, committee=3,
                                           surrogate="logistic", n_uniform=0).run(
        oracle, AttackData(schema=credit["schema"], test=credit["test"],
                           population=credit["public"]))
    assert oracle.queries_used == r.queries == 150
    assert r.metrics["fidelity_test"] > 0.85


def test_sampled_queries_are_valid_records(credit: dict) -> None:
    schema = credit["schema"]
    for mode in ("mixed", "uniform", "marginal", "public", "blend"):
        Q = sample_records(schema, 300, np.random.default_rng(0), credit["public"].X, mode)
        assert len(Q) == 300 and schema.is_valid(Q).all(), mode
    with pytest.raises(ConfigError, match="'mode' parameter of sample_records"):
        sample_records(schema, 3, np.random.default_rng(0), None, "grid")


def test_needs_are_refused(credit: dict) -> None:
    with pytest.raises(CapabilityError, match="extraction.learning"):
        ATTACKS.get("extraction.equation")().run(Oracle(credit["lr"], access="label"),
                                                 AttackData(schema=credit["schema"]))
    with pytest.raises(CapabilityError, match="schema"):
        ATTACKS.get("extraction.tree_path")().run(Oracle(credit["tree"]), AttackData())
    text = FeatureSchema(features=(Feature(name="t", type="text"),))
    with pytest.raises(ConfigError, match="tabular records only"):
        ATTACKS.get("extraction.equation")().run(Oracle(credit["lr"]), AttackData(schema=text))
    with pytest.raises(ConfigError, match="'budget' parameter of LearningExtraction"):
        ATTACKS.get("extraction.learning")(budget=1).run(
            Oracle(credit["lr"]), AttackData(schema=credit["schema"]))
    assert isinstance(pd.DataFrame(), pd.DataFrame)


def test_a_pipeline_that_imputes_missing_cells_is_extracted_exactly(tmp_path) -> None:
    """Real files have missing cells: a logistic pipeline that imputes them (median, most
    frequent category) is still log-linear once a missing cell has an indicator of its own, so
    the copy answers records with missing cells exactly like the target (without the indicator
    it encoded them as NaN and got them wrong, and the scan read an exact theft as none)."""
    from finmlsec.scan.work import ScanContext, attack_data_for
    from finmlsec.scenario import load_scenario
    from messy_loans import build_messy_system

    sc = load_scenario(build_messy_system(tmp_path, n=800)["spec"])
    data = attack_data_for(sc, ScanContext(spec_path="unused"))
    assert data.test.X[["annual_income", "emp_length"]].isna().any().all()
    oracle = Oracle(sc.target, budget=5000)
    r = ATTACKS.get("extraction.equation")(n_uniform=200).run(oracle, data)
    enc = Encoding.from_schema(data.schema, missing=True)
    assert {"annual_income=<missing>", "emp_length=<missing>"} <= set(enc.columns)
    assert r.queries == enc.dim + 1
    assert r.metrics["fidelity_test"] == 1.0 and r.metrics["max_proba_error"] < 1e-6
    assert r.metrics["fidelity_lift"] == 1.0


def test_a_missing_category_is_solved_for_like_a_level() -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    schema = FeatureSchema(features=(
        Feature(name="x", type="numeric", min=0, max=10, nullable=True),
        Feature(name="home", type="categorical", categories=("own", "rent", "other"),
                nullable=True),
    ))
    X = schema.sample_uniform(300, 3)
    y = (X.x + 3 * (X.home == "rent") > 6).astype(int).to_numpy()
    X.loc[X.index[::9], "x"] = np.nan
    X["home"] = X["home"].astype(object)
    X.loc[X.index[::7], "home"] = np.nan
    pre = make_column_transformer(
        (SimpleImputer(strategy="median"), ["x"]),
        (make_pipeline(SimpleImputer(strategy="most_frequent"),
                       OneHotEncoder(handle_unknown="ignore")), ["home"]))
    model = make_pipeline(pre, LogisticRegression()).fit(X, y)
    test = Labeled(X.iloc[:120].reset_index(drop=True), y[:120])
    r = ATTACKS.get("extraction.equation")(n_uniform=200).run(
        Oracle(model), AttackData(schema=schema, test=test))
    assert r.queries == 6  # intercept, x, two levels, two missing indicators
    assert r.metrics["fidelity_test"] == 1.0 and r.metrics["max_proba_error"] < 1e-8


def test_equation_solving_says_when_the_target_is_not_log_linear(credit: dict) -> None:
    """On a tree the solved copy is only a linear approximation: the note says so and names
    the attack that measures such a model, so a low figure is not read as no theft."""
    r = ATTACKS.get("extraction.equation")(n_uniform=200).run(
        Oracle(credit["tree"]), AttackData(schema=credit["schema"], test=credit["test"]))
    assert any("not a logistic/softmax model" in n and "extraction.learning" in n
               for n in r.notes)
    lr = ATTACKS.get("extraction.equation")(n_uniform=200).run(
        Oracle(credit["lr"]), AttackData(schema=credit["schema"], test=credit["test"]))
    assert not any("not a logistic" in n for n in lr.notes)
