"""A portfolio scan (``finmlsec scan INVENTORY.yaml``) of real systems built from the shipped
use-case specs: one id, resumable systems, the report sorted by risk, ``--fail-on`` over the
portfolio, and bad inventories as one line with exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from finmlsec.cli.main import main
from finmlsec.store import Store

pytestmark = pytest.mark.slow

INVENTORY = """\
name: Test bank
defaults: {profile: quick, attacks: [extraction.equation], defences: [confidence.round]}
systems:
  - credit/spec.yaml
  - fraud/spec.yaml
  - id: credit-v2
    usecase: credit-scoring
    name: Credit scoring, retrained
    model: {format: skops, path: credit-v2/model.skops}
    data: {dataset: german_credit, seed: 0}
"""


def _system(directory: Path, usecase: str, dataset: str, *, c: float = 1.0) -> Path:
    """A logistic regression on the use case's dataset (seed 0 training split), saved with skops,
    under the shipped spec's organisations, roles and stakes."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from finmlsec.datasets import load
    from finmlsec.datasets.splits import split_three
    from finmlsec.schema import preprocessor
    from finmlsec.usecases.base import roles_of

    ds = load(dataset)
    train, _, _ = split_three(ds, 0)
    model = make_pipeline(preprocessor(ds.schema, categories="data"),
                          LogisticRegression(C=c, max_iter=2000)).fit(train.X, train.y)
    directory.mkdir(parents=True, exist_ok=True)
    sio.dump(model, directory / "model.skops")
    spec = roles_of(usecase)
    spec["model"] = {"format": "skops", "path": "model.skops"}
    spec["data"] = {"dataset": dataset, "seed": 0}
    (directory / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), "utf-8")
    return directory / "spec.yaml"


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bank")
    _system(root / "credit", "credit-scoring", "german_credit")
    _system(root / "fraud", "fraud", "card_fraud")
    _system(root / "credit-v2", "credit-scoring", "german_credit", c=0.1)
    (root / "inventory.yaml").write_text(INVENTORY, "utf-8")
    return root


