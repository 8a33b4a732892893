"""Public formats as they come (tests/data/public): KTO labels, tool calls, placeholders, unused
columns, and the run-side guards (loss null when nothing trained, config keys). No model needed."""

from __future__ import annotations

import json

import pytest

from studio.config import RunConfig
from studio.data import load_dataset_file
from studio.data.formats import RowError, convert, detect_format, fill_placeholders, find_placeholders
from studio.data.inspect import inspect_paths
from studio.errors import StudioError
from tests.conftest import REPO

PUBLIC = REPO / "tests" / "data" / "public"


@pytest.mark.parametrize("name", ["kto_en_demo.json", "kto_tag_sharegpt.json"])
def test_kto_files_are_detected_and_keep_their_labels(name):
    loaded = load_dataset_file(PUBLIC / name)
    assert loaded.format == "kto"
    assert [e["label"] for e in loaded.conversations] == [True, False, True, False, True, False, True, False, True, True]
    assert all(e["completion"][-1]["role"] == "assistant" and e["prompt"][-1]["role"] == "user" for e in loaded.conversations)


def test_a_label_that_is_not_boolean_like_is_a_row_problem():
    loaded = load_dataset_file(PUBLIC / "kto_en_demo.json")
    (problem,) = loaded.problems
    assert (problem.row, problem.line, problem.field, problem.kind) == (11, 132, "label", "wrong type")
    assert "'maybe'" in problem.message and "true/false" in problem.message
    trl_style = {"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}], "label": "no"}
    assert detect_format(trl_style) == "kto" and convert(trl_style, "kto")["label"] is False
    with pytest.raises(RowError, match="boolean-like") as err:
        convert({**trl_style, "label": 2}, "kto")
    assert err.value.field == "label"


def test_tool_calls_keep_their_meaning():
    glaive = load_dataset_file(PUBLIC / "glaive_toolcall_demo.json")
    example = glaive.conversations[1]
    assert [m["role"] for m in example["messages"]] == ["user", "assistant", "tool", "assistant"]
    call = example["messages"][1]["tool_calls"][0]["function"]
    assert call == {"name": "convert_currency", "arguments": {"amount": 1000, "from_currency": "USD", "to_currency": "EUR"}}
    assert example["tools"][0]["function"]["name"] == "convert_currency"  # the JSON-string column, parsed
    openai = load_dataset_file(PUBLIC / "openai_tool_calls.jsonl").conversations[2]["messages"][1]
    assert openai["content"] == "Let me check both." and [c["function"]["arguments"] for c in openai["tool_calls"]] == [{"a": 17, "b": 23}, {"location": "Oslo, Norway"}]


def test_bad_tools_and_bad_calls_are_row_problems_with_row_line_field():
    (problem,) = load_dataset_file(PUBLIC / "glaive_toolcall_demo.json").problems
    assert (problem.row, problem.line, problem.field, problem.kind) == (5, 42, "tools", "invalid tools")
    assert "not valid JSON" in problem.message
    row = {"conversations": [{"from": "human", "value": "hi"}, {"from": "function_call", "value": "{name: oops}"}, {"from": "observation", "value": "1"}, {"from": "gpt", "value": "ok"}]}
    with pytest.raises(RowError) as err:
        convert(row, "sharegpt")
    assert err.value.field == "conversations[1].value" and err.value.kind == "invalid tool call"


def test_placeholders_by_the_documented_rule():
    text = "I am {{name}} by {{ author }}; hi {customer}, mail <SUPPORT_EMAIL>."
    assert find_placeholders(text) == ["{{name}}", "{{author}}", "{customer}", "<SUPPORT_EMAIL>"]
    not_placeholders = 'JSON {"topic": "x"} and {} and `{name}` and \\frac{a}{b}, x^{2}, ${total}, <br>, <EOS>\n```py\nf"{user}"\n```'
    assert find_placeholders(not_placeholders) == []
    filled = fill_placeholders({"output": text + " `{{name}}` stays"}, {"{{name}}": "Ada", "customer": "Bob"})
    assert filled["output"] == "I am Ada by {{ author }}; hi Bob, mail <SUPPORT_EMAIL>. `{{name}}` stays"


def test_inspect_reports_placeholders_labels_and_unused_columns(tmp_path):
    report = inspect_paths([PUBLIC / "identity.json"], model=None)
    assert report["placeholders"] == {"{{name}}": 8, "{{author}}": 7, "{customer}": 2, "<SUPPORT_EMAIL>": 1}
    assert report["warnings_by_reason"]["unresolved placeholder"] == 8
    fields = {(p["row"], p["field"]) for p in report["problems"] if p["kind"] == "unresolved placeholder"}
    assert (8, "instruction") in fields and (8, "output") in fields
    assert inspect_paths([PUBLIC / "kto_tag_sharegpt.json"], model=None)["kto_labels"] == {"desirable": 6, "undesirable": 4}
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"instruction": "a", "output": "b", "id": 7, "source": "web"}) + "\n")
    assert inspect_paths([extra], model=None)["not_used"] == ["id", "source"]


