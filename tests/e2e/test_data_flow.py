"""Data curation in a real browser: upload a file with a broken row, see it reported, fix it in the
edit table, save a version, and train on that version."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_studio_flow import wait_for

pytestmark = pytest.mark.e2e


def test_upload_fix_a_broken_row_save_a_version_and_train(app_server, page, tmp_path):
    rows = [json.dumps({"instruction": f"Say the number {i}.", "output": f"{i}"}) for i in range(12)]
    rows[2] = '{"instruction": "Say the number 2.", "output": '  # broken line 3
    upload = tmp_path / "numbers.jsonl"
    upload.write_text("\n".join(rows) + "\n")
    page.goto(app_server["url"])
    page.locator("#data-upload input[type=file]").set_input_files(str(upload))
    page.locator("#data-status").get_by_text("Detected format: alpaca").wait_for(timeout=30_000)
    assert "11 usable, 1 dropped (1 broken JSON)" in page.locator("#data-status").inner_text()
    problems = page.locator("#data-problems")
    wait_for(lambda: "broken JSON" in problems.inner_text(), 10, "the broken row in the problems table")
    assert "(line)" in problems.inner_text()

    page.get_by_role("tab", name="Edit rows").click()
    table = page.locator("#data-edit-table")
    broken_cell = table.get_by_test_id("cell-2-2")  # third row (the broken line), JSON column
    wait_for(lambda: '"output":' in broken_cell.inner_text() and "Say the number 2." in broken_cell.inner_text(), 10, "the broken line in the edit table")
    broken_cell.dblclick()
    editor = table.locator("textarea[aria-label='Edit cell']").first
    editor.fill('{"instruction": "Say the number 2.", "output": "2"}')
    editor.press("Enter")
    page.screenshot(path=str(SCREENSHOTS / "05-data-edit.png"), full_page=True)

    page.get_by_role("tab", name="Split & save").click()
    page.locator("#data-name input, #data-name textarea").first.fill("numbers")
    page.locator("#data-save").click()
    page.locator("#data-save-status").get_by_text("Saved numbers v1").wait_for(timeout=30_000)
    assert "11 train, 1 eval" in page.locator("#data-save-status").inner_text()
    manifest = json.loads((app_server["home"] / "datasets" / "numbers" / "v1" / "manifest.json").read_text())
    assert manifest["counts"]["rows_read"] == 12 and manifest["counts"]["dropped_invalid"] == 0 and manifest["edited"]
    assert upload.read_text() == "\n".join(rows) + "\n"  # the user's file is never modified
    page.screenshot(path=str(SCREENSHOTS / "06-data-version.png"), full_page=True)

    page.get_by_role("tab", name="Train").click()
    data_box = page.locator("#train-data textarea, #train-data input").first
    wait_for(lambda: "numbers/v1/data.parquet" in data_box.input_value(), 10, "the saved version to reach the Train tab")
    steps_box = page.locator("#train-max-steps input")
    steps_box.fill("2")
    steps_box.press("Tab")
    page.locator("#train-start").click()
    action = page.locator("#train-action")
    wait_for(lambda: "Started run" in action.inner_text() or "⚠️" in action.inner_text(), 120, "the run to start")
    assert "Started run" in action.inner_text(), action.inner_text()
    status = page.locator("#train-status")
    wait_for(lambda: any(word in status.inner_text() for word in ("COMPLETED", "FAILED")), 400, "the run on the saved version to finish")
    assert "COMPLETED" in status.inner_text(), status.inner_text()