def _scan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["scan", *args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["report", *args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def _copy(systems: Path, tmp_path: Path) -> Path:
    root = tmp_path / "bank"
    shutil.copytree(systems, root)
    return root


def test_a_portfolio_is_scanned_reported_by_risk_and_compared_with_its_last_validation(
        systems: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(systems, tmp_path)
    db, out = str(tmp_path / "store.db"), tmp_path / "report"
    code, stdout, err = _scan(capsys, str(root / "inventory.yaml"), "--db", db, "--executor",
                              "serial", "--out", str(out), "--json")
    assert code == 0, err
    from finmlsec.scan import bundle, work

    # nothing of the three systems is kept in this process once each is done
    assert not work._SCENARIOS and not work._BUNDLES and not bundle._DIRS
    doc = json.loads(stdout)
    pid = doc["portfolio"]["id"]
    assert pid.startswith("pf-") and doc["portfolio"]["status"] == "done"
    by_id = {s["id"]: s for s in doc["systems"]}
    assert set(by_id) == {"credit", "fraud", "credit-v2"}
    # the paper's types of the shipped use cases: credit scoring 3, fraud 7
    assert by_id["credit"]["paper_type"] == 3 and by_id["fraud"]["paper_type"] == 7
    assert by_id["credit-v2"]["title"] == "Credit scoring, retrained"
    # a logistic regression's scores give its coefficients away: extraction is exact (high);
    # rounding the scores is the measured countermeasure
    assert by_id["credit"]["max_risk"] == "high"
    ranks = ["none", "low", "medium", "high"]
    residuals = [ranks.index(s["max_residual_risk"]) for s in doc["systems"]]
    assert residuals == sorted(residuals, reverse=True)  # highest residual risk first
    assert all(s["changes"]["previous_run"] is None for s in doc["systems"])
    # one progress line per system on stderr, and the three report files
    assert "system 1/3 'credit': planning" in err and "system 3/3 'credit-v2'" in err
    assert {p.name for p in out.iterdir()} == {"portfolio.html", "portfolio.md",
                                                "portfolio.json"}
    assert json.loads((out / "portfolio.json").read_text())["portfolio"]["id"] == pid
    md = (out / "portfolio.md").read_text()
    assert md.index("`credit`") < md.index("`fraud`") and "first validation" in md
    assert "<table>" in (out / "portfolio.html").read_text()
    # the stored portfolio renders again by its id (a unique prefix will do)
    code, stdout, _ = _report(capsys, pid[:-2], "--db", db, "--format", "md")
    assert code == 0 and stdout.strip() == md.strip()
    # the registry-style entry (a spec with its model replaced) is written beside the inventory
    gen = root / ".finmlsec" / "inventory" / "credit-v2.yaml"
    assert yaml.safe_load(gen.read_text())["model"]["path"] == str(root / "credit-v2" /
                                                                   "model.skops")

    # a second run is a new validation: a new id, compared with the first
    code, stdout, err = _scan(capsys, str(root / "inventory.yaml"), "--db", db, "--executor",
                              "serial", "--out", str(out), "--json", "--quiet")
    assert code == 0, err
    doc2 = json.loads(stdout)
    assert doc2["portfolio"]["id"] != pid
    for s in doc2["systems"]:
        assert s["changes"]["previous_run"] == by_id[s["id"]]["run_id"], s
        assert not s["changes"]["worse"] and not s["changes"]["new"]  # same seed, same figures

    # `runs list` shows the portfolios after the runs, newest first, with their highest risk
    with pytest.raises(SystemExit) as exc:
        main(["runs", "list", "--db", db])
    listed, _ = capsys.readouterr()
    assert exc.value.code in (0, None)
    lines = listed.splitlines()
    at = lines.index("portfolios:")
    assert all(not line.startswith("pf-") for line in lines[:at])
    assert [line.split()[0] for line in lines[at + 1:]] == [doc2["portfolio"]["id"], pid]
    assert "Test bank" in lines[at + 2] and "3 systems (3 done)" in lines[at + 2]
    assert f"risk high -> {doc['summary']['max_residual_risk']}" in lines[at + 2]
    with pytest.raises(SystemExit):
        main(["runs", "list", "--db", db, "--json"])
    rows = json.loads(capsys.readouterr()[0])
    assert [r["kind"] for r in rows] == ["run"] * 6 + ["portfolio"] * 2
    assert rows[-1] | {"created_at": None} == {
        "kind": "portfolio", "id": pid, "created_at": None, "status": "done",
        "name": "Test bank", "inventory": str(root / "inventory.yaml"), "systems": 3,
        "system_status": {"done": 3}, "owner": None, "max_risk": "high",
        "max_residual_risk": doc["summary"]["max_residual_risk"]}


def test_a_crashed_system_is_an_error_and_the_portfolio_resumes(
        systems: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(systems, tmp_path)
    db = str(tmp_path / "store.db")
    model = root / "fraud" / "model.skops"
    model.rename(root / "fraud" / "moved.skops")
    args = [str(root / "inventory.yaml"), "--db", db, "--executor", "serial", "--out",
            str(tmp_path / "r"), "--json", "--fail-on", "high"]
    code, stdout, err = _scan(capsys, *args)
    # credit's risk reaches high, but a system that crashed makes the portfolio unfinished
    # (exit 3), never "risk found"; the error is recorded with its one-line reason
    assert code == 3, err
    doc = json.loads(stdout)
    assert doc["systems"][0]["id"] == "fraud" and doc["systems"][0]["status"] == "error"
    assert "model file" in doc["systems"][0]["error"] and "does not exist" in err
    assert doc["systems"][0]["max_risk"] == "not_measured"
    assert "finmlsec scan --resume " + doc["portfolio"]["id"] in err
    store = Store.open(db)
    kept = {s.name: s.run_id for s in store.portfolio(doc["portfolio"]["id"]).systems}

    # fixed, the same command resumes the same portfolio: the finished systems are kept
    model.parent.joinpath("moved.skops").rename(model)
    code, stdout, err = _scan(capsys, *args)
    assert code == 1, err  # now complete: credit's measured risk reaches --fail-on high
    doc2 = json.loads(stdout)
    assert doc2["portfolio"]["id"] == doc["portfolio"]["id"]
    assert "'credit': finished before" in err and "'fraud': planning" in err
    assert {s["id"]: s["run_id"] for s in doc2["systems"]}["credit"] == kept["credit"]
    assert all(u.attempts == 1 for u in store.units(kept["credit"]))
    assert {s["id"]: s["max_risk"] for s in doc2["systems"]}["credit"] == "high"
    assert all(s["status"] == "done" for s in doc2["systems"])


def test_an_interrupted_system_resumes_its_run(
        systems: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from finmlsec.scan import portfolio
    from finmlsec.scan.inventory import load_inventory

    root = _copy(systems, tmp_path)
    store = Store.open(str(tmp_path / "store.db"))
    inv = load_inventory(root / "inventory.yaml")
    pf, resumed = portfolio.start(store, inv)
    assert not resumed

    def stop_after_planning(message: str) -> None:
        if "'fraud': scanning" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        portfolio.run(store, pf.id, executor="serial", progress=False, echo=stop_after_planning)
    state = {s.name: (s.status, s.run_id) for s in store.portfolio(pf.id).systems}
    assert state["credit"][0] == "done" and state["fraud"][0] == "interrupted"
    assert state["credit-v2"] == ("pending", None)
    assert store.portfolio(pf.id).status == "interrupted"

    code, stdout, err = _scan(capsys, "--resume", pf.id, "--db", str(tmp_path / "store.db"),
                              "--executor", "serial", "--out", str(tmp_path / "r"), "--json")
    assert code == 0, err
    assert f"'fraud': resuming run {state['fraud'][1]}" in err
    doc = json.loads(stdout)
    assert {s["id"]: s["run_id"] for s in doc["systems"]}["fraud"] == state["fraud"][1]
    assert doc["portfolio"]["status"] == "done"


@pytest.mark.parametrize(("text", "message"), [
    ("systems: []", "systems (line 1): lists no system"),
    ("systems: [{spce: credit/spec.yaml}]", "unknown key 'spce' (did you mean 'spec'?)"),
    ("systems: [nowhere/spec.yaml]", "does not exist"),
    ("systems: [credit/spec.yaml, credit/spec.yaml]", "system id 'credit' is also systems[0]"),
    ("systems: [{spec: credit/spec.yaml, model: {uri: 'models:/m/1'}}]", "needs an 'id'"),
    ("systems:\n  - id: x\n    spec: credit/spec.yaml\n    model: {format: skops}\n",
     "systems[0]: model: format 'skops' needs a 'path'"),
    ("defaults: {profile: fast}\nsystems: [credit/spec.yaml]", "'fast' is not allowed"),
    ("systems: [{spec: credit/spec.yaml, attacks: [extraction.eqation]}]",
     "system 'credit': unknown attack"),
    ("systems: [{spec: credit/spec.yaml}\nname: [", "malformed YAML"),
])
def test_a_bad_inventory_is_one_line_and_exit_2(
        systems: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
        message: str) -> None:
    root = _copy(systems, tmp_path)
    inv = root / "inventory.yaml"
    inv.write_text(text, "utf-8")
    code, _, err = _scan(capsys, str(inv), "--db", str(tmp_path / "s.db"), "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert str(inv) in lines[0] or "malformed" in lines[0]
    assert not (tmp_path / "s.db").exists() or not Store.open(str(tmp_path / "s.db")).runs()


def _claims(tmp_path: Path) -> tuple[str, str]:
    """A store in a SQLite file with one unfinished portfolio (no system planned); its URL and
    the portfolio's id."""
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    pid = Store.open(url).create_portfolio(
        inventory_path=str(tmp_path / "inventory.yaml"), name="Claims", digest="d", options={},
        systems=[{"name": "a", "spec_path": "a.yaml", "entry": {}}])
    return url, pid


def test_a_claim_is_renewed_while_held_released_after_and_taken_once_expired(
        tmp_path: Path) -> None:
    import time

    from finmlsec.scan import portfolio

    url, pid = _claims(tmp_path)
    store = Store.open(url)
    with portfolio.claimed(store, pid, "first", lease_seconds=0.6):
        time.sleep(1.5)  # two and a half leases: only the heartbeat keeps it
        with pytest.raises(portfolio.PortfolioBusyError, match=f"portfolio {pid} .* by first"):
            portfolio.claim(Store.open(url), pid, "second", 0.6)
    assert store.portfolio(pid).owner is None  # released at the end of the block
    # a holder that died (no heartbeat, no release) blocks only until its lease runs out
    assert store.claim_portfolio(pid, "crashed", 0.3)
    assert not store.claim_portfolio(pid, "second", 0.3)
    time.sleep(0.5)
    assert store.claim_portfolio(pid, "second", 0.3)


def test_a_second_scan_of_a_portfolio_being_scanned_refuses_in_one_line(
        systems: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One invocation holds the portfolio's claim in a thread of its own (as while it scans);
    the same inventory scanned again in this thread, and ``--resume`` from another process,
    each refuse with exit 2 on one line naming the portfolio; once released, it resumes."""
    import subprocess
    import sys
    import threading

    from finmlsec.scan import portfolio
    from finmlsec.scan.inventory import load_inventory

    root = _copy(systems, tmp_path)
    db = str(tmp_path / "store.db")
    store = Store.open(db)
    pf, _ = portfolio.start(store, load_inventory(root / "inventory.yaml"))
    held, done = threading.Event(), threading.Event()

    def first() -> None:
        with portfolio.claimed(Store.open(db), pf.id, "first-scan", lease_seconds=30):
            held.set()
            done.wait(60)

    holder = threading.Thread(target=first)
    holder.start()
    try:
        assert held.wait(30)
        code, _, err = _scan(capsys, str(root / "inventory.yaml"), "--db", db, "--executor",
                             "serial", "--out", str(tmp_path / "r"))
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert f"portfolio {pf.id} (Test bank" in lines[0] and "by first-scan" in lines[0]
        other = subprocess.run(
            [sys.executable, "-c", "from finmlsec.cli.main import main; main()", "scan",
             "--resume", pf.id, "--db", db, "--executor", "serial", "--quiet"],
            capture_output=True, text=True, timeout=120)
        assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1, \
            other.stderr
        assert f"portfolio {pf.id}" in other.stderr and "by first-scan" in other.stderr
        assert all(s.run_id is None for s in store.portfolio(pf.id).systems)  # nothing ran
    finally:
        done.set()
        holder.join()
    assert store.portfolio(pf.id).owner is None
    again, resumed = portfolio.start(store, load_inventory(root / "inventory.yaml"),
                                     owner="second-scan")
    assert resumed and again.id == pf.id and store.portfolio(pf.id).owner == "second-scan"
