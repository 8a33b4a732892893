import json

import pytest

from studio.data import import_file, load_dataset_file
from studio.errors import StudioError
from tests.conftest import DEMO_DATA


def write_lines(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_demo_dataset_is_alpaca_and_fully_usable():
    loaded = load_dataset_file(DEMO_DATA)
    assert loaded.format == "alpaca"
    assert len(loaded.conversations) == len(loaded.rows) >= 100
    assert not loaded.problems
    first = loaded.conversations[0]["messages"]
    assert [m["role"] for m in first] == ["user", "assistant"]
    assert json.loads(first[1]["content"]).keys() == {"topic", "answer"}


@pytest.mark.parametrize(
    "row, fmt",
    [
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}, "messages"),
        ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}, "sharegpt"),
        ({"prompt": "hi", "completion": "hello"}, "prompt_completion"),
        ({"instruction": "hi", "input": "", "output": "hello"}, "alpaca"),
    ],
)
def test_formats_convert_to_messages(tmp_path, row, fmt):
    loaded = load_dataset_file(write_lines(tmp_path / "d.jsonl", [row, row]))
    assert loaded.format == fmt
    assert loaded.conversations[0]["messages"][-1] == {"role": "assistant", "content": "hello"}


def test_bad_rows_are_reported_with_row_line_and_field_and_good_rows_kept(tmp_path):
    good = {"instruction": "q", "output": "a"}
    path = write_lines(
        tmp_path / "d.jsonl",
        [good, '{"instruction": "q", "output": ', {"instruction": "q", "output": ""}, {"instruction": 3, "output": "a"}, good],
    )
    loaded = load_dataset_file(path)
    assert len(loaded.conversations) == 2
    found = {(p.row, p.line, p.field) for p in loaded.problems if p.severity == "error"}
    assert found == {(2, 2, "(line)"), (3, 3, "output"), (4, 4, "instruction")}
    warnings = [(p.row, p.kind, p.message) for p in loaded.problems if p.severity == "warning"]
    assert warnings == [(5, "duplicate", "duplicate of row 1")]
    assert loaded.dropped_by_reason == {"broken JSON": 1, "empty response": 1, "wrong type": 1}
    assert "broken JSON" in str(loaded.problems[0])


def test_wrong_turn_order_is_caught(tmp_path):
    row = {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}
    ok = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "c"}]}
    loaded = load_dataset_file(write_lines(tmp_path / "d.jsonl", [row, ok]))
    assert loaded.problems[0].row == 1 and "alternate" in loaded.problems[0].message


@pytest.mark.parametrize(
    "content, expected",
    [(b"", "empty"), (b"   \n", "empty"), (b'{"a": 1}\n', "cannot tell the dataset format"), (b"\xff\xfe\x00bad", "not valid UTF-8")],
)
def test_unusable_files_get_a_clear_message(tmp_path, content, expected):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(StudioError) as info:
        load_dataset_file(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(StudioError, match="file not found"):
        load_dataset_file(tmp_path / "nope.jsonl")


def test_import_copies_and_never_modifies_the_original(tmp_path, studio_home):
    original = write_lines(tmp_path / "mine.jsonl", [{"instruction": "q", "output": "a"}])
    before = original.read_bytes()
    stored, loaded = import_file(original)
    assert original.read_bytes() == before
    assert stored.read_bytes() == before
    assert stored.is_relative_to(studio_home)
    assert (stored.parent / "provenance.json").is_file()
    again, _ = import_file(original)
    assert again == stored


def test_csv_with_a_bare_carriage_return_gets_a_message_not_a_traceback(tmp_path):
    """Found by the fuzz test (b'\\r\\x00'): csv.Error must become a StudioError naming the line."""
    path = tmp_path / "bad.csv"
    path.write_bytes(b"instruction,output\nfine,row\n\"a\"\rb,c\n")
    with pytest.raises(StudioError) as caught:
        load_dataset_file(path)
    assert "cannot be read as CSV" in str(caught.value) and "line" in caught.value.where
