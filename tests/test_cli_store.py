"""One default store for every command: ``demo run`` stores where ``runs list`` and ``report``
look; ``evidence`` writes under ``out/``; ``runs diff`` warns when two systems are compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finmlsec.cli.main import main
from scan_support import build_credit_system


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store")
    build_credit_system(out / "credit-scoring")
    return out


def test_demo_run_stores_where_runs_report_and_diff_look(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINMLSEC_DB", raising=False)
    ids = []
    for _ in range(2):
        code, out, err = run(["demo", "run", "credit-scoring", "--out", str(built), "--profile",
                              "quick", "--skip-build", "--executor", "serial", "--json", "-q",
                              "--attack", "extraction.equation"], capsys)
        assert code == 0, err
        ids.append(json.loads(out)["run_id"])
    assert (tmp_path / "finmlsec.db").exists() and not (built / "finmlsec.db").exists()
    code, out, _ = run(["runs", "list", "--json"], capsys)
    assert {r["id"] for r in json.loads(out)} == set(ids)
    code, out, err = run(["runs", "diff", *ids], capsys)
    assert code == 0 and "warning" not in err  # the same system twice
    code, out, err = run(["report", "last", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["run"]["id"] == ids[1]
    # without --format, the output file's suffix says which format to write
    for name, head in (("r.md", "#"), ("r.json", "{"), ("r.html", "<!doctype html>")):
        code, _, err = run(["report", "last", "-o", str(tmp_path / name)], capsys)
        assert code == 0, err
        assert (tmp_path / name).read_text("utf-8").lstrip().lower().startswith(head), name
    code, out, err = run(["evidence"], capsys)
    assert code == 0 and (tmp_path / "out" / "evidence.md").exists()
    assert ids[1] in (tmp_path / "out" / "evidence.md").read_text("utf-8")


def test_runs_diff_warns_when_the_systems_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from finmlsec.store import Store

    db = str(tmp_path / "two.db")
    store = Store.open(db)
    ids = [store.create_run(spec_path=f"/x/{name}/spec.yaml", spec_name=name, profile="quick",
                            seed=0, system_type=3, options={}, analysis={}, plan={}, units=[])
           for name in ("credit", "fraud")]
    for rid in ids:
        store.finish_run(rid, status="done", summary={"threats": []})
    code, _, err = run(["runs", "diff", *ids, "--db", db], capsys)
    assert code == 0
    assert "two different systems" in err and "credit" in err and "fraud" in err


def test_evidence_never_writes_the_repository_docs_by_default() -> None:
    from finmlsec.cli.evidence import evidence_command

    default = evidence_command.__defaults__[0].default  # type: ignore[index]
    assert Path(default) == Path("out/evidence.md")
