from __future__ import annotations

import json

import pytest

from finmlsec.cli.main import main
from finmlsec.datasets import DATASETS


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_list_json_covers_every_registered_dataset(capsys) -> None:
    code, out, _ = run(capsys, "datasets", "list", "--json")
    assert code == 0
    rows = {d["name"]: d for d in json.loads(out)}
    assert set(rows) == set(DATASETS.names()) == {
        "german_credit", "ocr_digits", "bank_intents", "card_fraud", "market_anomalies"
    }
    assert rows["german_credit"]["rows"] == 1000 and rows["german_credit"]["positive_rate"] == 0.7
    assert rows["card_fraud"]["params"] == {"n_rows": 50000, "seed": 0, "fraud_rate": 0.002}
    assert rows["bank_intents"]["kind"] == "text" and len(rows["bank_intents"]["classes"]) == 18
    assert all(d["license"] and d["source"] for d in rows.values())


def test_list_text(capsys) -> None:
    code, out, _ = run(capsys, "datasets", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "kind", "task", "rows", "classes", "license"]
    assert any(line.split()[:4] == ["german_credit", "tabular", "classification", "1,000"]
               for line in lines)


def test_show_text_has_schema_source_license(capsys) -> None:
    code, out, _ = run(capsys, "datasets", "show", "german_credit")
    assert code == 0
    assert "1,000 rows" in out and "bad: 300, good: 700" in out
    assert "CC BY 4.0" in out and "Hofmann" in out
    age = next(line for line in out.splitlines() if line.startswith("age "))
    assert "[18, 75]" in age and "immutable" in age and "monotone:increasing" in age
    purpose = next(line for line in out.splitlines() if line.startswith("purpose "))
    assert "actionable" in purpose


def test_show_json_with_params(capsys) -> None:
    code, out, _ = run(capsys, "datasets", "show", "card_fraud", "-p", "n_rows=2000",
                       "--param", "seed=4", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["rows"] == 2000 and info["params"]["seed"] == 4
    assert info["class_counts"]["fraud"] == 4
    names = [f["name"] for f in info["schema"]["features"]]
    assert names[0] == "amount" and "tx_last_hour" in names
    assert info["extra"]["seed"] == 4


def test_show_text_corpus_without_schema(capsys) -> None:
    code, out, _ = run(capsys, "datasets", "show", "bank_intents")
    assert code == 0
    assert "written for the finmlsec project" in out and "schema      none" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["datasets", "show", "german"], "unknown dataset 'german' (did you mean 'german_credit'?)"),
        (["datasets", "show", "card_fraud", "-p", "rows=5"],
         "dataset 'card_fraud' has no parameter 'rows'; its parameters are: n_rows, seed, fraud_rate"),
        (["datasets", "show", "card_fraud", "-p", "n_rows"], "must look like KEY=VALUE"),
        (["datasets", "show", "card_fraud", "-p", "n_rows=5"],
         "The 'n_rows' parameter of card_fraud must be an int in [1000, 20000000]. Got 5 instead."),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_show_head_rows(capsys) -> None:
    code, out, _ = run(capsys, "datasets", "show", "german_credit", "--head", "2", "--json")
    assert code == 0
    head = json.loads(out)["head"]
    assert len(head) == 2
    assert head[0]["age"] == 67 and head[0]["credit_amount"] == 1169 and head[0]["label"] == "good"
    assert head[1]["label"] == "bad"
    code, out, _ = run(capsys, "datasets", "show", "bank_intents", "--head", "3")
    assert code == 0
    tail = out.splitlines()[-5:]
    assert tail[0].split() == ["text", "label"] and all(line.endswith("check_balance") for line in tail[2:])
