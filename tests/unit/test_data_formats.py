"""Every format's detection and conversion, every file type, column mapping, and the TRL forms."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from studio.data import FORMATS, detect_format, load_dataset_file, load_dataset_files, to_trl
from studio.errors import StudioError

USER, REPLY = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}
ROWS = {
    "alpaca": {"instruction": "hi", "input": "", "output": "hello", "system": "Be kind.", "history": [["a", "b"]]},
    "sharegpt": {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "hi"}, {"from": "function_call", "value": '{"name": "f"}'}, {"from": "observation", "value": "42"}, {"from": "gpt", "value": "hello"}]},
    "messages": {"messages": [USER, REPLY]},
    "prompt_completion": {"prompt": "hi", "completion": "hello"},
    "preference": {"prompt": "hi", "chosen": "hello", "rejected": "go away"},
    "kto": {"prompt": "hi", "completion": "hello", "label": True},
    "prompt_only": {"prompt": "hi"},
    "text": {"text": "hello"},
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_every_format_is_covered():
    assert set(ROWS) == set(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_detection_and_conversion(tmp_path, fmt):
    row = ROWS[fmt]
    assert detect_format(row) == fmt
    loaded = load_dataset_file(write_jsonl(tmp_path / "d.jsonl", [row]))
    assert loaded.format == fmt and not loaded.problems
    messages = loaded.conversations[0]["messages"]
    if fmt == "prompt_only":
        assert messages == [USER]
    elif fmt == "text":
        assert loaded.conversations[0]["text"] == "hello"
    else:
        assert messages[-1] == REPLY


def test_alpaca_system_history_and_sharegpt_tool_turns(tmp_path):
    alpaca = load_dataset_file(write_jsonl(tmp_path / "a.jsonl", [ROWS["alpaca"]])).conversations[0]["messages"]
    assert [m["role"] for m in alpaca] == ["system", "user", "assistant", "user", "assistant"]
    assert alpaca[1]["content"] == "a" and alpaca[3]["content"] == "hi"
    sharegpt = load_dataset_file(write_jsonl(tmp_path / "s.jsonl", [ROWS["sharegpt"]])).conversations[0]["messages"]
    assert [m["role"] for m in sharegpt] == ["system", "user", "assistant", "tool", "assistant"]


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": [USER], "chosen": [REPLY], "rejected": [{"role": "assistant", "content": "go away"}]},
        {"chosen": [USER, REPLY], "rejected": [USER, {"role": "assistant", "content": "go away"}]},
        {"conversations": [{"from": "human", "value": "hi"}], "chosen": {"from": "gpt", "value": "hello"}, "rejected": {"from": "gpt", "value": "go away"}},
    ],
    ids=["message-lists", "implicit-prompt", "sharegpt-style"],
)
def test_preference_variants_give_trl_pairs(tmp_path, row):
    loaded = load_dataset_file(write_jsonl(tmp_path / "p.jsonl", [row]))
    assert loaded.format == "preference"
    assert loaded.preference_rows() == [{"prompt": [USER], "chosen": [REPLY], "rejected": [{"role": "assistant", "content": "go away"}]}]


def test_trl_forms_for_each_trainer(tmp_path):
    pref = load_dataset_file(write_jsonl(tmp_path / "p.jsonl", [ROWS["preference"]]))
    assert pref.kto_rows() == [{"prompt": [USER], "completion": [REPLY], "label": True}, {"prompt": [USER], "completion": [{"role": "assistant", "content": "go away"}], "label": False}]
    assert pref.prompts() == [{"prompt": [USER]}]
    chat = load_dataset_file(write_jsonl(tmp_path / "m.jsonl", [ROWS["messages"]]))
    assert to_trl(chat, "prompt_completion") == [{"prompt": [USER], "completion": [REPLY]}]
    assert chat.prompts() == [{"prompt": [USER]}]
    assert to_trl(load_dataset_file(write_jsonl(tmp_path / "t.jsonl", [ROWS["text"]])), "text") == [{"text": "hello"}]
    with pytest.raises(StudioError, match="needs prompt/chosen/rejected"):
        chat.preference_rows()


def test_file_types_csv_tsv_parquet_text_json(tmp_path):
    (tmp_path / "d.csv").write_text('instruction,output\nhi,hello\n"two\nlines",ok\n')
    (tmp_path / "d.tsv").write_text("prompt\tcompletion\nhi\thello\n")
    pq.write_table(pa.Table.from_pylist([ROWS["messages"], ROWS["messages"]]), tmp_path / "d.parquet")
    (tmp_path / "d.txt").write_text("doc one\nstill one\n\ndoc two\n")
    (tmp_path / "d.json").write_text(json.dumps({"data": [ROWS["kto"]]}))
    expected = {"d.csv": ("alpaca", 2), "d.tsv": ("prompt_completion", 1), "d.parquet": ("messages", 2), "d.txt": ("text", 2), "d.json": ("kto", 1)}
    for name, (fmt, usable) in expected.items():
        loaded = load_dataset_file(tmp_path / name)
        assert (loaded.format, len(loaded.conversations)) == (fmt, usable), name
    assert load_dataset_file(tmp_path / "d.txt").conversations[0]["text"] == "doc one\nstill one"


def test_column_mapping_and_format_override(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "hi", "answer": "hello"}])
    with pytest.raises(StudioError, match="cannot tell the dataset format"):
        load_dataset_file(path)
    loaded = load_dataset_file(path, mapping="question=prompt, answer=completion")
    assert loaded.format == "prompt_completion" and loaded.conversations[0]["messages"] == [USER, REPLY]
    with pytest.raises(StudioError, match="no column"):
        load_dataset_file(path, mapping={"nope": "prompt"})
    # an override makes a file that looks like prompt_completion count as prompt_only
    forced = load_dataset_file(write_jsonl(tmp_path / "pc.jsonl", [ROWS["prompt_completion"]]), "prompt_only")
    assert forced.format == "prompt_only" and forced.prompts() == [{"prompt": [USER]}]


def test_multiple_files_load_as_one_dataset_and_name_the_file(tmp_path):
    first = write_jsonl(tmp_path / "one.jsonl", [ROWS["alpaca"]])
    second = write_jsonl(tmp_path / "two.jsonl", [{"instruction": "q", "output": ""}, {"instruction": "x", "output": "y"}])
    loaded = load_dataset_files([first, second])
    assert len(loaded.conversations) == 2
    assert [(p.file, p.row, p.line, p.field) for p in loaded.problems] == [("two.jsonl", 1, 1, "output")]
