"""Any two sides on one copy of the base weights, and a prompt suite, on the shared demo run."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from studio import chat, suites
from studio.chat import BASE_PREFIX, ChatEngine
from studio.engine import GenerationSettings, Side
from studio.suites import SuitePrompt
from studio.jobs import registry
from tests.conftest import REPO, demo_run_id

pytestmark = pytest.mark.integration
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=16)


@pytest.fixture
def demo_record(trained_demo_run, monkeypatch):
    home, _ = trained_demo_run
    monkeypatch.setenv("STUDIO_HOME", str(home))
    record = registry.get(demo_run_id(trained_demo_run))
    return record


def test_two_adapters_switch_per_token_on_one_base(demo_record, tmp_path):
    """A second adapter with its B matrices zeroed must answer exactly like the base, while the
    trained adapter, interleaved token by token with it, answers like the tuned model."""
    zeroed = tmp_path / "zeroed"
    shutil.copytree(demo_record.run_dir / "adapter", zeroed)
    weights = load_file(str(zeroed / "adapter_model.safetensors"))
    save_file({k: (v * 0 if "lora_B" in k else v) for k, v in weights.items()}, str(zeroed / "adapter_model.safetensors"))
    engine = ChatEngine.for_choices(BASE_PREFIX + "embedded", demo_record.id)
    base = engine.base_side.base
    assert engine.tuned_side.base is base  # one copy of the weights serves both sides
    base.ensure_adapter("zeroed", zeroed)
    question = [{"role": "user", "content": "What is the capital of Australia?"}]
    pair = ChatEngine(Side(base, "zeroed", "zeroed"), engine.tuned_side)
    *_, (zeroed_text, tuned_text) = pair.stream_pair(question, GREEDY)
    assert zeroed_text == engine.answer(question, tuned=False, settings=GREEDY)
    assert tuned_text == engine.answer(question, tuned=True, settings=GREEDY)
    assert zeroed_text != tuned_text and '"answer"' in tuned_text


def test_side_choices_list_the_run_and_its_base(demo_record):
    values = [value for _, value in chat.side_choices()]
    assert values == [demo_record.id, BASE_PREFIX + "embedded"]


def test_prompt_suite_on_both_sides_with_report(demo_record, tmp_path):
    rows = [json.loads(line) for line in (REPO / "assets/demo/json_answers.heldout.jsonl").read_text().splitlines()][:4]
    prompts = [SuitePrompt(r["instruction"], r["output"]) for r in rows]
    engine = ChatEngine.for_choices(BASE_PREFIX + "embedded", demo_record.id)
    seen = []
    result = suites.run_prompt_suite(engine, prompts, GenerationSettings(temperature=0.0, max_new_tokens=20), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (8, 8)
    assert [r["prompt"] for r in result.rows] == [p.prompt for p in prompts]
    tuned_hits = sum(r["right_match"] for r in result.rows)
    base_hits = sum(r["left_match"] for r in result.rows)
    assert tuned_hits > base_hits, result.rows
    html_path, md_path = suites.write_suite_report(result, tmp_path / "report")
    assert f"{base_hits}/4" in md_path.read_text() and f"{tuned_hits}/4" in html_path.read_text()
