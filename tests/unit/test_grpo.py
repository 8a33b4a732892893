"""GRPO without a model: its data (prompts + references), plot panels, completions table, advisor and estimator terms."""

from __future__ import annotations

import json
from collections import deque

import pytest

from studio.advisor import pick_method
from studio.config import RunConfig
from studio.data import load_dataset_file
from studio.errors import StudioError
from studio.estimator import Setup, estimate, load_architecture, memory
from studio.methods import check_data
from studio.methods.grpo import cut_flags, drop_empty_terminated_lengths, last_rewards, read_completions, read_rows, reference_notes, write_completions
from studio.plots import completions_table, metrics_figure, present_panels
from studio.rewards import build_reward_funcs
from tests.conftest import DEMO_DATA, REPO

PROMPTS = REPO / "assets" / "demo" / "prompts.jsonl"
PUBLIC = REPO / "tests" / "data" / "public"


def as_completions(*texts: str) -> list[list[dict]]:
    """Completions as TRL hands them to reward functions for conversational prompts."""
    return [[{"role": "assistant", "content": t}] for t in texts]


def test_rows_carry_the_reference_of_each_format(tmp_path):
    rows = read_rows(DEMO_DATA)  # alpaca: the reply is the reference
    assert rows[0] == {"prompt": [{"role": "user", "content": "What is the capital of France?"}], "reference": '{"topic": "geography", "answer": "Paris"}'}
    assert all(r["reference"] is None for r in read_rows(PROMPTS))
    gsm = tmp_path / "gsm.jsonl"  # prompt-only rows with their answer in a column of their own
    gsm.write_text(json.dumps({"prompt": "What is 6 x 7?", "answer": "#### 42"}) + "\n" + json.dumps({"prompt": "Name a colour."}) + "\n")
    assert [r["reference"] for r in read_rows(gsm)] == ["#### 42", None]
    kto = tmp_path / "kto.jsonl"
    kto.write_text(json.dumps({"prompt": "Hi", "completion": "Hello!", "label": True}) + "\n" + json.dumps({"prompt": "Hey", "completion": "Go away.", "label": False}) + "\n")
    assert [r["reference"] for r in read_rows(kto)] == ["Hello!", None]  # an undesirable answer is no reference


def test_alpaca_input_joins_the_prompt_and_its_output_is_the_reference():
    rows = read_rows(PUBLIC / "alpaca_data_excerpt.json")  # rows as Stanford Alpaca's alpaca_data.json has them
    assert rows[0] == {"prompt": [{"role": "user", "content": "Give three tips for staying healthy."}], "reference": rows[0]["reference"]}  # empty input: nothing added
    odd, celsius = rows[1], rows[3]
    assert odd == {"prompt": [{"role": "user", "content": "Identify the odd one out.\n\nTwitter, Instagram, Telegram"}], "reference": "Telegram"}
    assert celsius["prompt"][0]["content"].endswith("\n\nTemperature in Celsius: 15") and celsius["reference"] == "Temperature in Fahrenheit: 59"
    (exact, numeric), _, _ = build_reward_funcs([{"type": "exact"}, {"type": "numeric"}])
    # TRL's call: the prompts, the completions and the dataset's `reference` column, one item per completion
    assert exact([odd["prompt"]] * 3, as_completions("telegram.", "Twitter", "Telegram is the odd one"), reference=[odd["reference"]] * 3) == [1.0, 0.0, 0.0]
    assert numeric([celsius["prompt"]] * 3, as_completions("59 °F", "It is 15 °C.", "no idea"), reference=[celsius["reference"]] * 3) == [1.0, 0.0, 0.0]
    # real instruction data mixes numeric and prose answers: the run says how many prompts each reward cannot score
    cfg = RunConfig.from_dict({"method": "grpo", "data": str(PUBLIC / "alpaca_data_excerpt.json"), "rewards": [{"type": "exact"}, {"type": "numeric"}]})
    assert reference_notes(cfg, rows) == ["rewards[1] (numeric): 2 of 6 train prompts have no number in their reference answer; their completions get no numeric reward (left out of its mean, not 0)"]
    assert numeric([odd["prompt"]], as_completions("3"), reference=[odd["reference"]]) == [None]


