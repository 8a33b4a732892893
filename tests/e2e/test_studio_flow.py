"""The whole foundation flow in a real browser: upload, train, live curve, side-by-side chat."""

from __future__ import annotations

import time

import pytest

from tests.conftest import DEMO_DATA
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_chat_ab import set_max_tokens

pytestmark = pytest.mark.e2e

# Six steps (batch 8, lr 1e-3) are enough for the tuned side to answer in the JSON shape, and
# leave several points to watch arrive while the run is still going.
TRAIN_STEPS = 6
POINTS_JS = "() => document.querySelectorAll('#train-plot .scatterlayer .trace:first-child .point').length"


def plot_points(page) -> int:
    return page.evaluate(POINTS_JS)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_upload_train_watch_and_chat(app_server, page):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(app_server["url"])
    page.get_by_text("Fine-tuning Studio").first.wait_for()

    # 1. Data: upload the demo dataset.
    page.locator("#data-upload input[type=file]").set_input_files(str(DEMO_DATA))
    page.locator("#data-status").get_by_text("Detected format: alpaca").wait_for(timeout=30_000)
    assert "112 usable" in page.locator("#data-status").inner_text()
    page.locator("#data-preview").get_by_text("What is the capital of France?").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "01-data.png"), full_page=True)

    # 2. Train: a short LoRA run started from the browser.
    page.get_by_role("tab", name="Train", exact=True).click()
    data_box = page.locator("#train-data textarea, #train-data input").first
    wait_for(lambda: "json_answers" in data_box.input_value(), 10, "the dataset path to reach the Train tab")
    steps_box = page.locator("#train-max-steps input")
    steps_box.fill(str(TRAIN_STEPS))
    steps_box.press("Tab")
    page.locator("#train-start").click()
    page.locator("#train-action").get_by_text("Started run").wait_for(timeout=90_000)

    # 3. The loss curve gains points while the run is still going.
    first = wait_for(lambda: plot_points(page) >= 2 and plot_points(page), 480, "the first loss points")
    status_then = page.locator("#train-status").inner_text()
    assert "RUNNING" in status_then, status_then
    more = wait_for(lambda: plot_points(page) > first and plot_points(page), 300, "more loss points")
    assert more > first
    page.screenshot(path=str(SCREENSHOTS / "02-training-live.png"), full_page=True)
    wait_for(lambda: "COMPLETED" in page.locator("#train-status").inner_text(), 600, "the run to complete")
    assert plot_points(page) == TRAIN_STEPS
    assert "python -m studio train" in page.locator("#train-command textarea, #train-command input").first.input_value()
    page.screenshot(path=str(SCREENSHOTS / "03-training-done.png"), full_page=True)

    # 4. Chat: base and tuned answer side by side.
    page.get_by_role("tab", name="Chat", exact=True).click()
    page.locator("#chat-run input").click()
    page.get_by_role("option").first.click()
    set_max_tokens(page, "chat", 32)  # the tuned JSON answer fits in ~15 tokens; the base needs none of the default 96
    page.locator("#chat-prompt textarea").fill("What is the capital of Australia?")
    page.locator("#chat-send").click()
    page.locator("#chat-status").get_by_text("Done").wait_for(timeout=120_000)
    base_text = page.locator("#chat-base").inner_text()
    tuned_text = page.locator("#chat-tuned").inner_text()
    assert "capital of Australia" in base_text and "capital of Australia" in tuned_text
    assert '"answer"' in tuned_text, tuned_text
    assert '"answer"' not in base_text, base_text
    page.screenshot(path=str(SCREENSHOTS / "04-chat-side-by-side.png"), full_page=True)


def test_reopening_the_browser_reattaches_to_the_run(app_server, page):
    page.goto(app_server["url"])
    page.get_by_role("tab", name="Train", exact=True).click()
    wait_for(lambda: "COMPLETED" in page.locator("#train-status").inner_text(), 30, "the earlier run to show again")
    wait_for(lambda: plot_points(page) == TRAIN_STEPS, 10, f"the earlier run's {TRAIN_STEPS} loss points")


def test_bad_input_gets_a_clear_message_in_the_ui(app_server, page, tmp_path):
    page.goto(app_server["url"])
    page.get_by_text("Fine-tuning Studio").first.wait_for()

    page.locator("#data-path textarea, #data-path input").first.fill("/nonexistent/data.jsonl")
    page.locator("#data-load").click()
    page.locator("#data-status").get_by_text("file not found: /nonexistent/data.jsonl").wait_for(timeout=15_000)

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    page.locator("#data-upload input[type=file]").set_input_files(str(empty))
    page.locator("#data-status").get_by_text("the dataset is empty").wait_for(timeout=15_000)
    assert empty.read_text() == ""

    page.get_by_role("tab", name="Train", exact=True).click()
    page.locator("#train-data textarea, #train-data input").first.fill(str(DEMO_DATA))
    lr = page.locator("#train-lr input")
    lr.fill("-0.001")
    lr.press("Tab")
    page.locator("#train-start").click()
    message = page.locator("#train-action").get_by_text("learning_rate: must be a positive number")
    message.wait_for(timeout=15_000)
    assert "Traceback" not in page.content()

    lr.fill("0.001")
    page.locator("#train-model textarea, #train-model input").first.fill(str(tmp_path / "no-such-model"))
    page.locator("#train-start").click()
    page.locator("#train-action").get_by_text("Model folder not found").wait_for(timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "05-bad-input.png"), full_page=True)
