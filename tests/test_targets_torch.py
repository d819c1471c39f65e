"""TorchTarget: probabilities, labels, input gradients; the storage convention; safe loading."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from finmlsec.errors import CapabilityError, ConfigError, TargetError, UntrustedFileError
from finmlsec.targets.oracle import Oracle
from finmlsec.targets.torch import ARCHITECTURES, TorchTarget, reshape_to
from finmlsec.targets.torch_files import load_torch

torch.set_num_threads(1)  # the machine is shared: one intra-op thread is faster here


@pytest.fixture(scope="module")
def digits_model() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    net = ARCHITECTURES.get("mlp")(in_features=64, n_classes=10, hidden=[32])
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(X[:1200]), torch.from_numpy(y[:1200])
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net.eval(), X, y


def test_probabilities_labels_and_accuracy(digits_model) -> None:
    net, X, y = digits_model
    t = TorchTarget(net, classes=list(range(10)))
    p = t.predict_proba(X[1200:])
    assert p.shape == (len(X) - 1200, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    acc = float((t.predict(X[1200:]) == y[1200:]).mean())
    assert acc > 0.9


def test_gradient_matches_finite_differences(digits_model) -> None:
    net, X, y = digits_model
    net = copy.deepcopy(net).double()
    t = TorchTarget(net, classes=list(range(10)))
    x = X[:3].astype(np.float64)
    g = t.gradient(x, y[:3])
    assert g.shape == x.shape

    def loss(row: np.ndarray, label: int) -> float:
        logits = net(torch.from_numpy(row[None, :]))
        return float(torch.nn.functional.cross_entropy(logits, torch.tensor([label])))

    rng = np.random.default_rng(0)
    for i in range(3):
        for j in rng.choice(64, size=5, replace=False):
            e = np.zeros(64)
            e[j] = 1e-6
            fd = (loss(x[i] + e, int(y[i])) - loss(x[i] - e, int(y[i]))) / 2e-6
            assert g[i, j] == pytest.approx(fd, abs=1e-5)


def test_gradient_ascent_raises_the_loss(digits_model) -> None:
    net, X, y = digits_model
    t = TorchTarget(net, classes=list(range(10)))
    x = X[:50]
    before = t.predict_proba(x)[np.arange(50), y[:50]]
    x_adv = np.clip(x + 0.1 * np.sign(t.gradient(x, y[:50])), 0, 1)
    after = t.predict_proba(x_adv)[np.arange(50), y[:50]]
    assert (after < before).mean() > 0.9


def test_preprocess_is_differentiated_through() -> None:
    torch.manual_seed(0)
    net = ARCHITECTURES.get("small_cnn")(in_channels=1, height=8, width=8, n_classes=3, channels=4)
    t = TorchTarget(net, classes=["a", "b", "c"], preprocess=reshape_to([1, 8, 8]))
    X = np.random.default_rng(0).random((4, 64)).astype(np.float32)
    assert t.gradient(X, np.array([0, 1, 2, 0])).shape == (4, 64)
    assert set(t.predict(X)) <= {"a", "b", "c"}


def test_oracle_white_box_gives_gradients_and_counts(digits_model) -> None:
    net, X, y = digits_model
    oracle = Oracle(TorchTarget(net, classes=list(range(10))), access="white_box", budget=10)
    assert "gradient" in oracle.provides
    assert oracle.gradient(X[:4], y[:4]).shape == (4, 64)
    assert oracle.queries_used == 4
    with pytest.raises(CapabilityError, match="white_box"):
        Oracle(TorchTarget(net, classes=list(range(10))), access="proba").gradient(X[:1], y[:1])


def test_bad_arguments_are_reported(digits_model) -> None:
    net, X, _ = digits_model
    with pytest.raises(TargetError, match="torch.nn.Module"):
        TorchTarget("not a module", classes=[0, 1])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 2"):
        TorchTarget(net, classes=[0])
    t = TorchTarget(net, classes=list(range(10)))
    with pytest.raises(ConfigError, match=r"class indices in \[0, 9\]. Got values in \[0, 12\]"):
        t.gradient(X[:2], np.array([0, 12]))
    with pytest.raises(TargetError, match="3 classes were given"):
        TorchTarget(net, classes=[0, 1, 2]).predict_proba(X[:2])
    with pytest.raises(TargetError, match="float32"):
        t.predict_proba([["a", "b"]])


def test_state_dict_round_trip(digits_model, tmp_path: Path) -> None:
    net, X, _ = digits_model
    path = tmp_path / "model.pt"
    torch.save(net.state_dict(), path)
    opts = {"architecture": "mlp", "kwargs": {"in_features": 64, "n_classes": 10, "hidden": [32]}}
    loaded = load_torch(path, opts)
    np.testing.assert_allclose(
        loaded.predict_proba(X[:20]), TorchTarget(net, classes=list(range(10))).predict_proba(X[:20])
    )
    assert loaded.classes_.tolist() == list(range(10))
    with pytest.raises(TargetError, match="do not fit architecture 'mlp'"):
        load_torch(path, {**opts, "kwargs": {"in_features": 64, "n_classes": 10, "hidden": [16]}})
    with pytest.raises(TargetError, match="architecture is required"):
        load_torch(path, {})
    with pytest.raises(TargetError, match="unknown option"):
        load_torch(path, {**opts, "colour": "red"})


def test_state_dict_file_with_code_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    with path.open("wb") as fh:
        pickle.dump({"weight": Payload()}, fh, protocol=2)
    with pytest.raises(TargetError, match="weights_only=True"):
        load_torch(path, {"architecture": "mlp", "kwargs": {"in_features": 2, "n_classes": 2}})
    assert not marker.exists()


def test_torchscript_needs_trust(digits_model, tmp_path: Path) -> None:
    net, X, _ = digits_model
    path = tmp_path / "model.ts"
    torch.jit.save(torch.jit.trace(net, torch.from_numpy(X[:2])), str(path))
    with pytest.raises(UntrustedFileError, match="trusted: true"):
        load_torch(path, {"kind": "torchscript"})
    t = load_torch(path, {"kind": "torchscript"}, trusted=True, classes=list(range(10)))
    assert t.predict_proba(X[:3]).shape == (3, 10)
    bad = tmp_path / "bad.ts"
    bad.write_bytes(b"not a torchscript archive")
    with pytest.raises(TargetError, match="cannot load TorchScript"):
        load_torch(bad, {"kind": "torchscript"}, trusted=True)


def test_torch_classifier_is_a_cloneable_white_box_estimator() -> None:
    from sklearn.base import clone

    from finmlsec.targets.base import as_target
    from finmlsec.targets.torch_estimator import TorchClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    clf = TorchClassifier(architecture="mlp", kwargs={"in_features": 64, "n_classes": 10,
                                                      "hidden": [32]}, epochs=8, random_state=1)
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "classes_")
    fitted = fresh.fit(X[:1000], y[:1000])
    assert float((fitted.predict(X[1000:]) == y[1000:]).mean()) > 0.9
    assert as_target(fitted) is fitted and "gradient" in fitted.capabilities
    again = clone(clf).fit(X[:1000], y[:1000])  # seeded: same weights
    np.testing.assert_allclose(again.predict_proba(X[:5]), fitted.predict_proba(X[:5]))
    # soft labels (a teacher's probabilities) train a student
    soft = fitted.predict_proba(X[:1000])
    student = clone(clf).fit(X[:1000], soft)
    assert float((student.predict(X[1000:]) == y[1000:]).mean()) > 0.85
    with pytest.raises(ConfigError, match="'epochs' parameter of TorchClassifier must be an int >= 1. Got 0"):
        TorchClassifier(epochs=0).fit(X[:10], y[:10])
    # a training set missing some classes keeps all outputs (a PATE student, a small subset)
    few = y[:1000] < 7
    partial = clone(clf).fit(X[:1000][few], y[:1000][few])
    assert partial.classes_.tolist() == list(range(10))
    assert partial.predict_proba(X[:3]).shape == (3, 10)
    with pytest.raises(ConfigError, match="y has 7 classes but the architecture has n_classes=10"):
        clone(clf).fit(X[:1000][few], np.array(list("abcdefg"))[y[:1000][few]])


def test_state_dict_target_has_a_model_factory(digits_model, tmp_path: Path) -> None:
    net, X, y = digits_model
    torch.save(net.state_dict(), tmp_path / "m.pt")
    opts = {"architecture": "mlp", "kwargs": {"in_features": 64, "n_classes": 10, "hidden": [32]},
            "train": {"epochs": 3, "lr": 0.01}}
    t = load_torch(tmp_path / "m.pt", opts)
    est = t.model_factory()
    assert (est.architecture, est.epochs, est.lr, est.kwargs["hidden"]) == ("mlp", 3, 0.01, [32])
    assert est.fit(X[:300], y[:300]).predict(X[:4]).shape == (4,)
    with pytest.raises(TargetError, match=r"model.torch.train; known"):
        load_torch(tmp_path / "m.pt", {**opts, "train": {"epoch": 3}})
