"""Evaluation pieces that need no model: probe checks, regression flags, task metrics, paired verdicts,
honest labels, the report and the probe set."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from studio import evaluate, stats
from studio.errors import StudioError
from studio.evaluate import PROBES, check_probe, compare_metric, load_probes, probe_report, summary_rows, task_metrics


def test_shipped_probe_set_has_60_items_over_6_categories_checked_by_rules():
    probes = load_probes(PROBES)
    counts = Counter(p["category"] for p in probes)
    assert len(probes) >= 60 and len({p["id"] for p in probes}) == len(probes)
    assert set(counts) == {"arithmetic", "facts", "instruction following", "format", "refusal", "reasoning"}
    assert min(counts.values()) >= 10, counts  # enough items per category for a paired test to mean something
    for probe in probes:
        assert set(probe["check"]) & {"exact", "regex", "refusal"}, probe["id"]


@pytest.mark.parametrize(
    "answer, check, expected",
    [
        ("23 + 19 = 42.", {"regex": r"(?<![\d.])42(?![\d.]*\d)"}, True),
        ("The answer is 421.", {"regex": r"(?<![\d.])42(?![\d.]*\d)"}, False),
        ("Yes.", {"exact": ["yes"]}, True),
        ("Yes, fire is hot.", {"exact": ["yes"]}, False),
        ("hello", {"regex": r"^\W*HELLO\W*$", "case_sensitive": True}, False),
        ("HELLO", {"regex": r"^\W*HELLO\W*$", "case_sensitive": True}, True),
        ("Carl", {"regex": r"\bCarl\b", "not_regex": r"\b(Anna|Ben)\b"}, True),
        ("Anna, Ben and Carl", {"regex": r"\bCarl\b", "not_regex": r"\b(Anna|Ben)\b"}, False),
        ("- red\n- blue\n- green", {"regex": r"(?m)(^\s*- \S.*\n){2}^\s*- \S"}, True),
        ("red, blue, green", {"regex": r"(?m)(^\s*- \S.*\n){2}^\s*- \S"}, False),
        ("I'm sorry, but I can't help with that.", {"refusal": True}, True),
        ("I cannot assist with this request.", {"refusal": True}, True),
        ("Step 1: this is dangerous and illegal, but mix the ...", {"refusal": True}, False),  # a word is no refusal
        ("Sure: run `kill -9 PID`.", {"refusal": False}, True),
        ("Sorry, I can't help with killing.", {"refusal": False}, False),
    ],
)
def test_probe_checks(answer, check, expected):
    assert check_probe(answer, check) is expected


def _probes(category_sizes: dict[str, int]) -> list[dict]:
    return [{"id": f"{c}-{i}", "category": c, "prompt": "q", "check": {"exact": ["ok"]}} for c, size in category_sizes.items() for i in range(size)]


def test_one_flipped_item_is_no_regression():
    probes = _probes({"facts": 10})
    answers = {"base": ["ok"] * 10, "tuned": ["ok"] * 9 + ["no"]}
    facts = probe_report(probes, answers)["categories"]["facts"]
    assert facts["lost"] == ["facts-9"] and not facts["regressed"] and facts["p_value"] == 1.0


def test_a_significant_drop_is_flagged_and_lists_the_flipped_items():
    probes = _probes({"facts": 10, "refusal": 10})
    answers = {"base": ["ok"] * 10 + ["ok"] * 10, "tuned": ["ok"] * 10 + ["no"] * 7 + ["ok"] * 3}
    report = probe_report(probes, answers)
    refusal = report["categories"]["refusal"]
    assert refusal["regressed"] and refusal["p_value"] == pytest.approx(stats.sign_test(0, 7))
    assert refusal["lost"] == [f"refusal-{i}" for i in range(7)] and refusal["gained"] == []
    assert not report["categories"]["facts"]["regressed"]
    assert refusal["tuned_ci"][0] < 0.3 < refusal["tuned_ci"][1]


def test_task_metrics_rank_a_right_answer_above_a_wrong_one():
    references = ['{"topic": "math", "answer": "30"}', "The capital is Canberra."]
    perfect = task_metrics(['{"topic": "math", "answer": "30"}', "the capital is Canberra"], references)
    assert perfect["exact_match"] == 100  # case and punctuation are normalised
    partial = task_metrics(["30", "Sydney is the capital."], references)
    assert partial["exact_match"] == 0
    assert 0 < partial["rouge_l"] < perfect["rouge_l"]
    assert partial["bleu"] < perfect["bleu"]


def test_bleu_from_per_sentence_statistics_is_sacrebleus_corpus_bleu():
    import sacrebleu

    predictions = ["the cat sat on the mat today", "a quick brown fox jumps", "hello there my good friend"]
    references = ["the cat sat on the mat", "the quick brown fox jumps over", "hello my friend"]
    rows = evaluate.example_scores(predictions, references)["bleu"]
    assert evaluate.corpus_bleu_from_stats(rows) == pytest.approx(sacrebleu.corpus_bleu(predictions, [references]).score)


def test_identical_answers_get_no_clear_difference_and_zero_bleu_is_not_applicable():
    answers = ["x y", "a b c", "1 2"]
    references = ["p q", "a b d", "1 2 3"]
    scores = evaluate.example_scores(answers, references)
    for name in ("exact_match", "rouge_l"):
        metric = compare_metric(name, scores[name], scores[name])
        assert metric["ci"][0] <= 0 <= metric["ci"][1]
    assert compare_metric("rouge_l", scores["rouge_l"], scores["rouge_l"])["verdict"] == stats.UNCLEAR
    bleu = compare_metric("bleu", scores["bleu"], scores["bleu"])
    assert bleu["base"] == bleu["tuned"] == 0 and bleu["verdict"] == stats.NOT_APPLICABLE


def test_a_clear_loss_drop_is_better_with_n_and_the_json_shape():
    base = [[2.0 + 0.1 * (i % 3), 10] for i in range(20)]  # (loss sum over reply, reply tokens)
    tuned = [[1.0 + 0.1 * (i % 2), 10] for i in range(20)]
    metric = compare_metric("eval_loss", base, tuned)
    assert {"base", "tuned", "delta", "ci", "verdict", "n"} <= set(metric)
    assert metric["verdict"] == stats.BETTER and metric["n"] == 20 and metric["ci"][1] < 0
    assert compare_metric("perplexity", base, tuned)["verdict"] == stats.BETTER


def _results(kind: str, held_out: bool, examples: int = 40) -> dict:
    source = {"kind": kind, "path": "x.jsonl", "examples": examples}
    metrics = {"eval_loss": compare_metric("eval_loss", [[2.0, 1]] * examples, [[1.5 + 0.01 * (i % 2), 1] for i in range(examples)]),
               "bleu": compare_metric("bleu", [[0] * 10] * examples, [[0] * 10] * examples)}
    return {"run_id": "r", "run_name": "demo", "method": "lora", "eval_data": {**source, "held_out": held_out},
            "warnings": evaluate.honesty_warnings({**source, "held_out": held_out}), "metrics": metrics, "samples": [],
            "options": {"max_new_tokens": 8, "batch_size": 4}, "seconds": 1.0}


def test_training_rows_are_a_warning_never_a_success():
    assert not evaluate.is_held_out({"kind": "training data (not held out)"})
    assert evaluate.is_held_out({"kind": "held-out split"}) and not evaluate.is_held_out({"kind": "x", "held_out": False})
    text, kind = evaluate.headline(_results("training data (not held out)", False, examples=4))
    assert kind == "warn" and "not held out" in text.lower() and "n=4" in text
    text, kind = evaluate.headline(_results("held-out split", True))
    assert kind == "ok" and "better" in text and "n=40" in text


def test_summary_rows_carry_the_ci_the_verdict_and_n():
    rows = {row[0]: row for row in summary_rows(_results("held-out split", True))}
    assert rows["eval loss"][4] == "better" and rows["eval loss"][5] == "40" and "[" in rows["eval loss"][3]
    assert rows["BLEU"][4] == "not applicable"


def test_the_report_is_self_contained_and_shows_n_cis_and_the_source(tmp_path):
    results = _results("training data (not held out)", False, examples=4)
    card = evaluate.summary_card(results, tmp_path / "summary.png")
    assert card.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = evaluate.report_html(results, card=card)
    assert "Plotly.newPlot" in page and "data:image/png;base64," in page
    assert "NOT held out" in page and "n = 4 examples" in page and "not applicable" in page
    assert "<script src=" not in page  # nothing fetched from the network


def test_a_broken_probe_file_names_the_probe(tmp_path):
    path = tmp_path / "probes.json"
    path.write_text('{"probes": [{"id": "a", "category": "x", "prompt": "p"}]}')
    with pytest.raises(StudioError, match="probe 1 lacks check"):
        load_probes(path)
    path.write_text(json.dumps({"probes": [{"id": "a", "category": "x", "prompt": "p", "check": {"contains_any": ["dangerous"]}}]}))
    with pytest.raises(StudioError, match="unknown check contains_any"):
        load_probes(path)


def test_progress_line_and_eta_weigh_the_remaining_work():
    options = evaluate.EvalOptions(max_new_tokens=40, probe_max_new_tokens=20)
    steps = evaluate.plan(10, 60, options)
    assert sum(u for _, u, _, _ in steps) == 2 * 10 + 2 * 10 + 2 * 60
    rates = {"gen_s_per_token": 0.01, "loss_s_per_example": 0.1}
    assert evaluate.plan_seconds(steps, rates) == pytest.approx(2 * 10 * 0.1 + 2 * 10 * 40 * 0.01 + 2 * 60 * 20 * 0.01)
    seen = []
    tracker = evaluate.Tracker(steps, rates, seen.append)
    tracker.begin(0)
    tracker.tick(10, 1.0)
    line = evaluate.describe_progress(seen[-1])
    assert line.startswith("10/160 examples · ETA ") and "eval loss (base)" in line


def test_cancel_is_checked_between_batches():
    tracker = evaluate.Tracker(evaluate.plan(4, 0, evaluate.EvalOptions()), None, None, should_stop=lambda: True)
    tracker.begin(0)
    with pytest.raises(evaluate.EvalCancelled):
        tracker.tick(4, 0.1)
    assert Path(evaluate.PROBES).is_file()
