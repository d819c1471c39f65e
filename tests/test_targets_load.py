"""load_target: skops (with trusted types), pickle refusal, ONNX, torch; bad files get clear errors."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import lightgbm
import numpy as np
import pytest
import skops.io as sio
import torch
import xgboost
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
from sklearn.ensemble import GradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

from finmlsec.datasets import load
from finmlsec.errors import TargetError, UntrustedFileError
from finmlsec.schema import preprocessor
from finmlsec.spec import ModelRef
from finmlsec.targets.load import RenamedTarget, load_target
from finmlsec.targets.oracle import Oracle
from finmlsec.targets.sklearn_files import OutlierTarget
from finmlsec.targets.torch import ARCHITECTURES


@pytest.fixture(scope="module")
def credit():
    ds = load("german_credit")
    train, test = ds.split(0.3, seed=0)
    return train, test


def _pipeline(schema, clf):
    return make_pipeline(preprocessor(schema, categories="data"), clf)


@pytest.mark.parametrize(
    "clf, needs",
    [
        (LogisticRegression(max_iter=1000), []),
        (GradientBoostingClassifier(n_estimators=30, random_state=0), ["sklearn.tree._tree.Tree"]),
        (
            xgboost.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0),
            ["xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"],
        ),
        (
            lightgbm.LGBMClassifier(n_estimators=30, n_jobs=1, verbose=-1, random_state=0),
            ["collections.OrderedDict", "lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier"],
        ),
    ],
    ids=["logreg", "gbm", "xgboost", "lightgbm"],
)
def test_skops_round_trip_needs_exactly_the_listed_types(credit, tmp_path, clf, needs) -> None:
    train, test = credit
    model = _pipeline(train.schema, clf).fit(train.X, train.y)
    sio.dump(model, tmp_path / "m.skops")
    ref = ModelRef(format="skops", path="m.skops", trusted_types=tuple(needs))
    target = load_target(ref, base_dir=tmp_path)
    np.testing.assert_allclose(target.predict_proba(test.X), model.predict_proba(test.X))
    assert roc_auc_score(test.y, target.predict_proba(test.X)[:, 1]) > 0.7
    assert target.classes_.tolist() == [0, 1]
    if needs:
        with pytest.raises(UntrustedFileError) as err:
            load_target(ModelRef(format="skops", path="m.skops"), base_dir=tmp_path)
        msg = str(err.value)
        assert "trusted_types:" in msg
        for name in needs:
            assert f"- {name}" in msg
        # trusted: true trusts every type the file names
        trusted = load_target(ModelRef(format="skops", path="m.skops", trusted=True), base_dir=tmp_path)
        assert trusted.predict(test.X[:5]).tolist() == model.predict(test.X[:5]).tolist()


def test_classes_rename_the_models_labels(credit, tmp_path) -> None:
    train, test = credit
    model = _pipeline(train.schema, LogisticRegression(max_iter=1000)).fit(train.X, train.y)
    sio.dump(model, tmp_path / "m.skops")
    target = load_target(
        ModelRef(format="skops", path="m.skops", classes=("bad", "good")), base_dir=tmp_path
    )
    assert isinstance(target, RenamedTarget)
    expected = np.array(["bad", "good"])[model.predict(test.X)]
    assert target.predict(test.X).tolist() == expected.tolist()
    with pytest.raises(TargetError, match="names 3 classes"):
        load_target(ModelRef(format="skops", path="m.skops", classes=("a", "b", "c")), base_dir=tmp_path)


def test_outlier_detector_becomes_a_two_class_target(credit, tmp_path) -> None:
    train, test = credit
    num = [f.name for f in train.schema.numeric()]
    iso = IsolationForest(n_estimators=50, random_state=0).fit(train.X[num])
    sio.dump(iso, tmp_path / "iso.skops")
    t = load_target(
        ModelRef(format="skops", path="iso.skops", trusted_types=("sklearn.tree._tree.Tree",)),
        base_dir=tmp_path,
    )
    assert isinstance(t, OutlierTarget) and "score" in t.capabilities
    pred = t.predict(test.X[num])
    assert pred.tolist() == (iso.predict(test.X[num]) == -1).astype(int).tolist()
    assert (np.argmax(t.predict_proba(test.X[num]), axis=1) == pred).all()


class _Payload:
    """Unpickling this calls Path.touch(marker): a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path) -> None:
    marker = tmp_path / "payload_ran"
    for name in ("evil.pkl", "evil.joblib"):
        (tmp_path / name).write_bytes(pickle.dumps(_Payload(marker)))
        with pytest.raises(UntrustedFileError, match="run arbitrary code.*trusted: true.*--trust-pickle"):
            load_target(ModelRef(format="pickle", path=name), base_dir=tmp_path)
        # disguised as skops: refused as a non-zip file, never unpickled
        with pytest.raises(TargetError, match="is a pickle/joblib file"):
            load_target(ModelRef(format="skops", path=name), base_dir=tmp_path)
        # disguised as a torch state_dict: weights_only refuses it
        with pytest.raises(TargetError, match="weights_only=True"):
            load_target(
                ModelRef(format="torch", path=name, torch={"architecture": "mlp",
                         "kwargs": {"in_features": 2, "n_classes": 2}}),
                base_dir=tmp_path,
            )
    assert not marker.exists()