def test_sharegpt_multi_turn_prompt_is_every_turn_before_the_last_assistant_reply(tmp_path):
    chat = tmp_path / "sharegpt.json"  # sharegpt as LLaMA-Factory reads it: conversations of from/value, optional system
    chat.write_text(json.dumps([{"system": "You are a maths tutor.", "conversations": [
        {"from": "human", "value": "I have 3 apples and buy 4 more. How many now?"}, {"from": "gpt", "value": "You have 7 apples."},
        {"from": "human", "value": "And if I eat 2 of them?"}, {"from": "gpt", "value": "Then 5 apples are left."}]}]))
    (row,) = read_rows(chat)
    assert [m["role"] for m in row["prompt"]] == ["system", "user", "assistant", "user"]
    assert row["prompt"][2]["content"] == "You have 7 apples." and row["reference"] == "Then 5 apples are left."
    (numeric,), _, _ = build_reward_funcs([{"type": "numeric"}])
    assert numeric([row["prompt"]] * 2, as_completions("5", "7"), reference=[row["reference"]] * 2) == [1.0, 0.0]  # the last reply's number, not an earlier turn's

    # a public sharegpt file with tool calls (LLaMA-Factory's glaive demo): the reference is the last gpt turn,
    # the prompt every turn before it, the function calls and observations included
    loaded = load_dataset_file(PUBLIC / "glaive_toolcall_demo.json")  # its last row's tools are not valid JSON: dropped, reported
    raw = json.loads((PUBLIC / "glaive_toolcall_demo.json").read_text())
    rows = read_rows(loaded.path, loaded)
    assert len(rows) == len(loaded.kept) == 4
    for row, source in zip(rows, [raw[i] for i in loaded.kept]):
        turns = source["conversations"]
        assert row["reference"] == turns[-1]["value"]
        assert [m["role"] for m in row["prompt"]] == [{"human": "user", "gpt": "assistant", "function_call": "assistant", "observation": "tool"}[t["from"]] for t in turns[:-1]]

    # what the policy sees: SmolLM2's template renders neither tools nor tool calls, so the studio's fallback (as SFT
    # trains): the row's schemas in a system block, a call as <tool_call> text; it renders role "tool" as it is
    from studio import models
    from studio.methods.grpo import templated

    prompt = templated(rows[0], models.load_tokenizer(models.resolve("embedded")))["prompt"]
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user", "assistant", "tool"]
    assert "<tools>" in prompt[0]["content"] and "search_recipes" in prompt[0]["content"]
    assert prompt[4]["content"].startswith("<tool_call>") and '"search_recipes"' in prompt[4]["content"]
    assert prompt[5]["content"] == rows[0]["prompt"][4]["content"] and "tool_calls" not in prompt[4]
    assert templated(read_rows(chat)[0], models.load_tokenizer(models.resolve("embedded")))["prompt"] == read_rows(chat)[0]["prompt"]  # no tools: unchanged


def test_a_reward_model_reward_must_name_a_reward_run(tmp_path, studio_home, monkeypatch):
    missing = {"method": "grpo", "data": str(DEMO_DATA), "rewards": [{"type": "json_valid"}, {"type": "reward_model", "run": "no-such-run"}]}
    with pytest.raises(StudioError, match=r"no reward model found at 'no-such-run'") as caught:
        check_data(RunConfig.from_dict(missing))
    assert "rewards[1] (reward_model)" in str(caught.value.where)
    lora = tmp_path / "lora_run" / "adapter"  # a LoRA run's causal-LM adapter: under a score head it would score at random
    lora.mkdir(parents=True)
    (lora / "adapter_config.json").write_text(json.dumps({"task_type": "CAUSAL_LM", "peft_type": "LORA"}))
    with pytest.raises(StudioError, match="holds a CAUSAL_LM adapter, not a reward model"):
        check_data(RunConfig.from_dict({**missing, "rewards": [{"type": "reward_model", "run": str(lora.parent)}]}))
    reward = tmp_path / "rm_run"  # a reward run: its reward_model/ folder and the model its config.yaml names
    (reward / "reward_model").mkdir(parents=True)
    (reward / "reward_model" / "adapter_config.json").write_text(json.dumps({"task_type": "SEQ_CLS", "peft_type": "LORA"}))
    (reward / "config.yaml").write_text("method: reward\nmodel: some/other-base\ndata: pairs.jsonl\n")
    check_data(RunConfig.from_dict({**missing, "rewards": [{"type": "reward_model", "run": str(reward)}]}))
    from studio.methods.common import find_reward_model

    assert find_reward_model(str(reward)) == (reward / "reward_model", "some/other-base")

    # served beyond this machine, a reward run named by folder is confined like every other path (a run id is no path)
    from studio.paths import ALLOW_ENV, CONFINE_ENV, confine_config

    monkeypatch.setenv(CONFINE_ENV, "1")
    monkeypatch.setenv(ALLOW_ENV, str(studio_home))
    confine_config(RunConfig.from_dict({**missing, "rewards": [{"type": "reward_model", "run": "20261130-155759-reward-pairs"}]}))
    with pytest.raises(StudioError, match=r"^rewards\[0\]\.run: .* outside the folders"):
        confine_config(RunConfig.from_dict({**missing, "rewards": [{"type": "reward_model", "run": str(reward)}]}))


