"""Every command's user errors are one line on stderr and exit 2; an internal error exits 4 with
one line naming a log file that holds the traceback; help describes every option and argument."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from finmlsec.cli.main import build_command, main
from scan_support import build_credit_system

UNREACHABLE_PG = "postgresql://nouser@127.0.0.1:1/nodb"


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_system(tmp_path_factory.mktemp("errors") / "credit")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 0), out, err


# (argv, a fragment the one line must contain); SPEC, DB, GW, TMP are replaced per test.
BAD_INPUTS: list[tuple[list[str], str]] = [
    (["scan", "SPEC", "--profile", "fast"], "'fast' is not one of 'quick', 'standard'"),
    (["scan", "--profle", "quick"], "no such option: --profle"),
    (["scan"], "give the SPEC"),
    (["scan", "TMP/missing.yaml", "--db", "DB"], "does not exist"),
    (["scan", "SPEC", "--attack", "membership.lirx", "--db", "DB"],
     "unknown attack 'membership.lirx' (did you mean"),
    (["scan", "CALM", "--attack", "dos.load", "--db", "DB"], "accepted (harm of an outage is "),
    (["scan", "SPEC", "--attack", "dos.load", "--db", "DB"], "needs data ['endpoint']"),
    (["scan", "--resume", "nosuch", "--db", "DB"], "no run 'nosuch'"),
    (["scan", "SPEC", "--workers", "0"], "--workers"),
    (["report", "last", "--format", "pdf"], "'pdf' is not one of 'html', 'md', 'json'"),
    (["report", "nosuch", "--db", "DB"], "no run 'nosuch'"),
    (["runs", "show", "nosuch", "--db", "DB"], "no run 'nosuch'"),
    (["runs", "show"], "missing argument 'RUN_ID'"),
    (["runs", "diff", "a", "b", "--db", "DB"], "no run 'a'"),
    (["runs", "list", "--limit", "0", "--db", "DB"], "--limit"),
    (["demo", "run", "mortgage"], "'mortgage' is not one of 'chatbot', 'credit-scoring'"),
    (["demo", "build", "mortgage"], "'mortgage' is not one of"),
    (["keys", "create", "--db", "GW"], "missing option '--org'"),
    (["keys", "revoke", "--db", "GW"], "missing argument 'KEY_ID'"),
    (["audit", "verify", "--db", UNREACHABLE_PG], "127.0.0.1"),
    (["audit", "show", "--after", "x", "--db", "GW"], "--after"),
    (["feedback", "approve", "--db", "GW"], "missing argument 'FID'"),
    (["analyze", "TMP/missing.yaml"], "file not found"),
    (["analyze", "SPEC", "--format", "pdf"], "pdf"),
    (["types", "--format", "xml"], "xml"),
    (["attack", "extraction.equatoin", "--spec", "SPEC"], "did you mean 'extraction.equation'"),
    (["attack", "extraction.equation", "--spec", "TMP/missing.yaml"], "missing.yaml"),
    (["evidence", "--db", UNREACHABLE_PG, "-o", "TMP/e.md"], "127.0.0.1"),
    (["serve", "TMP/missing.yaml", "--db", "GW"], "missing.yaml"),
    (["serve", "demo", "--port", "0"], "--port"),
    (["datasets", "show", "german"], "unknown dataset 'german' (did you mean"),
    (["init", "--no-input", "--model-value", "huge", "-o", "TMP/s.yaml"], "has no organisation"),
    (["nosuchcommand"], "no such command"),
]


def _fill(argv: list[str], spec: Path, tmp: Path) -> list[str]:
    calm = spec.with_name("calm.yaml")  # an outage harms little: its denial of service accepted
    calm.write_text(spec.read_text("utf-8").replace(
        "harm_of_wrong_output: high}", "harm_of_wrong_output: high, harm_of_outage: negligible}"),
        encoding="utf-8")
    subs = {"SPEC": str(spec), "CALM": str(calm), "DB": str(tmp / "scan.db"), "GW": f"sqlite:///{tmp / 'gw.db'}",
            "TMP": str(tmp)}
    return [re.sub(r"\b(SPEC|CALM|DB|GW|TMP)\b", lambda m: subs[m.group(1)], a) for a in argv]


@pytest.mark.parametrize(("argv", "fragment"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_a_user_error_is_one_line_and_exit_2(
    argv: list[str], fragment: str, spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(_fill(argv, spec, tmp_path), capsys)
    assert code == 2, (out, err)
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: "), line
    assert fragment in line, line
    for noise in ("Traceback", "Value error", "sqlalche.me", "?;", "Usage:", "╭"):
        assert noise not in line, line


def test_an_internal_error_exits_4_with_the_traceback_in_a_log_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from finmlsec.store import Store

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug deep inside")

    monkeypatch.setattr(Store, "open", broken)
    monkeypatch.setenv("FINMLSEC_LOG_DIR", str(tmp_path / "logs"))
    code, _, err = run(["runs", "list"], capsys)
    assert code == 4
    line, = err.strip("\n").split("\n")
    assert line.startswith("internal error: RuntimeError: a bug deep inside")
    log = Path(re.search(r"the traceback is in (\S+);", line).group(1))  # type: ignore[union-attr]
    assert log.parent == tmp_path / "logs"
    text = log.read_text("utf-8")
    assert "Traceback (most recent call last)" in text and "raise RuntimeError" in text


def test_fail_on_alone_exits_1_and_a_clean_command_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["types"], capsys)
    assert code == 0 and "type" in out


def _walk(command: Any, path: str) -> list[tuple[str, Any]]:
    found = [(path, p) for p in command.params if p.name != "help"]
    for name, sub in getattr(command, "commands", {}).items():
        found += _walk(sub, f"{path} {name}")
    return found


def test_every_option_and_argument_has_help() -> None:
    missing = [f"{path} {p.name}" for path, p in _walk(build_command(), "finmlsec")
               if not (getattr(p, "help", None) or "").strip()]
    assert missing == []


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run([*argv, "--help"], capsys)
    assert code == 0, err
    return out


@pytest.mark.parametrize("argv", [["scan"], ["demo", "run"], ["serve"], ["runs", "list"],
                                  ["keys", "create"], ["evidence"]])
def test_help_shows_flags_as_flags_full_defaults_and_whole_names(
    argv: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(argv, capsys)
    assert "<bool>" not in text and "<str>" not in text and "list[str]" not in text
    assert "╭" not in text and "…" not in text
    if argv == ["demo", "run"]:
        assert "market-anomaly" in text  # a use-case name never broken mid-word
    if argv == ["serve"]:
        assert re.search(r"--log-level LOG_LEVEL\s+debug, info, warning or error\.\s+"
                         r"\[default:\s+warning\]", text)
    if argv == ["scan"]:
        assert re.search(r"--json\s+Print", text)  # a flag: no value shown


def test_runs_help_names_diff(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["runs"], capsys)
    assert "list, show, diff" in text and "compare" not in text.split("Commands:")[0]
    assert re.search(r"diff\s+Diff two scans", text)
