"""Prompt suites: CSV/JSON/JSONL loading with row-precise errors, and the stakeholder reports."""

from __future__ import annotations

import json
import re

import pytest

from studio.engine import GenerationSettings
from studio.errors import StudioError
from studio.suites import SuitePrompt, SuiteResult, load_prompt_suite, save_prompt_suite, saved_suites, suite_html, suite_markdown


def test_csv_with_prompt_and_reference_columns(tmp_path):
    path = tmp_path / "suite.csv"
    path.write_text('Prompt,Reference\n"What is 2+2?",4\nName a colour.,\n')
    prompts = load_prompt_suite(path)
    assert prompts == [SuitePrompt("What is 2+2?", "4"), SuitePrompt("Name a colour.", None)]


def test_json_list_of_strings_objects_and_wrapped(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(["one", {"prompt": "two", "expected": "2"}]))
    (tmp_path / "b.json").write_text(json.dumps({"prompts": [{"question": "three"}]}))
    (tmp_path / "c.jsonl").write_text('{"prompt": "four"}\n\n{"instruction": "five", "output": "5"}\n')
    assert [p.prompt for p in load_prompt_suite(tmp_path / "a.json")] == ["one", "two"]
    assert load_prompt_suite(tmp_path / "a.json")[1].reference == "2"
    assert [p.prompt for p in load_prompt_suite(tmp_path / "b.json")] == ["three"]
    assert [(p.prompt, p.reference) for p in load_prompt_suite(tmp_path / "c.jsonl")] == [("four", None), ("five", "5")]


@pytest.mark.parametrize(
    "name, text, where",
    [
        ("s.csv", "question_text,answer\nhi,1\n", "line 1"),
        ("s.csv", "prompt,reference\nok,1\n,2\n", "row 2 (line 3)"),
        ("s.jsonl", '{"prompt": "ok"}\n{"prompt": \n', "line 2"),
        ("s.json", json.dumps(["ok", 3]), "item 2"),
        ("s.json", json.dumps([]), "no prompts"),
    ],
)
def test_bad_suites_say_where(tmp_path, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(StudioError) as err:
        load_prompt_suite(path)
    assert where in str(err.value)
    assert str(path) in str(err.value)


def test_other_extensions_are_refused(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("hello")
    with pytest.raises(StudioError, match=r"\.csv, \.json or \.jsonl"):
        load_prompt_suite(path)


def test_saved_suites_round_trip(studio_home):
    path = save_prompt_suite("demo suite!", [SuitePrompt("a", "1"), SuitePrompt("b")])
    assert path.parent == studio_home / "suites" and path.name == "demo-suite.json"
    assert saved_suites() == [path]
    assert load_prompt_suite(path) == [SuitePrompt("a", "1"), SuitePrompt("b")]


def _result() -> SuiteResult:
    rows = [
        {"prompt": "<b>2+2</b>?", "reference": "4", "left": "It is 4.", "right": "4", "left_match": False, "right_match": True},
        {"prompt": "a | b", "reference": "x", "left": "line1\nline2", "right": "y", "left_match": False, "right_match": False},
    ]
    return SuiteResult("base (A)", "tuned (B)", rows, GenerationSettings(temperature=0.0, max_new_tokens=16, seed=3))


def test_html_report_is_self_contained_and_escaped():
    page = suite_html(_result(), "Demo")
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "<script" not in page and "http" not in page  # opens offline, nothing fetched
    assert "&lt;b&gt;2+2&lt;/b&gt;?" in page and "<b>2+2</b>" not in page
    assert "Exact match: base (A) 0/2 (0%, 95% CI 0–66%) · tuned (B) 1/2 (50%, 95% CI 9–91%)" in page
    assert "sign test p=1.000: no clear difference" in page  # one prompt apart is no verdict
    assert page.count('class="match"') == 1 and page.count('class="miss"') == 3


def test_markdown_report_keeps_the_table_intact():
    text = suite_markdown(_result(), "Demo")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2  # header, rule, two rows
    cells = [len(re.split(r"(?<!\\)\|", line)) for line in table]
    assert len(set(cells)) == 1, table  # an escaped pipe in a prompt does not add a column
    assert "a \\| b" in text and "line1<br>line2" in text


def test_a_cut_answer_says_so_and_the_marker_comes_off_for_history_and_scoring():
    from studio.engine import mark_cut, without_cut_marker

    cut = mark_cut("The capital of Australia is ", 8)
    assert cut == "The capital of Australia is … (cut at 8 tokens)"
    assert without_cut_marker(cut) == "The capital of Australia is"
    assert without_cut_marker("A whole answer.") == "A whole answer."
