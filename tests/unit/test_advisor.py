"""The advisor's decision tree (every branch), its input checks, dataset signals and method picker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from studio import advisor
from studio.advisor import RULES, Answers, decide, pick_method
from studio.config import RunConfig
from studio.errors import StudioError
from tests.conftest import DEMO_DATA, REPO


def rules_of(result) -> list[str]:
    return [r.rule for r in result.reasons]


def answers(**overrides) -> Answers:
    base = dict(examples=500, goal="style", has_eval_set=True)
    return Answers.from_dict({**base, **overrides})


# ------------------------------------------------------------------ decision tree, branch by branch


def test_base_model_already_good_means_prompting_whatever_else_holds():
    result = decide(answers(base_model_already_good=True, needs_citations=True, examples=10, has_eval_set=False))
    assert result.approach == "prompting"
    assert rules_of(result) == ["already-does-task"]


@pytest.mark.parametrize("goal", ["style", "format", "vocabulary", "reasoning"])
def test_behaviour_goals_with_enough_data_and_an_eval_set_fine_tune(goal):
    result = decide(answers(goal=goal, base_model_already_good=False))
    assert result.approach == "fine-tune"
    assert rules_of(result) == [f"ft-{goal}"]


def test_small_never_changing_knowledge_is_burnt_in():
    result = decide(answers(goal="knowledge", knowledge_size="small", knowledge_changes="never"))
    assert result.approach == "fine-tune"
    assert rules_of(result) == ["ft-small-knowledge"]


@pytest.mark.parametrize(
    "overrides, rule",
    [
        (dict(knowledge_size="large"), "rag-large"),
        (dict(knowledge_size=None), "rag-knowledge"),
        (dict(knowledge_size="small", knowledge_changes="monthly"), "rag-knowledge"),
        (dict(knowledge_size="small", knowledge_changes="weekly"), "rag-changes"),
        (dict(knowledge_size="small", needs_citations=True), "rag-citations"),
    ],
)
def test_knowledge_that_is_large_changing_or_cited_goes_to_rag(overrides, rule):
    result = decide(answers(goal="knowledge", **overrides))
    assert result.approach == "rag"
    assert rule in rules_of(result)
    assert not any(r.startswith("ft-") for r in rules_of(result))


@pytest.mark.parametrize(
    "overrides, rag_rule",
    [
        (dict(needs_citations=True), "rag-citations"),
        (dict(knowledge_changes="weekly"), "rag-changes"),
        (dict(knowledge_changes="daily"), "rag-changes"),
        (dict(knowledge_size="large"), "rag-large"),
    ],
)
def test_style_plus_a_rag_signal_is_both(overrides, rag_rule):
    result = decide(answers(goal="style", **overrides))
    assert result.approach == "both"
    assert {rag_rule, "ft-style", "both-domain-assistant"} <= set(rules_of(result))


def test_monthly_change_alone_does_not_stop_a_style_fine_tune():
    assert decide(answers(goal="style", knowledge_changes="monthly")).approach == "fine-tune"


def test_fewer_than_100_examples_means_prompting_and_few_shot():
    result = decide(answers(examples=99))
    assert result.approach == "prompting"
    assert "few-examples" in rules_of(result)
    assert decide(answers(examples=100)).approach == "fine-tune"


def test_fewer_than_100_examples_with_a_rag_signal_means_rag():
    result = decide(answers(examples=40, needs_citations=True))
    assert result.approach == "rag"
    assert {"few-examples", "rag-citations"} <= set(rules_of(result))


def test_no_eval_set_means_build_the_eval_first_even_when_rag_is_also_needed():
    plain = decide(answers(has_eval_set=False))
    assert plain.approach == "build-eval-first"
    assert rules_of(plain)[-1] == "no-eval"
    with_rag = decide(answers(has_eval_set=False, knowledge_changes="weekly"))
    assert with_rag.approach == "build-eval-first"
    assert "rag-changes" in rules_of(with_rag)


def test_no_eval_set_does_not_block_rag_alone():
    assert decide(answers(goal="knowledge", knowledge_size="large", has_eval_set=False)).approach == "rag"


def test_every_reason_names_a_known_rule_and_every_approach_has_a_next_step():
    seen = set()
    for goal in advisor.GOALS:
        for changes in advisor.CHANGES:
            for citations in (False, True):
                for eval_set in (False, True):
                    for examples in (10, 1000):
                        for size in (None, "small", "large"):
                            result = decide(Answers(examples, goal, changes, citations, eval_set, size))
                            seen.add(result.approach)
                            assert result.reasons and all(r.rule in RULES and r.text.startswith(RULES[r.rule]) for r in result.reasons)
                            assert result.next_step.lower().endswith(advisor.NEXT_STEPS[result.approach].lower())
    assert seen == set(advisor.APPROACHES)


@pytest.mark.parametrize("case", [dict(goal="style", examples=20), dict(goal="knowledge", knowledge_size="large", examples=500),
                                  dict(goal="style", examples=500), dict(goal="knowledge", knowledge_changes="weekly", examples=20)])
def test_the_eval_set_answer_changes_the_advice_as_the_rules_say(case):
    """`no-eval` turns only a fine-tune into build-eval-first; prompting or RAG stay, with the eval first in the next step."""
    with_eval, without = decide(answers(**case, has_eval_set=True)), decide(answers(**case, has_eval_set=False))
    assert "no-eval" not in [r.rule for r in with_eval.reasons] and "no-eval" in [r.rule for r in without.reasons]
    assert without.next_step.startswith(advisor.NEXT_STEPS["build-eval-first"].split(",")[0])
    assert without.approach == ("build-eval-first" if with_eval.approach == "fine-tune" else with_eval.approach)


def test_without_a_dataset_the_preset_states_no_dataset_facts():
    result = advisor.advise(answers(goal="style", examples=500, has_eval_set=True))
    why = result.preset.reasons["max_length"]
    assert "p95" not in why and "95%" not in why and "no dataset" in why
    assert result.preset.values["max_length"] == advisor.DEFAULT_MAX_LENGTH


def test_apply_never_writes_an_estimator_only_model_name(tmp_path):
    result = advisor.advise(answers(goal="style", examples=500, has_eval_set=True), model="Llama-3.1-8B")
    assert result.preset.estimate  # the architecture sized the estimate...
    assert "model" not in result.preset.run_config_values(model="Llama-3.1-8B")  # ...but Train keeps its own model
    assert "data" not in result.preset.run_config_values(data="", model="embedded")  # and its dataset
    for trainable in ("embedded", "HuggingFaceTB/SmolLM2-135M-Instruct", str(tmp_path)):
        assert result.preset.run_config_values(model=trainable)["model"] == trainable


# ------------------------------------------------------------------ input checks


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"goal": "style"}, "examples"),
        ({"examples": 5}, "goal"),
        ({"examples": 5, "goal": "poetry"}, "goal"),
        ({"examples": True, "goal": "style"}, "examples"),
        ({"examples": -1, "goal": "style"}, "examples"),
        ({"examples": 5, "goal": "style", "knowledge_changes": "hourly"}, "knowledge_changes"),
        ({"examples": 5, "goal": "style", "needs_citations": "yes"}, "needs_citations"),
        ({"examples": 5, "goal": "style", "knowledge_size": "huge"}, "knowledge_size"),
        ({"examples": 5, "goal": "style", "colour": "red"}, "colour"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_answers_get_one_message_naming_the_key(raw, words):
    with pytest.raises(StudioError) as err:
        Answers.from_dict(raw)
    assert words in str(err.value)


# ------------------------------------------------------------------ scores and samples


def test_answer_score_rewards_agreement():
    assert advisor.answer_score('{"topic": "geo", "answer": "Paris"}', '{"topic":"geo","answer":"Paris"}') == 1.0
    assert advisor.answer_score("Bananas are yellow.", '{"topic": "geo", "answer": "Paris"}') == 0.0
    partial = advisor.answer_score("The answer is Paris.", '{"topic": "geography", "answer": "Paris"}')
    assert 0.0 < partial < 1.0


def test_sample_pairs_is_deterministic_and_spans_the_set():
    pairs = [(f"q{i}", f"a{i}") for i in range(10)]
    sample = advisor.sample_pairs(pairs, 3)
    assert sample == advisor.sample_pairs(pairs, 3)
    assert len(sample) == 3 and sample[0] == pairs[0] and sample[-1][0] in ("q6", "q7", "q8", "q9")
    assert advisor.sample_pairs(pairs[:2], 5) == pairs[:2]


# ------------------------------------------------------------------ dataset signals


def test_signals_from_the_demo_dataset_find_its_heldout_split():
    signals = advisor.dataset_signals(DEMO_DATA, model=None)
    heldout = DEMO_DATA.with_name(DEMO_DATA.stem + ".heldout.jsonl")
    assert signals.examples == sum(1 for line in DEMO_DATA.read_text().splitlines() if line.strip())
    assert signals.has_eval_split and signals.eval_examples == sum(1 for line in heldout.read_text().splitlines() if line.strip())
    first = json.loads(heldout.read_text().splitlines()[0])
    assert signals.eval_pairs[0] == (first["instruction"], first["output"])
    assert 0 < signals.token_p50 <= signals.token_p95 <= signals.token_max
    assert signals.shape == "instruction" and signals.format == "alpaca"


def test_signals_without_an_eval_split_and_with_preference_rows(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"Say hi {n}", "chosen": "Hello!", "rejected": "Go away."}) for n in range(5)))
    signals = advisor.dataset_signals(path, model=None)
    assert signals.shape == "preference" and signals.examples == 5
    assert not signals.has_eval_split and signals.eval_pairs == []
    (tmp_path / "prefs.eval.jsonl").write_text(json.dumps({"prompt": "Say bye", "chosen": "Bye!", "rejected": "No."}) + "\n")
    assert advisor.dataset_signals(path, model=None).eval_pairs == [("Say bye", "Bye!")]


# ------------------------------------------------------------------ method picker and presets


@pytest.mark.parametrize(
    "kwargs, method",
    [
        (dict(shape="preference"), "dpo"),
        (dict(shape="preference", wants_scalar_reward=True), "rlhf"),
        (dict(shape="prompts"), "constitutional"),
        (dict(shape="instruction", has_principles=True), "constitutional"),
        (dict(shape="text"), "full"),
        (dict(shape="instruction", model="Llama-3-8B"), "lora"),
        (dict(shape="instruction", model="Qwen2.5-14B"), "qlora"),
        (dict(shape="instruction", model="embedded", goal="reasoning", examples=5000), "instruction"),
        (dict(shape="instruction", model="embedded", goal="style", examples=5000), "lora"),
    ],
)
def test_method_picker_follows_shape_goal_and_hardware(kwargs, method):
    choice = pick_method(**kwargs)
    assert choice.method == method
    assert choice.reasons and all(rule.startswith("method-") and text for rule, text in choice.reasons)


def test_qlora_is_picked_because_bf16_lora_does_not_fit():
    from studio.estimator import Setup, load_architecture, memory

    choice = pick_method(shape="instruction", model="Qwen2.5-14B", token_p95=700)
    lora = memory(load_architecture("Qwen2.5-14B"), Setup(method="lora", seq=choice.preset.values["max_length"], batch=1))
    assert not lora.fits_24gb and choice.preset.estimate["fits_24gb"]
    assert any(rule == "method-hardware" for rule, _ in choice.reasons)


@pytest.mark.parametrize("p95", [20, 57, 300, 1000])
def test_preset_values_each_have_a_reason_and_make_a_valid_run_config(p95):
    choice = pick_method(token_p95=p95, examples=400, model="embedded")
    values = choice.preset.values
    assert set(values) == set(choice.preset.reasons) and all(choice.preset.reasons.values())
    assert values["max_length"] >= p95 and values["max_length"] % 64 == 0
    assert values["lora_alpha"] == 2 * values["lora_r"]
    cfg = RunConfig.from_dict(choice.preset.run_config_values(data=str(DEMO_DATA)))
    assert cfg.method == choice.method and cfg.max_length == values["max_length"]


def test_epochs_shrink_as_data_grows():
    epochs = [pick_method(examples=n).preset.values["num_train_epochs"] for n in (150, 1000, 10000)]
    assert epochs == sorted(epochs, reverse=True) and epochs[0] > epochs[-1]


# ------------------------------------------------------------------ CLI


def advise_cli(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studio", "advise", *args], cwd=REPO, input=stdin, capture_output=True, text=True, timeout=120)


def test_cli_advise_json_both_with_method_and_preset():
    result = advise_cli(json.dumps({"examples": 800, "goal": "style", "knowledge_changes": "weekly", "needs_citations": False, "has_eval_set": True}), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["approach"] == "both" and out["method"] == "lora"
    assert {r["rule"] for r in out["reasons"]} >= {"rag-changes", "ft-style"}
    assert set(out["preset"]["values"]) == set(out["preset"]["reasons"])


def test_cli_advise_json_build_eval_first_has_no_method():
    out = json.loads(advise_cli(json.dumps({"examples": 800, "goal": "format", "has_eval_set": False}), "--json").stdout)
    assert out["approach"] == "build-eval-first" and "method" not in out and "preset" not in out


@pytest.mark.parametrize("stdin, words", [("{not json", "not valid JSON"), ('{"examples": 3}', "goal")])
def test_cli_advise_bad_input_is_one_line(stdin, words):
    result = advise_cli(stdin, "--json")
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
