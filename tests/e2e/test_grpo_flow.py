"""In a real browser: compose two GRPO rewards in the Train tab, start the run, and the reward plot appears."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_chat_ab import pick
from tests.e2e.test_studio_flow import wait_for

pytestmark = pytest.mark.e2e


def test_compose_two_rewards_start_and_see_the_reward_plot(app_server, page, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q in ("Name a colour.", "Name a fruit.", "Name a planet.", "Name a river.")))
    page.goto(app_server["url"])
    page.get_by_role("tab", name="Train", exact=True).click()
    pick(page, "#train-method", "grpo")
    page.locator("#train-reward-composer").first.wait_for(state="visible", timeout=10_000)
    for box, value in (("#train-data", str(prompts)), ("#train-max-steps", "2"), ("#train-batch", "2"), ("#train-maxlen", "96"),
                       ("#train-response-length", "6"), ("#train-num-generations", "2")):
        field = page.locator(f"{box} textarea, {box} input").first
        field.fill(value)
        field.press("Tab")

    rewards = page.locator("#train-rewards textarea").first
    page.locator("#train-reward-add").click()  # the default type: json_valid, no schema
    wait_for(lambda: "json_valid" in rewards.input_value(), 30, "the first reward in the list")
    pick(page, "#train-reward-type", "regex")
    # A new type relabels and clears the value box on the server: fill it only once that has come back.
    page.locator("#train-reward-value").get_by_text("pattern", exact=True).wait_for(timeout=30_000)
    value = page.locator("#train-reward-value input, #train-reward-value textarea").first
    value.fill("^\\s*\\{")
    value.press("Tab")
    page.locator("#train-reward-weight input").fill("0.5")
    page.locator("#train-reward-weight input").press("Tab")
    page.locator("#train-reward-add").click()
    wait_for(lambda: "regex" in rewards.input_value(), 30, "the second reward in the list")
    assert "json_valid" in rewards.input_value() and "0.5" in rewards.input_value()

    page.locator("#train-start").click()
    page.locator("#train-action").get_by_text("Started run").wait_for(timeout=90_000)
    metrics = page.locator("#train-metrics")
    metrics.get_by_text("GRPO reward per function (mean)").wait_for(timeout=600_000)
    for series in ("rewards/json_valid/mean", "rewards/regex/mean"):
        metrics.get_by_text(series).first.wait_for(timeout=30_000)
    page.locator("#train-completions").get_by_text("completion").first.wait_for(timeout=60_000)