def test_a_saved_version_keeps_tools_and_fills_placeholders(studio_home):
    from studio.data.versions import prepare

    glaive = load_dataset_file(PUBLIC / "glaive_toolcall_demo.json")
    saved = prepare([PUBLIC / "glaive_toolcall_demo.json"], "tools", eval_fraction=0)
    assert load_dataset_file(saved.path).conversations == glaive.conversations  # exact round trip through Parquet
    filled = prepare([PUBLIC / "identity.json"], "identity", eval_fraction=0, fill={"name": "Ada", "author": "Acme"})
    report = inspect_paths([filled.path], model=None)
    assert report["placeholders"] == {"{customer}": 2, "<SUPPORT_EMAIL>": 1}
    assert filled.manifest["placeholders_filled"] == {"name": "Ada", "author": "Acme"}


def test_sft_methods_accept_kto_data_but_not_without_a_desirable_row(tmp_path):
    from studio.methods import check_data

    check_data(RunConfig(method="lora", data=str(PUBLIC / "kto_en_demo.json")))
    rows = [r for r in json.loads((PUBLIC / "kto_en_demo.json").read_text()) if r["label"] is False]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows))
    with pytest.raises(StudioError, match="desirable"):
        check_data(RunConfig(method="lora", data=str(bad)))


def test_loss_on_and_truncation_side_are_checked():
    assert RunConfig.from_dict({"data": "x.jsonl", "loss_on": "last_reply", "truncation_side": "left"}).truncation_side == "left"
    with pytest.raises(StudioError, match="loss_on"):
        RunConfig.from_dict({"data": "x.jsonl", "loss_on": "everything"})
    with pytest.raises(StudioError, match="truncation_side"):
        RunConfig.from_dict({"data": "x.jsonl", "truncation_side": "middle"})


def test_a_log_with_no_trained_token_is_null_with_a_warning_not_zero(tmp_path):
    from types import SimpleNamespace

    from studio.jobs.metrics import read_metrics
    from studio.methods.callbacks import MetricsWriter

    writer = MetricsWriter(tmp_path)
    state = SimpleNamespace(global_step=3, epoch=1.0, is_world_process_zero=True, max_steps=5)
    writer.on_log(None, state, SimpleNamespace(should_training_stop=False), logs={"loss": None, "trained_tokens": 0, "learning_rate": 1e-3})
    rows = read_metrics(tmp_path / "metrics.jsonl")
    logged = next(r for r in rows if "trained_tokens" in r)
    assert logged["loss"] is None and logged["trained_tokens"] == 0
    assert any("no token carried loss" in r.get("warning", "") for r in rows)


def test_data_tab_lists_the_placeholders_and_fills_them_on_save(studio_home):
    from components import data_tab

    status, report, *_, state, _ = data_tab.load_dataset(None, str(PUBLIC / "identity.json"), data_tab.AUTO, "")
    assert "Unresolved placeholders" in report and "`{{name}}` × 8" in report
    assert "18 unresolved placeholder(s) ({{name}}, {{author}}, {customer}, &lt;SUPPORT_EMAIL&gt;)" in status and "studio-warn" in status  # not a green "Ready"
    assert data_tab.fill_template(state).splitlines() == ["name=", "author=", "customer=", "SUPPORT_EMAIL="]
    saved = data_tab.save_version(state, None, "ident", 0.0, 42, 0.0, "embedded", True, False, 0.85, True, False, None, None, "name=Ada\nauthor=Acme\ncustomer=")
    assert "Saved ident v1" in saved[0]
    assert "Still unresolved (no value given): {customer} × 2, &lt;SUPPORT_EMAIL&gt; × 1" in saved[0] and "studio-warn" in saved[0]
    report = inspect_paths([saved[3]], model=None)
    assert report["placeholders"] == {"{customer}": 2, "<SUPPORT_EMAIL>": 1}  # an empty value fills nothing
