"""The malformed-file corpus (tests/data/bad/, made by tests/data/make_bad_corpus.py): each file's
problems are reported at the exact row, line and field; good rows stay usable; files with nothing
usable fail with one line that names the file."""

import json
from pathlib import Path

import pytest

from studio.data import load_dataset_file
from studio.data.cli import main as data_cli
from studio.errors import StudioError

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
EXPECTED = json.loads((BAD / "expected.json").read_text())


def test_the_corpus_is_big_enough():
    assert len(EXPECTED["problems"]) + len(EXPECTED["file_errors"]) >= 30
    assert all((BAD / name).is_file() for name in [*EXPECTED["problems"], *EXPECTED["file_errors"]])


@pytest.mark.parametrize("name", sorted(EXPECTED["problems"]))
def test_problem_is_reported_at_row_line_and_field(name):
    loaded = load_dataset_file(BAD / name)
    found = [[p.row, p.line, p.field, p.kind, p.severity] for p in loaded.problems]
    assert found == EXPECTED["problems"][name]
    errors = sum(1 for p in loaded.problems if p.severity == "error")
    assert len(loaded.conversations) == len(loaded.rows) - errors  # every good row stays usable
    assert loaded.dropped == errors and sum(loaded.dropped_by_reason.values()) == errors


@pytest.mark.parametrize("name", sorted(EXPECTED["file_errors"]))
def test_unusable_file_gets_one_clear_line(name):
    with pytest.raises(StudioError) as info:
        load_dataset_file(BAD / name)
    message = str(info.value)
    assert "\n" not in message and str(BAD / name) in message
    for needle in EXPECTED["file_errors"][name]:
        assert needle in message


def test_cli_inspect_json_lists_the_same_problems(capsys):
    assert data_cli(["inspect", str(BAD / "csv_missing_cell.csv"), "--json", "--no-tokens"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "alpaca" and report["rows"] == 3 and report["valid_rows"] == 2
    assert [(p["row"], p["line"], p["field"]) for p in report["problems"]] == [(2, 3, "(line)")]
    assert report["dropped_by_reason"] == {"wrong column count": 1}
    assert {"format", "rows", "valid_rows", "problems", "token_stats"} <= set(report)
