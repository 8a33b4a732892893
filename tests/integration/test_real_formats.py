"""Public-format datasets train what they say (issue 13, data half), on the embedded model's tokenizer
and chat template: tool calls rendered and trained, cut-off answers counted and dropped, KTO rows
filtered for SFT. Files: tests/data/public/ (LLaMA-Factory / OpenAI / TRL formats as they come)."""

from __future__ import annotations

import copy
import json

import pytest

from studio.data.cli import main as data_cli
from studio.data.profile import tokenizer_for
from studio.data.render import render
from studio.errors import StudioError
from tests.conftest import REPO, write_yaml

pytestmark = pytest.mark.integration

PUBLIC = REPO / "tests" / "data" / "public"
GLAIVE = PUBLIC / "glaive_toolcall_demo.json"


def cli_json(capsys, *argv) -> dict:
    assert data_cli(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_tool_call_render_has_the_schema_and_trains_the_call(capsys):
    row = json.loads(GLAIVE.read_text())[0]
    name = json.loads(row["tools"])[0]["name"]  # the tools column is a JSON string, as LLaMA-Factory ships it
    out = cli_json(capsys, "render", str(GLAIVE), "--row", "0", "--json")
    assert set(out) >= {"text", "trained_text", "tools_included"}
    assert out["tools_included"] is True and name in out["text"]
    assert '"description": "Search for recipes based on ingredients"' in out["text"]  # the schema, not just the name
    call = json.loads(row["conversations"][3]["value"])
    assert json.dumps({"name": call["name"], "arguments": call["arguments"]}) in out["trained_text"]
    # every assistant turn trains by default (the greeting, the call, the answer); the tool result does not
    assert "Of course!" in out["trained_text"] and "I found a recipe" in out["trained_text"]
    assert "Chicken and Bell Pepper Stir Fry\", \"ingredients\"" not in out["trained_text"]
    assert out["tools_fallback"] is True  # SmolLM2's template ignores `tools`: the studio's system block
    last = cli_json(capsys, "render", str(GLAIVE), "--row", "0", "--loss-on", "last_reply", "--json")
    assert name not in last["trained_text"] and last["trained_text"].startswith("I found a recipe")


def test_openai_tool_calls_train_every_call_and_not_the_results(capsys):
    out = cli_json(capsys, "render", str(PUBLIC / "openai_tool_calls.jsonl"), "--row", "2", "--json")
    trained = out["trained_text"]
    assert '"name": "multiply", "arguments": {"a": 17, "b": 23}' in trained
    assert '"name": "get_current_weather"' in trained and "Let me check both." in trained
    assert "<|im_start|>tool\n391<|im_end|>" in out["text"] and "391<|im_end|>" not in trained.split("17 times 23 is 391")[0]


def test_a_template_with_tool_support_gets_tools_and_calls_structured():
    tokenizer = copy.deepcopy(tokenizer_for("embedded"))
    tokenizer.chat_template = (  # a minimal Hermes-style template that renders `tools` and `tool_calls`
        "{% if tools %}<|im_start|>system\nTOOLS:{% for t in tools %} {{ t.function.name }}{% endfor %}<|im_end|>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "{% if m.tool_calls %}{% for c in m.tool_calls %}CALL {{ c.function.name }} {{ c.function.arguments | tojson }}{% endfor %}{% endif %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    from studio.data import load_dataset_file

    example = load_dataset_file(GLAIVE).conversations[1]
    rendered = render(example, tokenizer)
    assert not rendered.tools_fallback and rendered.tools_included
    assert "TOOLS: convert_currency" in rendered.text and "# Tools" not in rendered.text
    assert 'CALL convert_currency {"amount": 1000' in rendered.trained_text


def test_a_template_that_rejects_role_tool_gets_results_as_user_turns():
    tokenizer = copy.deepcopy(tokenizer_for("embedded"))
    tokenizer.chat_template = (  # alternation-strict, like Llama-2/Mistral templates: no role "tool"
        "{% for m in messages %}{% if m.role not in ['system', 'user', 'assistant'] %}{{ raise_exception('unknown role') }}{% endif %}"
        "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    from studio.data import load_dataset_file

    example = load_dataset_file(PUBLIC / "openai_tool_calls.jsonl").conversations[2]
    rendered = render(example, tokenizer)
    assert rendered.tools_fallback
    assert "<|im_start|>user\n<tool_response>\n391\n</tool_response>\n<tool_response>" in rendered.text  # both results, one turn
    assert '"name": "multiply"' in rendered.trained_text and "391" not in rendered.trained_text.split("17 times")[0]


def test_inspect_counts_cut_answers_placeholders_and_unused_columns(capsys):
    long = str(PUBLIC / "long_answer_past_cut.jsonl")
    right = cli_json(capsys, "inspect", long, "--max-length", "256", "--json")
    assert right["warnings_by_reason"]["answer cut off"] == 1 and right["warnings_by_reason"]["answer partly cut"] == 1
    assert right["cut"]["entirely"] == 1 and right["cut"]["partly"] == 1
    cut_rows = [p["row"] for p in right["problems"] if p["kind"] == "answer cut off"]
    assert cut_rows == [1]
    left = cli_json(capsys, "inspect", long, "--max-length", "256", "--truncation-side", "left", "--json")
    assert left["warnings_by_reason"]["answer cut off"] == 0
    identity = cli_json(capsys, "inspect", str(PUBLIC / "identity.json"), "--json")
    assert identity["placeholders"] == {"{{name}}": 8, "{{author}}": 7, "{customer}": 2, "<SUPPORT_EMAIL>": 1}
    assert identity["warnings_by_reason"]["unresolved placeholder"] == 8  # rows 1-8; rows 9-10 hold code, JSON and LaTeX braces
    openai = cli_json(capsys, "inspect", str(PUBLIC / "openai_tool_calls.jsonl"), "--json")
    assert openai["not_used"] == ["parallel_tool_calls"]
    assert data_cli(["inspect", str(PUBLIC / "openai_tool_calls.jsonl"), "--no-tokens"]) == 0
    assert "not used: parallel_tool_calls" in capsys.readouterr().out


def _build(tmp_path, data, **changes):
    from studio.config import RunConfig
    from studio.methods.context import RunContext
    from studio.methods.sft import build_dataset

    cfg = RunConfig(data=str(data), **changes)
    lines = []
    ctx = RunContext(tmp_path, cfg=cfg)
    ctx.log = lines.append
    train, _ = build_dataset(cfg, ctx, tokenizer_for("embedded"))
    return train, "\n".join(lines)


@pytest.mark.parametrize("name", ["kto_en_demo.json", "kto_tag_sharegpt.json"])
def test_sft_on_kto_data_trains_only_the_desirable_answers(studio_home, tmp_path, name):
    train, log = _build(tmp_path, PUBLIC / name)
    assert len(train) == 6 and "dropped 4 undesirable" in log
    tokenizer = tokenizer_for("embedded")
    trained = [tokenizer.decode([t for t in row["labels"] if t != -100]) for row in train]
    good, bad = [], []
    for row in json.loads((PUBLIC / name).read_text()):
        label = str(row.get("label", row.get("kto_tag"))).lower()
        reply = row["messages"][-1]["content"] if "messages" in row else row["conversations"][-1]["value"]
        (good if label in ("true", "1", "yes") else bad if label in ("false", "0", "no") else []).append(reply)
    assert len(good) == 6 and len(bad) == 4
    assert not any(answer in text for answer in bad for text in trained)
    assert all(any(answer in text for text in trained) for answer in good)


def test_all_rows_cut_fails_before_training(studio_home, tmp_path):
    only_long = tmp_path / "long.jsonl"
    only_long.write_text((PUBLIC / "long_answer_past_cut.jsonl").read_text().splitlines()[0] + "\n")
    with pytest.raises(StudioError, match="no training row is left.*past max_length 128"):
        _build(tmp_path, only_long, max_length=128)
    train, log = _build(tmp_path, only_long, max_length=128, truncation_side="left")
    assert len(train) == 1 and len(train[0]["input_ids"]) == 128 and "dropped" not in log


def test_a_run_on_a_cut_row_logs_the_drop_and_trains_the_rest(studio_home, tmp_path):
    from studio.jobs import registry
    from studio.jobs.metrics import read_metrics
    from studio.jobs.train import execute

    config = write_yaml(
        tmp_path / "cut.yaml", model="embedded", method="lora", data=str(PUBLIC / "long_answer_past_cut.jsonl"),
        max_steps=1, max_length=256, per_device_train_batch_size=5, learning_rate=1e-3, lora_r=8, lora_alpha=16, save_steps=100,
    )
    run_dir = execute(config)
    (record,) = registry.list_runs()
    assert record.status == "completed", record.message
    log = (run_dir / "log.txt").read_text()
    assert "dropped 1 row(s) whose whole trained part lies past max_length 256" in log
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]
    assert rows and rows[0]["loss"] > 0 and rows[0]["trained_tokens"] > 0