def test_malicious_skops_type_is_refused_and_not_executed(tmp_path) -> None:
    # a skops archive naming a type outside the defaults: refused before anything is built
    path = tmp_path / "evil.skops"
    sio.dump({"model": IsolationForest(n_estimators=2).fit(np.zeros((10, 1)))}, path)
    with pytest.raises(UntrustedFileError, match=r"sklearn\.tree\._tree\.Tree"):
        load_target(ModelRef(format="skops", path="evil.skops"), base_dir=tmp_path)


def test_trusted_pickle_loads(credit, tmp_path) -> None:
    train, test = credit
    model = _pipeline(train.schema, LogisticRegression(max_iter=1000)).fit(train.X, train.y)
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(model))
    for ref, trust in [
        (ModelRef(format="pickle", path="m.pkl", trusted=True), False),
        (ModelRef(format="pickle", path="m.pkl"), True),
    ]:
        t = load_target(ref, base_dir=tmp_path, trust_pickle=trust)
        np.testing.assert_allclose(t.predict_proba(test.X), model.predict_proba(test.X))


def test_bad_model_files_get_clear_errors(tmp_path) -> None:
    with pytest.raises(TargetError, match="does not exist"):
        load_target(ModelRef(format="skops", path="missing.skops"), base_dir=tmp_path)
    (tmp_path / "junk.skops").write_bytes(b"hello, not a model")
    with pytest.raises(TargetError, match="not a skops file"):
        load_target(ModelRef(format="skops", path="junk.skops"), base_dir=tmp_path)
    with zipfile.ZipFile(tmp_path / "empty.skops", "w") as zf:
        zf.writestr("readme.txt", "no schema here")
    with pytest.raises(TargetError, match="not a valid skops file"):
        load_target(ModelRef(format="skops", path="empty.skops"), base_dir=tmp_path)
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01garbage")
    with pytest.raises(TargetError, match="cannot load the ONNX model"):
        load_target(ModelRef(format="onnx", path="junk.onnx"), base_dir=tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(TargetError, match="cannot load .* as a torch state_dict"):
        load_target(
            ModelRef(format="torch", path="junk.pt", torch={"architecture": "mlp"}), base_dir=tmp_path
        )
    sio.dump({"a": 1}, tmp_path / "dict.skops")
    with pytest.raises(TargetError, match="has no predict"):
        load_target(ModelRef(format="skops", path="dict.skops"), base_dir=tmp_path)


def test_onnx_pipeline_with_one_input_per_column(credit, tmp_path) -> None:
    train, test = credit
    model = _pipeline(train.schema, LogisticRegression(max_iter=1000)).fit(train.X, train.y)
    types = []
    for f in train.schema.features:
        if f.type.value == "categorical":
            types.append((f.name, StringTensorType([None, 1])))
        elif f.type.value == "integer":
            types.append((f.name, Int64TensorType([None, 1])))
        else:
            types.append((f.name, FloatTensorType([None, 1])))
    onx = convert_sklearn(model, initial_types=types, options={id(model): {"zipmap": False}})
    (tmp_path / "m.onnx").write_bytes(onx.SerializeToString())
    t = load_target(ModelRef(format="onnx", path="m.onnx"), base_dir=tmp_path)
    assert t.classes_.tolist() == [0, 1]
    np.testing.assert_allclose(t.predict_proba(test.X), model.predict_proba(test.X), atol=1e-5)
    assert (t.predict(test.X) == model.predict(test.X)).mean() > 0.99
    oracle = Oracle(t, access="rounded", decimals=1, budget=len(test))
    assert set(np.unique(oracle.predict_proba(test.X))) <= {round(0.1 * i, 1) for i in range(11)}
    with pytest.raises(TargetError, match="missing column"):
        t.predict(test.X.drop(columns=["age"]))
    with pytest.raises(TargetError, match="pass a pandas DataFrame"):
        t.predict(np.zeros((2, 20)))


def test_onnx_zipmap_classifier_and_torch_logits(tmp_path) -> None:
    ds = load("ocr_digits")
    X, y = ds.X.astype(np.float32), ds.y
    clf = LogisticRegression(max_iter=300).fit(X[:1000], y[:1000])
    onx = convert_sklearn(clf, initial_types=[("x", FloatTensorType([None, 64]))])  # ZipMap on
    (tmp_path / "lr.onnx").write_bytes(onx.SerializeToString())
    t = load_target(ModelRef(format="onnx", path="lr.onnx", input_kind="image"), base_dir=tmp_path)
    np.testing.assert_allclose(t.predict_proba(X[1000:]), clf.predict_proba(X[1000:]), atol=1e-5)

    torch.manual_seed(0)
    net = ARCHITECTURES.get("small_cnn")(in_channels=1, height=8, width=8, n_classes=10, channels=4)
    torch.onnx.export(net.eval(), (torch.zeros(1, 1, 8, 8),), str(tmp_path / "cnn.onnx"),
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    ref = ModelRef(format="onnx", path="cnn.onnx", input_kind="image", classes=tuple(ds.classes))
    t2 = load_target(ref, base_dir=tmp_path)
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(X[:50]).reshape(-1, 1, 8, 8)), 1).numpy()
    np.testing.assert_allclose(t2.predict_proba(X[:50]), expected, atol=1e-5)  # flat rows reshaped
    assert t2.predict(X[:5]).tolist() == [ds.classes[i] for i in expected[:5].argmax(1)]


def test_onnx_outlier_detector(tmp_path) -> None:
    from skl2onnx import to_onnx

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    iso = IsolationForest(n_estimators=30, random_state=0).fit(X)
    onx = to_onnx(iso, X, target_opset={"": 17, "ai.onnx.ml": 3})
    (tmp_path / "iso.onnx").write_bytes(onx.SerializeToString())
    t = load_target(ModelRef(format="onnx", path="iso.onnx", input_kind="image"), base_dir=tmp_path)
    assert t.predict(X).tolist() == (iso.predict(X) == -1).astype(int).tolist()
    np.testing.assert_allclose(t.score(X), -iso.decision_function(X), atol=1e-5)


def test_unknown_format_from_a_dict_ref(tmp_path) -> None:
    with pytest.raises(TargetError, match="unknown model format 'h5'"):
        load_target({"format": "h5", "path": "m.h5"}, base_dir=tmp_path)
