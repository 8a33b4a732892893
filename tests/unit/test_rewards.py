"""GRPO reward functions (studio.rewards) and the validation of a `rewards` list: pure, no model."""

from __future__ import annotations

import json

import pytest

from studio.config import RunConfig
from studio.errors import StudioError
from studio.rewards import build_reward_funcs, reward_names, validate_rewards
from tests.conftest import REPO

PROMPTS = REPO / "assets" / "demo" / "prompts.jsonl"


def call(spec: dict, completions: list, references: list | None = None, **kw) -> list:
    (func,), _, _ = build_reward_funcs([spec], **kw)
    prompts = [[{"role": "user", "content": "q"}]] * len(completions)
    conversational = [[{"role": "assistant", "content": c}] for c in completions]
    return func(prompts, conversational, reference=references, trainer_state=None)


def test_regex_search_and_full_match():
    assert call({"type": "regex", "pattern": r'"answer"\s*:'}, ['{"answer": 1}', "no", 'x "answer" : y']) == [1.0, 0.0, 1.0]
    full = {"type": "regex", "pattern": r"\{.*\}", "match": "full"}
    assert call(full, ['  {"a": 1}\n', 'Sure: {"a": 1}', "{\n}"]) == [1.0, 0.0, 1.0]  # DOTALL: . spans lines


def test_json_valid_with_and_without_schema():
    assert call({"type": "json_valid"}, ['{"a": 1}', " [1, 2] ", "{'a': 1}", "Here: {}", ""]) == [1.0, 1.0, 0.0, 0.0, 0.0]
    schema = {"type": "object", "required": ["topic", "answer"], "properties": {"answer": {"type": "string"}}}
    got = call({"type": "json_valid", "schema": schema}, ['{"topic": "x", "answer": "y"}', '{"topic": "x"}', '{"topic": "x", "answer": 3}', "[]"])
    assert got == [1.0, 0.0, 0.0, 0.0]


def test_json_valid_schema_from_file(tmp_path):
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps({"type": "object", "required": ["answer"]}))
    spec = {"type": "json_valid", "schema": str(schema_file)}
    validate_rewards([spec])
    assert call(spec, ['{"answer": 1}', '{"other": 1}']) == [1.0, 0.0]


def test_exact_normalises_and_skips_rows_without_reference():
    got = call({"type": "exact"}, ["  Paris. ", "paris", "The city of Paris", "Paris"], ["Paris", "PARIS!", "Paris", None])
    assert got == [1.0, 1.0, 0.0, None]  # None: no reference, TRL leaves the row out of the mean


def test_numeric_takes_the_last_number():
    got = call({"type": "numeric"}, ["5 x 6 = 30", "The answer is 1,000.", "about 3.1", "no number", "42"], ["30", "1000", "3.14", "7", None])
    assert got == [1.0, 1.0, 0.0, 0.0, None]
    assert call({"type": "numeric", "tolerance": 0.05}, ["about 3.1"], ["3.14"]) == [1.0]


def test_length_band_and_falloff():
    spec = {"type": "length", "min": 10, "max": 20}
    got = call(spec, ["x" * 15, "x" * 5, "x" * 30, "x" * 40, ""])
    assert got == [1.0, 0.5, 0.5, 0.0, 0.0]
    assert call({"type": "length", "max": 3, "unit": "words"}, ["one two three", "one two three four five six"]) == [1.0, 0.0]


def test_python_reward_file(tmp_path):
    file = tmp_path / "my_reward.py"
    file.write_text("def reward(prompt, completion, reference):\n    return float(len(completion) > 3) + (reference == 'ok')\n")
    spec = {"type": "python", "file": str(file)}
    validate_rewards([spec])
    assert call(spec, ["abcd", "ab"], ["ok", None]) == [2.0, 0.0]


def test_a_raising_reward_scores_zero_and_is_reported_once(tmp_path):
    file = tmp_path / "broken.py"
    file.write_text("def reward(prompt, completion, reference):\n    raise KeyError('missing')\n")
    errors = []
    (func,), _, _ = build_reward_funcs([{"type": "python", "file": str(file), "name": "mine"}], on_error=lambda e, state: errors.append(e))
    completions = [[{"role": "assistant", "content": "x"}]] * 3
    for _ in range(3):
        assert func([[{"role": "user", "content": "q"}]] * 3, completions, reference=[None] * 3) == [0.0, 0.0, 0.0]
    assert len(errors) == 1
    assert (errors[0].name, errors[0].type) == ("mine", "KeyError") and "missing" in errors[0].message
    assert "reward 'mine' raised KeyError" in str(errors[0])


def test_non_finite_reward_counts_as_an_error(tmp_path):
    file = tmp_path / "nan.py"
    file.write_text("def reward(prompt, completion, reference):\n    return float('nan')\n")
    errors = []
    assert call({"type": "python", "file": str(file)}, ["x"], on_error=lambda e, s: errors.append(e)) == [0.0]
    assert errors and errors[0].type == "ValueError"


def test_weights_and_names():
    specs = [{"type": "regex", "pattern": "a"}, {"type": "regex", "pattern": "b", "weight": 0.5}, {"type": "json_valid", "name": "shape"}]
    funcs, weights, names = build_reward_funcs(specs)
    assert names == reward_names(specs) == ["regex", "regex_2", "shape"]
    assert weights == [1.0, 0.5, 1.0]
    assert [f.__name__ for f in funcs] == names  # TRL logs rewards/<__name__>/mean


