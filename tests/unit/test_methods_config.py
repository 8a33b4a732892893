"""Method fields of RunConfig and the up-front data check: fast, no model loaded."""

from __future__ import annotations

import json

import pytest

from studio.config import METHODS, RunConfig
from studio.errors import StudioError
from studio.methods import MODULES, check_data
from studio.methods.constitutional import DEFAULT_CONSTITUTION, load_constitution
from tests.conftest import DEMO_DATA, REPO

PAIRS = REPO / "assets" / "demo" / "preference_pairs.jsonl"
PROMPTS = REPO / "assets" / "demo" / "prompts.jsonl"


def cfg(**values) -> RunConfig:
    return RunConfig.from_dict({"data": str(PAIRS), **values})


def test_every_method_has_a_module_and_help():
    assert set(METHODS) == set(MODULES)
    assert {"dpo", "reward", "ppo", "rloo", "rlhf", "constitutional"} <= set(METHODS)
    helps = RunConfig.field_help()
    for name in ("dpo_beta", "dpo_loss_type", "reward_model", "sft_data", "rl_algorithm", "response_length", "kl_coef", "constitution", "cai_mode", "judge_model"):
        assert helps[name].strip(), name


@pytest.mark.parametrize(
    "values, field",
    [
        ({"method": "dpo", "dpo_beta": 0}, "dpo_beta"),
        ({"method": "dpo", "dpo_loss_type": "kto"}, "dpo_loss_type"),
        ({"method": "ppo", "kl_coef": -1}, "kl_coef"),
        ({"method": "ppo", "response_length": 600, "max_length": 512}, "response_length"),
        ({"method": "rloo", "per_device_train_batch_size": 6, "num_generations": 4}, "num_generations"),
        ({"method": "rloo", "num_generations": 1, "per_device_train_batch_size": 4}, "num_generations"),
        ({"method": "rlhf"}, "sft_data"),
        ({"method": "rlhf", "sft_data": "x.jsonl", "rl_algorithm": "a2c"}, "rl_algorithm"),
        ({"method": "constitutional", "cai_mode": "sft"}, "cai_mode"),
    ],
)
def test_bad_method_knobs_name_the_field(values, field):
    with pytest.raises(StudioError) as err:
        cfg(**values)
    assert str(err.value).startswith(f"config: {field}:"), str(err.value)


def test_rlhf_chain_round_trips_through_yaml(tmp_path):
    chain = cfg(method="rlhf", sft_data=str(DEMO_DATA), rl_algorithm="rloo", num_generations=2, per_device_train_batch_size=4)
    path = tmp_path / "run.yaml"
    chain.save(path)
    assert RunConfig.from_yaml(path) == chain


def test_dpo_on_alpaca_data_is_refused_with_the_format_it_needs():
    with pytest.raises(StudioError) as err:
        check_data(cfg(method="dpo", data=str(DEMO_DATA)))
    message = str(err.value)
    assert "needs preference pairs" in message and "alpaca" in message and "chosen" in message


def test_sft_on_preference_data_is_refused():
    with pytest.raises(StudioError) as err:
        check_data(cfg(method="lora"))
    assert "preference" in str(err.value) and "dpo" in str(err.value)


def test_ppo_without_reward_model_needs_pairs_but_takes_any_prompts_with_one(tmp_path):
    with pytest.raises(StudioError) as err:
        check_data(cfg(method="ppo", data=str(PROMPTS)))
    assert "reward_model" in str(err.value)
    check_data(cfg(method="ppo", data=str(PROMPTS), reward_model="some-run"))
    check_data(cfg(method="ppo", data=str(DEMO_DATA), reward_model="some-run"))  # instruction data: its prompts
    check_data(cfg(method="ppo"))  # preference data: reward model first, then its prompts


def test_constitution_default_and_bad_files(tmp_path):
    principles = load_constitution("")
    assert len(principles) >= 4 and all(p["critique"] and p["revision"] and p["judge"] for p in principles)
    assert load_constitution(DEFAULT_CONSTITUTION) == principles
    broken = tmp_path / "c.yaml"
    broken.write_text("principles:\n  - name: x\n    critique: ''\n    revision: Rewrite.\n")
    with pytest.raises(StudioError) as err:
        load_constitution(broken)
    assert "principle 1" in str(err.value) and "critique" in str(err.value)
    as_json = tmp_path / "c.json"
    as_json.write_text(json.dumps([{"critique": "Find flaws.", "revision": "Fix them."}]))
    assert load_constitution(as_json)[0]["name"] == "principle-1"
    with pytest.raises(StudioError):
        check_data(cfg(method="constitutional", data=str(PROMPTS), constitution=str(tmp_path / "missing.yaml")))


@pytest.mark.parametrize("name", ["rlhf_chain.yaml", "constitutional.yaml"])
def test_demo_yamls_validate_and_their_data_fits(name, monkeypatch):
    monkeypatch.chdir(REPO)
    check_data(RunConfig.from_yaml(REPO / "assets" / "demo" / name))
