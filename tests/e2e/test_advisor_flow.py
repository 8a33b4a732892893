"""Method tab in a real browser: dataset signals, advice with its rules, Apply filling the Train tab,
and the three-way RAG comparison (base, base+RAG, tuned column = base when no run is picked)."""

from __future__ import annotations

import pytest

from tests.conftest import DEMO_DATA
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_studio_flow import wait_for

pytestmark = pytest.mark.e2e


def test_method_tab_advises_applies_and_compares_with_rag(app_server, page, tmp_path):
    page.goto(app_server["url"])
    page.get_by_text("Fine-tuning Studio").first.wait_for()
    page.locator("#data-upload input[type=file]").set_input_files(str(DEMO_DATA))
    page.locator("#data-status").get_by_text("Detected format: alpaca").wait_for(timeout=30_000)

    # Signals from the selected dataset fill the questionnaire.
    page.get_by_role("tab", name="Method").click()
    page.locator("#method-signals").get_by_text("112 examples").wait_for(timeout=240_000)  # tokenizer load: seconds idle, a minute on a busy CPU
    assert page.locator("#method-examples input").input_value() == "112"

    # No eval set: build the eval first. With one: fine-tune, with the rule behind each reason.
    page.locator("#method-goal").get_by_label("format").check()
    page.locator("#method-has-eval input").uncheck()
    page.locator("#method-advise").click()
    page.locator("#advice-approach[data-approach='build-eval-first']").wait_for(timeout=90_000)
    assert "no-eval" in page.locator("#method-advice").inner_text()
    page.locator("#method-has-eval input").check()
    page.locator("#method-advise").click()
    page.locator("#advice-approach[data-approach='fine-tune']").wait_for(timeout=90_000)
    advice = page.locator("#method-advice").inner_text()
    assert "ft-format" in advice and "max_length" in advice
    page.screenshot(path=str(SCREENSHOTS / "05-method-advice.png"), full_page=True)

    # Apply fills the Train tab and shows it.
    page.locator("#method-apply").click()
    max_length = page.locator("#train-maxlen input")
    wait_for(lambda: max_length.is_visible() and max_length.input_value() == "64", 20, "the preset's max length in the Train tab")
    assert page.locator("#train-lr input").input_value() == "0.001"
    assert "json_answers" in page.locator("#train-data textarea, #train-data input").first.input_value()

    # Three-way RAG comparison on the embedded model.
    page.get_by_role("tab", name="Method").click()
    page.get_by_text("RAG as a live comparison").click()
    doc = tmp_path / "widgets.md"
    doc.write_text("# Widgets\n\nThe model W-9 widget weighs 3.2 kilograms and ships in a green box.\n\nIts warranty lasts 18 months.\n")
    page.locator("#rag-docs input[type=file]").set_input_files(str(doc))
    page.locator("#rag-question textarea").fill("How much does the W-9 widget weigh?")
    page.locator("#rag-tokens input").fill("24")
    page.locator("#rag-ask").click()
    status = page.locator("#rag-status")
    wait_for(lambda: "Retrieved from" in status.inner_text() or "⚠️" in status.inner_text(), 420, "the three answers")
    assert "Retrieved from" in status.inner_text(), status.inner_text()
    assert "widgets.md #1" in page.locator("#rag-status").inner_text()
    base = page.locator("#rag-base textarea").input_value()
    with_rag = page.locator("#rag-rag textarea").input_value()
    assert base.strip() and "3.2" in with_rag and "3.2" not in base
    page.screenshot(path=str(SCREENSHOTS / "06-rag-three-way.png"), full_page=True)