@pytest.mark.parametrize(
    "specs, expected",
    [
        ([{"type": "json_valid"}, {"type": "regex", "pattern": "(unclosed"}], "rewards[1] (regex): pattern '(unclosed' does not compile"),
        ([{"type": "json_valid", "schema": {"type": "objekt"}}], "rewards[0] (json_valid): schema is not valid JSON Schema at type"),
        ([{"type": "json_valid", "schema": {"required": "answer"}}], "rewards[0] (json_valid): schema is not valid JSON Schema at required"),
        ([{"type": "json_valid", "schema": "/nonexistent/schema.json"}], "rewards[0] (json_valid): schema file not found"),
        ([{"type": "regex"}], "rewards[0] (regex): needs a `pattern`"),
        ([{"type": "regexp", "pattern": "x"}], "rewards[0] (regexp): unknown type 'regexp'"),
        ([{"type": "exact", "pattern": "x"}], "rewards[0] (exact): unknown key pattern"),
        ([{"type": "exact", "weight": "high"}], "rewards[0] (exact): weight must be a number"),
        ([{"type": "length", "min": 5}], "rewards[0] (length): needs `max`"),
        ([{"type": "length", "min": 50, "max": 5}], "rewards[0] (length): min (50) is above max (5)"),
        ([{"type": "python", "file": "/nonexistent/reward.py"}], "rewards[0] (python): file not found"),
        ([{"type": "reward_model"}], "rewards[0] (reward_model): needs `run`"),
        (["json_valid"], "rewards[0]: expected a mapping with a `type`"),
        ([{"type": "exact", "name": "regex_2"}, {"type": "regex", "pattern": "a"}, {"type": "regex", "pattern": "b"}], "two rewards are named 'regex_2'"),
    ],
)
def test_bad_rewards_are_refused_with_their_position(specs, expected):
    with pytest.raises(StudioError) as caught:
        RunConfig.from_dict({"method": "grpo", "data": str(PROMPTS), "rewards": specs}, where="run.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("run.yaml: rewards:")


def test_python_file_checked_without_running_it(tmp_path):
    bad_syntax = tmp_path / "bad.py"
    bad_syntax.write_text("def reward(prompt, completion, reference)\n    return 1\n")
    no_function = tmp_path / "none.py"
    no_function.write_text("import sys\nsys.exit(3)\ndef score(a, b, c):\n    return 1\n")
    two_args = tmp_path / "two.py"
    two_args.write_text("def reward(prompt, completion):\n    return 1\n")
    for file, expected in ((bad_syntax, "line 1 is not valid Python"), (no_function, "defines no top-level `def reward"), (two_args, "must take (prompt, completion, reference)")):
        with pytest.raises(StudioError, match=None) as caught:
            validate_rewards([{"type": "python", "file": str(file)}])
        assert expected in str(caught.value), str(caught.value)


def test_grpo_config_needs_rewards_and_whole_groups():
    base = {"method": "grpo", "data": str(PROMPTS), "rewards": [{"type": "json_valid"}]}
    with pytest.raises(StudioError, match="rewards: GRPO needs at least one reward"):
        RunConfig.from_dict({**base, "rewards": []})
    with pytest.raises(StudioError, match="num_generations"):
        RunConfig.from_dict({**base, "per_device_train_batch_size": 6, "num_generations": 4})
    with pytest.raises(StudioError, match="weights: 'half' is not one of lora, qlora, full"):
        RunConfig.from_dict({**base, "weights": "half"})
    # the UI's text box gives YAML text; it parses to the same list
    cfg = RunConfig.from_dict({**base, "rewards": "- {type: json_valid}\n- {type: regex, pattern: '^\\{', weight: 0.5}\n"})
    assert cfg.rewards == [{"type": "json_valid"}, {"type": "regex", "pattern": "^\\{", "weight": 0.5}]
    assert RunConfig.from_dict(cfg.to_dict()).rewards == cfg.rewards  # YAML round-trip
    with pytest.raises(StudioError, match="rewards: not a valid YAML/JSON list"):
        RunConfig.from_dict({**base, "rewards": "- {type: json_valid"})


def test_composer_adds_validated_rewards_to_the_yaml_box():
    from studio.rewards import add_reward, runs_code

    text = add_reward("", "json_valid", '{"type": "object", "required": ["answer"]}')
    text = add_reward(text, "regex", r"^\s*\{", 0.5)
    cfg = RunConfig.from_dict({"method": "grpo", "data": str(PROMPTS), "rewards": text})  # the box's text is the config value
    assert cfg.rewards == [{"type": "json_valid", "weight": 1.0, "schema": {"type": "object", "required": ["answer"]}},
                           {"type": "regex", "weight": 0.5, "pattern": r"^\s*\{"}]
    with pytest.raises(StudioError, match=r"rewards\[2\] \(regex\): pattern '\[a-' does not compile"):
        add_reward(text, "regex", "[a-")
    with pytest.raises(StudioError, match="length needs a number for `max`"):
        add_reward(text, "length", "long")
    assert not runs_code(text) and runs_code(text + "- {type: python, file: mine.py}\n")
