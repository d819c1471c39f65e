"""White-box PGD and black-box SimBA on the OCR use case's kind of model: a PyTorch network
trained on the digits."""

from __future__ import annotations

import numpy as np
import pytest

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.datasets import load
from finmlsec.errors import CapabilityError
from finmlsec.targets.oracle import Oracle


@pytest.fixture(scope="module")
def ocr() -> tuple:
    import torch

    from finmlsec.targets.torch import TorchTarget

    ds = load("ocr_digits")
    X = np.asarray(ds.X, dtype=np.float32)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    xt, yt = torch.from_numpy(X[:1200]), torch.from_numpy(ds.y[:1200].astype(np.int64))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: threads only contend on the shared machine
    try:
        for _ in range(40):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt), yt).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    target = TorchTarget(net, classes=list(range(10)))
    return target, X[1200:1300], ds.y[1200:1300]


def test_pgd_white_box_on_ocr_network(ocr: tuple) -> None:
    target, X, y = ocr
    assert np.mean(target.predict(X) == y) > 0.85
    oracle = Oracle(target, access="white_box", input_kind="image")
    att = ATTACKS.get("evasion.pgd")(eps=0.15, iterations=20)
    out = att.generate(oracle, X, y)
    assert out.valid.all()
    assert np.abs(out.X_adv - X).max() <= 0.15 + 1e-6 and out.X_adv.min() >= 0 and out.X_adv.max() <= 1
    correct = target.predict(X) == y
    assert np.mean(out.success[correct]) >= 0.8
    assert (target.predict(out.X_adv)[out.success] != y[out.success]).all()
    r = att.run(Oracle(target, access="white_box", input_kind="image"),
                AttackData(victims=Labeled(X[:30], y[:30])))
    assert r.success >= 0.7 and r.metrics["mean_linf"] <= 0.15 + 1e-6
    # rated on its lift over random sign noise of the same radius, which rarely turns a digit
    assert r.metrics["baseline_rate"] <= 0.3 and r.metrics["lift_p"] < 0.05
    assert r.success == r.metrics["lift"] < r.metrics["success_rate"]
    with pytest.raises(CapabilityError, match="gradient"):
        att.run(Oracle(target, access="proba", input_kind="image"),
                AttackData(victims=Labeled(X[:3], y[:3])))


def test_simba_black_box_on_ocr_network(ocr: tuple) -> None:
    target, X, y = ocr
    oracle = Oracle(target, access="proba", input_kind="image")
    att = ATTACKS.get("evasion.image")(eps=0.3, max_iter=128)
    r = att.run(oracle, AttackData(victims=Labeled(X[:40], y[:40])))
    assert r.metrics["validity_rate"] == 1.0 and r.success >= 0.5
    assert r.metrics["mean_linf"] <= 0.3 + 1e-9
    assert r.metrics["baseline_rate"] <= 0.4 and r.success == r.metrics["lift"] >= 0.5
    assert r.queries == oracle.queries_used
    out = att.generate(Oracle(target, input_kind="image"), X[:10].reshape(10, 1, 8, 8))
    assert out.X_adv.shape == (10, 1, 8, 8)
    with pytest.raises(CapabilityError, match="proba"):
        att.run(Oracle(target, access="label", input_kind="image"),
                AttackData(victims=Labeled(X[:3], y[:3])))
    budget = Oracle(target, input_kind="image", budget=200)
    att.generate(budget, X[:20])
    assert budget.queries_used <= 200
