"""Chat in a real browser on the shared demo run (the session's `demo_server`, tests/conftest.py):
both sides stream, a blind A/B vote, a suite report."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.e2e.conftest import SCREENSHOTS

pytestmark = pytest.mark.e2e


def pick(page, dropdown: str, option_text: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option").filter(has_text=option_text).first.click()


def set_max_tokens(page, prefix: str, value: int) -> None:
    page.locator(f"#{prefix}-settings").get_by_text("Generation settings").click()
    box = page.locator(f"#{prefix}-max-tokens input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_side_by_side_streams_both_answers(demo_server, page):
    page.goto(demo_server["url"])
    page.get_by_role("tab", name="Chat").click()
    pick(page, "#chat-run", demo_server["run_id"])  # the demo run, not another run in its home
    set_max_tokens(page, "chat", 16)
    question = "Who wrote Hamlet?"
    page.locator("#chat-prompt textarea").fill(question)
    page.locator("#chat-send").click()

    def answer_text(selector: str) -> str:
        text = page.locator(selector).inner_text()
        return text.split(question, 1)[1].strip() if question in text else ""

    both_partial = False
    deadline = time.time() + 400
    while time.time() < deadline:
        done = "Done" in page.locator("#chat-status").inner_text()
        if not done and answer_text("#chat-base") and answer_text("#chat-tuned"):
            both_partial = True  # both sides hold text while generation is still going
        if done:
            break
        time.sleep(0.1)
    state = (page.locator("#chat-status").inner_text(), answer_text("#chat-base"), answer_text("#chat-tuned"))
    assert both_partial, f"the two answers did not stream together: {state}"
    assert '"answer"' in page.locator("#chat-tuned").inner_text()
    assert '"answer"' not in page.locator("#chat-base").inner_text()


def test_blind_vote_is_saved_and_revealed(demo_server, page):
    page.goto(demo_server["url"])
    page.get_by_role("tab", name="Chat").click()
    page.get_by_role("tab", name="Blind A/B").click()
    pick(page, "#ab-a", demo_server["run_id"])
    pick(page, "#ab-b", "base ·")
    set_max_tokens(page, "ab", 24)
    page.locator("#ab-prompt textarea").fill("What is the capital of Australia?")
    page.locator("#ab-send").click()
    page.locator("#ab-status").get_by_text("Which answer is better").wait_for(timeout=240_000)
    labels = page.locator("#ab-left, #ab-right").all_inner_texts()
    assert not any("tuned" in text or "base" in text for text in labels), labels  # unlabelled seats
    left_answer = page.locator("#ab-left").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "05-blind-ab.png"), full_page=True)
    page.locator("#ab-vote-left").click()
    page.locator("#ab-status").get_by_text("Vote saved").wait_for(timeout=15_000)
    page.locator("#ab-reveal").click()
    reveal = page.locator("#ab-result textarea")
    deadline = time.time() + 15
    while "Votes so far" not in reveal.input_value() and time.time() < deadline:
        time.sleep(0.2)
    text = reveal.input_value()
    assert "Left was" in text and "Votes so far (n=1)" in text and "95% CI" in text, text
    left_was_tuned = text.split("Left was ")[1].startswith("tuned")
    assert left_was_tuned == ('"answer"' in left_answer)  # the reveal matches what was shown
    with sqlite3.connect(demo_server["home"] / "ab_votes.sqlite") as conn:
        (vote, winner) = conn.execute("SELECT vote, winner FROM ab_votes").fetchone()
    assert vote == "left" and winner is not None


def test_prompt_suite_report(demo_server, page, tmp_path):
    suite = tmp_path / "stakeholder.csv"
    suite.write_text('prompt,reference\nWhat is 5 times 6?,"{""topic"": ""math"", ""answer"": ""30""}"\nWho wrote Hamlet?,\n')
    page.goto(demo_server["url"])
    page.get_by_role("tab", name="Chat").click()
    page.get_by_role("tab", name="Prompt suite").click()
    page.locator("#suite-file input[type=file]").set_input_files(str(suite))
    page.locator("#suite-name textarea, #suite-name input").first.fill("stakeholder")
    pick(page, "#suite-left", "base ·")
    pick(page, "#suite-right", demo_server["run_id"])
    page.locator("#suite-run").click()
    page.locator("#suite-status").get_by_text("Ran 2 prompts").wait_for(timeout=240_000)
    table = page.locator("#suite-table").inner_text()
    assert "What is 5 times 6?" in table and "Who wrote Hamlet?" in table
    links = page.locator("#suite-download a").evaluate_all("els => els.map(e => e.href + ' ' + (e.download || ''))")
    assert any("report.html" in t for t in links) and any("report.md" in t for t in links), links
    reports = sorted((demo_server["home"] / "suites" / "reports").glob("*/report.html"))
    assert reports and "<table>" in reports[-1].read_text()
    assert (demo_server["home"] / "suites" / "stakeholder.json").is_file()