def test_exact_reward_on_prompts_without_references_is_refused_before_training():
    cfg = RunConfig.from_dict({"method": "grpo", "data": str(PROMPTS), "rewards": [{"type": "json_valid"}, {"type": "numeric"}]})
    with pytest.raises(StudioError, match=r"rewards\[1\] \(numeric\) compares with a reference answer, but no row of the data has one"):
        check_data(cfg)
    check_data(RunConfig.from_dict({"method": "grpo", "data": str(DEMO_DATA), "rewards": [{"type": "exact"}]}))


def test_text_data_is_refused(tmp_path):
    text = tmp_path / "docs.jsonl"
    text.write_text(json.dumps({"text": "A document."}) + "\n")
    with pytest.raises(StudioError, match="raw text, which has no prompts"):
        check_data(RunConfig.from_dict({"method": "grpo", "data": str(text), "rewards": [{"type": "json_valid"}]}))


def test_reward_panels_one_series_per_function():
    rows = [{"step": s, "reward": 0.5 * s, "rewards/json_valid/mean": 0.1 * s, "rewards/format/mean": 0.2 * s, "rewards/format/std": 0.1,
             "kl": 0.01 * s, "completions/mean_length": 20 - s} for s in (1, 2, 3)]
    rows.append({"step": 2, "time": 0, "warning": "reward 'x' raised KeyError: k", "kind": "reward_error"})
    panels = dict(present_panels(rows))
    assert panels["GRPO reward per function (mean)"] == ["rewards/format/mean", "rewards/json_valid/mean"]
    assert panels["GRPO total reward (weighted)"] == ["reward"]
    assert panels["KL to the reference"] == ["kl"]
    assert panels["Completion length (tokens)"] == ["completions/mean_length"]
    names = {trace["name"] for trace in metrics_figure(rows).to_dict()["data"]}
    assert {"rewards/format/mean", "rewards/json_valid/mean", "reward", "kl", "completions/mean_length"} <= names
    # a DPO run's reward keys do not open the GRPO panel
    assert "GRPO reward per function (mean)" not in dict(present_panels([{"step": 1, "rewards/chosen": 1.0, "rewards/margins": 0.5}]))


def test_completions_table_rows(tmp_path):
    logs = {"prompt": deque(["<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"] * 2),
            "completion": deque(['{"answer": "4"}', "four"]), "advantages": deque([0.7, -0.7]),
            "rewards": {"json_valid": deque([1.0, 0.0]), "regex": deque([1.0, float("nan")])},
            "extra": {"cut": deque([False, True])}}  # StudioGRPOTrainer logs it through TRL's extra columns
    path = tmp_path / "completions.jsonl"
    write_completions(path, 3, logs, ["json_valid", "regex"], [1.0, 0.5])
    write_completions(path, 4, logs, ["json_valid", "regex"], [1.0, 0.5])
    rows = read_completions(tmp_path, last_steps=1)
    assert [r["step"] for r in rows] == [4, 4]
    assert rows[0] == {"step": 4, "prompt": "What is 2+2?", "completion": '{"answer": "4"}', "cut": False, "rewards": {"json_valid": 1.0, "regex": 1.0},
                       "total": 1.5, "advantage": 0.7}
    assert rows[1]["cut"] is True
    assert rows[1]["rewards"] == {"json_valid": 0.0, "regex": None} and rows[1]["total"] == 0.0
    logs["prompt"] = deque(["system\nYou are helpful.\nuser\nWhat is 3+3?\nAnswer in JSON.\nassistant\n"] * 2)  # as TRL decodes it
    write_completions(path, 5, logs, ["json_valid", "regex"], [1.0, 0.5])
    assert read_completions(tmp_path, last_steps=1)[0]["prompt"] == "What is 3+3?\nAnswer in JSON."
    logs["rewards"] = {"json_valid": deque([1.0, float("nan")]), "regex": deque([0.0, float("nan")])}
    write_completions(path, 6, logs, ["json_valid", "regex"], [1.0, 0.5])
    unscored = read_completions(tmp_path, last_steps=1)[1]
    assert unscored["rewards"] == {"json_valid": None, "regex": None} and unscored["total"] is None  # no reward applied: no total, not 0
    header, table = completions_table(rows)  # the run monitor's table
    assert header == ["step", "prompt", "completion", "cut", "json_valid", "regex", "total", "advantage"]
    assert table[0] == [4, "What is 2+2?", '{"answer": "4"}', "no", 1.0, 1.0, 1.5, 0.7]
    assert table[1][3] == "yes"
    del logs["extra"]  # a table written before the flag existed: blank, not "no"
    write_completions(path, 7, logs, ["json_valid", "regex"], [1.0, 0.5])
    (old, _) = read_completions(tmp_path, last_steps=1)
    assert old["cut"] is None and completions_table([old])[1][0][3] == ""


