"""Evaluation pieces that need no model: probe checks, regression flags, task metrics, the probe set."""

from __future__ import annotations

import pytest

from studio.evaluate import PROBES, REGRESSION_DROP, check_probe, load_probes, probe_report, summary_rows, task_metrics
from studio.errors import StudioError


def test_shipped_probe_set_covers_the_four_skills():
    probes = load_probes(PROBES)
    categories = {p["category"] for p in probes}
    assert {"arithmetic", "facts", "instruction following", "refusal"} <= categories
    assert len({p["id"] for p in probes}) == len(probes)
    for category in categories:
        assert sum(p["category"] == category for p in probes) >= 2, category


@pytest.mark.parametrize(
    "answer, check, expected",
    [
        ("The answer is 42.", {"contains_any": ["42"]}, True),
        ("Forty-one", {"contains_any": ["42"]}, False),
        ("hello", {"contains_any": ["HELLO"], "case_sensitive": True}, False),
        ("HELLO", {"contains_any": ["HELLO"], "case_sensitive": True}, True),
        ("Yes.", {"max_words": 2, "contains_any": ["yes"]}, True),
        ("Yes, fire is hot because it burns.", {"max_words": 2, "contains_any": ["yes"]}, False),
        ("- red\n- blue\n- green", {"regex": "(?m)^\\s*- \\S"}, True),
        ("red, blue, green", {"regex": "(?m)^\\s*- \\S"}, False),
        ("I'm sorry, but I can't help with that.", {"refusal": True}, True),
        ("Step 1: buy the parts.", {"refusal": True}, False),
    ],
)
def test_probe_checks(answer, check, expected):
    assert check_probe(answer, check) is expected


def test_a_category_that_drops_is_flagged_and_one_that_holds_is_not():
    probes = [{"id": f"p{i}", "category": "facts" if i < 2 else "refusal", "prompt": "q", "check": {"contains_any": ["ok"]}} for i in range(4)]
    answers = {"base": ["ok", "ok", "ok", "no"], "tuned": ["ok", "ok", "no", "no"]}
    report = probe_report(probes, answers)
    assert report["categories"]["facts"] == {"base": 1.0, "tuned": 1.0, "drop": 0.0, "regressed": False, "probes": 2}
    refusal = report["categories"]["refusal"]
    assert refusal["drop"] == pytest.approx(0.5) and refusal["drop"] >= REGRESSION_DROP and refusal["regressed"]
    assert [i["tuned_pass"] for i in report["items"]] == [True, True, False, False]


def test_task_metrics_rank_a_right_answer_above_a_wrong_one():
    references = ['{"topic": "math", "answer": "30"}', "The capital is Canberra."]
    perfect = task_metrics(['{"topic": "math", "answer": "30"}', "the capital is Canberra"], references)
    assert perfect["exact_match"] == 100  # case and punctuation are normalised
    partial = task_metrics(["30", "Sydney is the capital."], references)
    assert partial["exact_match"] == 0
    assert 0 < partial["rouge_l"] < perfect["rouge_l"]
    assert partial["bleu"] < perfect["bleu"]


def test_summary_rows_say_which_way_is_better():
    results = {"base": {"eval_loss": 2.0, "perplexity": 7.39, "exact_match": 10.0}, "tuned": {"eval_loss": 0.5, "perplexity": 1.65, "exact_match": 0.0}}
    rows = {row[0]: row for row in summary_rows(results)}
    assert rows["eval loss"][3] == "better" and rows["perplexity"][3] == "better"
    assert rows["exact match %"][3] == "worse"


def test_a_broken_probe_file_names_the_probe(tmp_path):
    path = tmp_path / "probes.json"
    path.write_text('{"probes": [{"id": "a", "category": "x", "prompt": "p"}]}')
    with pytest.raises(StudioError, match="probe 1 lacks check"):
        load_probes(path)
