"""Every report that summarises a scan shows its headline warnings, and the scan report says
which row ids it left out of the model's input and which it kept.

A portfolio of two real systems, scanned with the quick profile and one attack: the bank's
random forest on a 95/5 loan file (tests/bank_files.py's modeldata), which at its own 0.5
decides ``good`` for every held-out applicant (the scan's ``summary.warnings``; R's row names,
which it was not trained on, are left out), and a logistic regression trained with its export's
``loan_id`` (kept as a frozen model input) beside pandas' ``Unnamed: 0`` (left out). Before, the portfolio report, the dossier and the evidence document
showed no warning (a constant decider among ten systems was hidden), and the row ids were said
only on standard error."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from bank_files import build_modeldata, build_rowids, run_cli
from finmlsec.store import Store

pytestmark = pytest.mark.slow

INVENTORY = """\
name: Warned bank
defaults: {profile: quick, attacks: [membership.metric], defences: []}
systems:
  - {spec: constant/spec.yaml, id: constant}
  - {spec: loans/spec.yaml, id: loans}
"""

CONSTANT = "The deployed model decides 'good' for 100.0% of the 300 held-out records"


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("warned")
    build_modeldata(root / "constant")
    build_rowids(root / "loans", with_id=True)
    (root / "inventory.yaml").write_text(INVENTORY, "utf-8")
    db, out = root / "store.db", root / "report"
    code, said = run_cli(["scan", str(root / "inventory.yaml"), "--db", str(db),
                          "--executor", "serial", "--out", str(out)])
    assert code in (0, 1), said
    (root / "said.txt").write_text(said, "utf-8")
    return {"root": root, "db": db, "out": out, "said": root / "said.txt"}


def _run_of(db: Path, system: str) -> str:
    store = Store.open(str(db))
    pf = store.portfolios()[0]
    return next(s.run_id for s in pf.systems if s.name == system)


def test_the_portfolio_shows_each_systems_warning_in_every_format(bank: dict[str, Path]) -> None:
    out = bank["out"]
    doc = json.loads((out / "portfolio.json").read_text("utf-8"))
    by_id = {s["id"]: s for s in doc["systems"]}
    assert len(by_id["constant"]["warnings"]) == 1
    assert by_id["constant"]["warnings"][0].startswith(
        "the deployed model decides 'good' for 100.0% of the 300 held-out records")
    assert by_id["loans"]["warnings"] == [] and doc["summary"]["warnings"] == 1
    # the same warning as the system's own scan report
    run = Store.open(str(bank["db"])).run(by_id["constant"]["run_id"])
    assert by_id["constant"]["warnings"] == run.summary["warnings"]

    name = by_id["constant"]["title"]
    md = (out / "portfolio.md").read_text("utf-8")
    line = next(ln for ln in md.splitlines() if ln.startswith("> **WARNING.**"))
    assert f"{name} (constant): {CONSTANT}" in line and "model.decision_threshold" in line
    assert md.index("> **WARNING.**") < md.index("| system |")  # first, before the table
    assert md.count("> **WARNING.**") == 1
    row = next(ln for ln in md.splitlines() if "(`constant`)" in ln)
    assert "1 warning (above)" in row

    html = (out / "portfolio.html").read_text("utf-8")
    alerts = re.findall(r'<p class="warning" role="alert">(.*?)</p>', html, flags=re.S)
    assert len(alerts) == 1 and "<code>constant</code>" in alerts[0]
    assert CONSTANT in unescape(alerts[0]) and html.index(
        'class="warning"') < html.index("<table>")
    # the same visual alert as the single-scan report: its CSS rule, byte for byte
    code, single = run_cli(["report", run.id, "--format", "html", "--db", str(bank["db"]),
                            "-o", str(bank["root"] / "single.html")])
    assert code == 0, single
    page = (bank["root"] / "single.html").read_text("utf-8")
    rule = re.search(r"^\.warning \{[^}]*\}$", page, flags=re.M)
    assert rule is not None and rule.group(0) in html

    # the terminal summary of `finmlsec scan INVENTORY` and `finmlsec report PORTFOLIO_ID`
    said = bank["said"].read_text("utf-8")
    assert f"WARNING: {name} (constant): {CONSTANT}" in said
    code, again = run_cli(["report", doc["portfolio"]["id"], "--format", "md",
                           "--db", str(bank["db"]), "-o", str(bank["root"] / "again.md")])
    assert code == 0, again
    assert (bank["root"] / "again.md").read_text("utf-8") == md


def test_the_dossier_shows_the_warning_in_its_json_and_first_in_its_page(
        bank: dict[str, Path]) -> None:
    run = _run_of(bank["db"], "constant")
    target = bank["root"] / "dossier"
    code, said = run_cli(["dossier", run, "-o", str(target), "--db", str(bank["db"])])
    assert code == 0, said
    assert f"WARNING: {CONSTANT[:1].lower()}{CONSTANT[1:]}" in said
    d = json.loads((target / "dossier.json").read_text("utf-8"))
    assert len(d["warnings"]) == 1 and d["warnings"] == d["scan"]["summary"]["warnings"]
    html = (target / "dossier.html").read_text("utf-8")
    head = html.split('<section id="findings">', 1)[0]
    alert = re.search(r'<p class="warning" role="alert">(.*?)</p>', head, flags=re.S)
    assert alert is not None and CONSTANT in unescape(alert.group(1))
    assert head.index('class="warning"') < head.index("<strong>Result.</strong>")
    assert re.search(r"^\.warning \{", html, flags=re.M)  # styled as in the scan report
    code, ok = run_cli(["dossier", "verify", str(target)])
    assert code == 0, ok

    loans = bank["root"] / "dossier-loans"
    code, said = run_cli(["dossier", _run_of(bank["db"], "loans"), "-o", str(loans),
                          "--db", str(bank["db"])])
    assert code == 0 and "WARNING" not in said, said
    assert json.loads((loans / "dossier.json").read_text("utf-8"))["warnings"] == []
    assert 'role="alert"' not in (loans / "dossier.html").read_text("utf-8")


def test_the_evidence_document_shows_each_scans_warning_first(bank: dict[str, Path]) -> None:
    target = bank["root"] / "evidence.md"
    code, said = run_cli(["evidence", "--db", str(bank["db"]), "-o", str(target)])
    assert code == 0, said
    text = target.read_text("utf-8")
    run = _run_of(bank["db"], "constant")
    warned = [ln for ln in text.splitlines() if ln.startswith("> **WARNING.**")]
    assert len(warned) == 1 and f"(run `{run}`): {CONSTANT}" in warned[0]
    assert text.index("> **WARNING.**") < text.index("\n## ")


def test_the_report_records_and_shows_the_row_ids_left_out_and_kept(
        bank: dict[str, Path]) -> None:
    run = _run_of(bank["db"], "loans")
    texts = {}
    for fmt in ("json", "md", "html"):
        path = bank["root"] / f"loans.{fmt}"
        code, said = run_cli(["report", run, "--format", fmt, "--db", str(bank["db"]),
                              "-o", str(path)])
        assert code == 0, said
        texts[fmt] = path.read_text("utf-8")
    why = "the model reads it: it cannot answer, or answers otherwise, without it"
    assert json.loads(texts["json"])["run"]["options"]["row_ids"] == {
        "left_out": ["Unnamed: 0"], "kept": [{"id": "loan_id", "why": why}],
        "model_asked": True}
    words = ("'Unnamed: 0' left out of the model's input; 'loan_id' kept as a model input, "
             "frozen (no attack changes it; gateway clients must send it), because " + why + ".")
    assert f"**Row ids.** {words}" in texts["md"].splitlines()
    line = re.search(r'<p id="row-ids"><strong>Row ids.</strong> (.*?)</p>', texts["html"])
    assert line is not None and unescape(line.group(1)) == words
    # R's unnamed row names (read back as 'Unnamed: 0'), which the forest was not trained on
    constant = _run_of(bank["db"], "constant")
    code, said = run_cli(["report", constant, "--format", "md", "--db", str(bank["db"]),
                          "-o", str(bank["root"] / "constant.md")])
    assert code == 0, said
    assert Store.open(str(bank["db"])).run(constant).options["row_ids"] == {
        "left_out": ["Unnamed: 0"], "kept": [], "model_asked": True}
    assert ("**Row ids.** 'Unnamed: 0' left out of the model's input."
            in (bank["root"] / "constant.md").read_text("utf-8").splitlines())


def test_junit_and_sarif_carry_the_warning_without_failing_on_it(bank: dict[str, Path]) -> None:
    import xml.etree.ElementTree as ET

    from finmlsec.report.ci import junit_xml, sarif
    from finmlsec.report.scan import scan_document

    store = Store.open(str(bank["db"]))
    for system, expected in (("constant", 1), ("loans", 0)):
        run = store.run(_run_of(bank["db"], system))
        doc = scan_document(run, store.units(run.id))
        suite = ET.fromstring(junit_xml(doc).split("\n", 1)[1])
        props = [p.get("value") for p in suite.iter("property")
                 if p.get("name") == "finmlsec.warning"]
        assert props == doc["summary"]["warnings"] and len(props) == expected
        out = suite.find("system-out")  # the suite's own, after its test cases
        assert (out is not None and CONSTANT[1:] in (out.text or "")) if expected else out is None
        assert [c.tag for c in suite][0] == ("properties" if expected else "testcase")
        log = sarif(doc)["runs"][0]
        notes = log["invocations"][0]["toolExecutionNotifications"]
        assert [(n["level"], n["message"]["text"]) for n in notes] == [
            ("warning", w) for w in doc["summary"]["warnings"]]