def test_a_completion_is_cut_when_it_ends_without_eos_or_padding():
    eos, pad = 2, 0
    # TRL's completion ids stop at the first EOS; one cut at response_length ends on an ordinary token
    assert cut_flags([[5, 6, eos], [5, 6, 7], [5, pad], [eos], []], (eos, pad)) == [False, True, False, False, False]


def test_no_terminated_length_is_logged_for_batches_where_no_completion_ended():
    import math

    metrics = {"completions/clipped_ratio": [1.0, 0.5, 1.0], "completions/mean_terminated_length": [0.0, 30.0, 0.0],
               "completions/max_terminated_length": [0.0, 41.0, 0.0], "completions/mean_length": [64.0, 50.0, 64.0]}
    drop_empty_terminated_lengths(metrics)
    assert [v if not math.isnan(v) else None for v in metrics["completions/mean_terminated_length"]] == [None, 30.0, None]
    assert metrics["completions/mean_length"] == [64.0, 50.0, 64.0]  # every completion has a length
    logged = {"completions/clipped_ratio": [1.0], "completions/mean_terminated_length": [0.0]}
    drop_empty_terminated_lengths(logged)
    assert math.isnan(logged["completions/mean_terminated_length"][0])  # TRL then logs None: the row has no such key


def test_final_metrics_carry_the_last_logged_rewards():
    history = [{"step": 1, "reward": 0.2, "rewards/json_valid/mean": 0.2, "rewards/json_valid/std": 0.4, "loss": 0.0},
               {"step": 2, "reward": 0.5, "rewards/json_valid/mean": 0.5, "rewards/regex/mean": 1.0, "kl": 0.01},
               {"step": 2, "train_runtime": 9.0, "train_loss": 0.0}]
    assert last_rewards(history) == {"last_reward": 0.5, "last_rewards/json_valid/mean": 0.5, "last_rewards/regex/mean": 1.0}
    assert last_rewards([{"step": 2, "train_loss": 0.0}]) == {}


def test_a_grpo_run_reports_its_reward_not_its_near_zero_loss():
    from studio.jobs.overview import ActiveRun
    from studio.jobs.progress import progress_from

    rows = [{"step": s, "time": 100.0 + 10 * s, "loss": 1e-7 * s, "reward": 0.25 * s, "max_steps": 4} for s in (1, 2)]
    progress = progress_from(rows, 100.0, 130.0)
    assert "reward 0.5000" in progress.describe() and "loss" not in progress.describe()
    assert "reward 0.500" in ActiveRun("r", "grpo on prompts", "running", progress).describe()  # the status bar
    sft = progress_from([{**r, "reward": None} for r in rows], 100.0, 130.0)  # no reward logged: the loss, as before
    assert "loss 0.0000" in sft.describe() and "reward" not in sft.describe()


def test_advisor_proposes_grpo_when_answers_can_be_checked():
    choice = pick_method(shape="instruction", goal="format", examples=500, checkable_answers=True)
    assert choice.method == "grpo" and "GRPO" in choice.reasons[0][1]
    values = choice.preset.run_config_values(data=str(DEMO_DATA))
    cfg = RunConfig.from_dict(values)  # the preset is a valid run config
    assert [r["type"] for r in cfg.rewards] == ["json_valid", "regex"]
    assert (cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps) % cfg.num_generations == 0
    assert cfg.response_length < cfg.max_length
    assert pick_method(shape="preference", checkable_answers=True).method == "dpo"  # preference pairs: DPO, as before
    assert pick_method(shape="instruction", checkable_answers=False).method == "lora"


def test_estimator_counts_generations_times_length():
    arch = load_architecture("Llama-3-8B")
    short = memory(arch, Setup(method="grpo", seq=1024, batch=8, completion_length=128))
    long = memory(arch, Setup(method="grpo", seq=1024, batch=8, completion_length=896))
    more = memory(arch, Setup(method="grpo", seq=1024, batch=16, completion_length=128))
    assert long.parts_gib["logits"] == pytest.approx(7 * short.parts_gib["logits"], rel=0.01)  # log-probs of completion tokens only
    assert more.peak_gib > short.peak_gib
    result = estimate(arch, Setup(method="grpo", seq=1024, batch=8, num_generations=8, completion_length=512))
    assert any("8 completions of up to 512 tokens" in note for note in result.notes)
    lora = estimate(arch, Setup(method="lora", seq=1024, batch=8))
    assert result.tokens_per_s_4090 < lora.tokens_per_s_4090  # sampling and the reference pass cost time
    four, eight = (estimate(arch, Setup(method="grpo", seq=1024, batch=8, num_generations=n), train_tokens=1_000_000) for n in (4, 8))
    assert four.train_tokens == 4_000_000 and eight.hours_4090 == pytest.approx(2 * four.hours_4090)  # generations x tokens
