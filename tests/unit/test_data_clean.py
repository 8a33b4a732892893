"""Cleaning (with preview), PII scrubbing, split and mix, saved versions, edits, streaming inspect."""

import json
import tracemalloc

import pytest

from studio.data import load_dataset_file
from studio.data.clean import CleanOptions, plan_clean, scrub
from studio.data.inspect import inspect_paths
from studio.data.versions import apply_edits, list_versions, mix_general, prepare, split_examples
from studio.errors import StudioError


def convo(question, answer):
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_clean_plan_previews_every_removal_with_its_reason():
    examples = [
        convo("What is two plus two?", "Four."),
        convo("What is two plus two?", "Four."),  # exact duplicate of row 1
        convo("   ", "Something."),  # whitespace-only prompt
        convo("Tell me a story", "Once upon a time."),
        convo("Short", "x"),
    ]
    plan = plan_clean(examples, CleanOptions(min_tokens=3, max_tokens=50), total_tokens=[10, 10, 10, 60, 2])
    assert plan.removed_by_reason == {"duplicate": 1, "empty": 1, "too long": 1, "too short": 1}
    assert {row["row"]: row["reason"] for row in plan.preview()} == {2: "duplicate", 3: "empty", 4: "too long", 5: "too short"}
    assert plan.apply() == [examples[0]]
    assert plan.counts()["before"] == 5 and plan.counts()["after"] == 1
    assert examples[1] == convo("What is two plus two?", "Four.")  # planning never mutates
    with pytest.raises(ValueError, match="token count"):
        plan_clean(examples, CleanOptions(max_tokens=5))


def test_pii_scrub_replaces_emails_phones_and_keys_and_shows_before_after():
    text = "Mail jane.doe@example.com or call +1 415-555-0134; key sk-abcdefghijklmnopqrstuvwx1234 AKIAABCDEFGHIJKLMNOP. Year 2024-01-15, 3 apples."
    found = {}
    from collections import Counter

    counter = Counter()
    cleaned = scrub(text, counter)
    assert cleaned == "Mail [EMAIL] or call [PHONE]; key [KEY] [KEY]. Year 2024-01-15, 3 apples."
    assert counter == {"email": 1, "phone": 1, "key": 2}
    plan = plan_clean([convo("Who?", text), convo("Q", "A")], CleanOptions(scrub_pii=True))
    assert list(plan.scrubbed) == [0] and plan.preview()[0]["action"] == "scrub PII"
    assert "[EMAIL]" in plan.apply()[0]["messages"][1]["content"] and not found


def test_split_is_seeded_and_warns_when_eval_is_missing_or_small():
    examples = [convo(f"q{i}", f"a{i}") for i in range(100)]
    train, evaluation, warnings = split_examples(examples, 0.1, seed=1)
    assert (len(train), len(evaluation)) == (90, 10) and "noisy" in warnings[0]
    assert split_examples(examples, 0.1, seed=1)[1] == evaluation != split_examples(examples, 0.1, seed=2)[1]
    assert "cannot tell whether the tune helped" in split_examples(examples, 0.0, seed=1)[2][0]
    assert split_examples(examples, 0.3, seed=1)[2] == []
    mixed, added = mix_general(train, 0.2, 1, "alpaca")
    assert added == 18 and len(mixed) == 108
    with pytest.raises(StudioError, match="cannot be mixed"):
        mix_general(train, 0.2, 1, "preference")


def test_prepare_saves_a_version_that_loads_back_with_its_split(tmp_path, studio_home):
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(40)] + [{"instruction": "q0", "output": "a0"}, {"instruction": "bad", "output": ""}]
    source = write_jsonl(tmp_path / "mine.jsonl", rows)
    before = source.read_bytes()
    first = prepare([source], "my data", eval_fraction=0.25, seed=3, mix_ratio=0.1)
    second = prepare([source], "my data", eval_fraction=0.25, seed=3)
    assert (first.path.name, second.path.name) == ("v1", "v2")
    assert first.path.parent == studio_home / "datasets" / "my-data"
    manifest = first.manifest
    assert manifest["sources"][0]["sha256"] and manifest["source_format"] == "alpaca"
    assert manifest["counts"]["rows_read"] == 42 and manifest["counts"]["dropped_by_reason"] == {"empty response": 1}
    assert manifest["counts"]["removed_by_cleaning"] == {"duplicate": 1}
    assert (manifest["counts"]["train"], manifest["counts"]["eval"], manifest["counts"]["general_mixed_in"]) == (33, 10, 3)
    assert {f["filter"] for f in manifest["filters"]} == {"drop_empty", "exact_dedup"}
    reloaded = load_dataset_file(first.path / "data.parquet")
    assert reloaded.format == "messages" and (len(reloaded.conversations), len(reloaded.eval_conversations)) == (33, 10)
    assert [v["version"] for v in list_versions("my-data")] == ["v1", "v2"]
    assert source.read_bytes() == before


def test_edits_and_deletions_make_a_new_file_and_fix_a_broken_row(tmp_path, studio_home):
    source = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "q", "output": "a"}, '{"instruction": "fix me", "output": ', {"instruction": "r", "output": "b"}])
    before = source.read_bytes()
    loaded = load_dataset_file(source)
    assert loaded.raw_text(1) == '{"instruction": "fix me", "output": '
    edited = apply_edits(loaded, {1: '{"instruction": "fixed", "output": "yes"}'}, {2}, studio_home / "staging")
    fixed = load_dataset_file(edited)
    assert not fixed.problems and [c["messages"][0]["content"] for c in fixed.conversations] == ["q", "fixed"]
    assert source.read_bytes() == before
    with pytest.raises(StudioError, match="edit of row 2 is not valid JSON"):
        apply_edits(loaded, {1: "{nope"}, set(), studio_home / "staging")


def test_streaming_inspect_counts_everything_with_bounded_memory(tmp_path):
    filler = "lorem ipsum dolor sit amet " * 40  # ~1 kB rows: holding them would dwarf the index
    rows = ["{broken" if i % 10 == 0 else json.dumps({"instruction": f"question {i}", "output": f"{i} {filler}"}) for i in range(3000)]
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    tracemalloc.start()
    report = inspect_paths([path], model=None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (report["rows"], report["valid_rows"], report["dropped_by_reason"]) == (3000, 2700, {"broken JSON": 300})
    assert report["problem_count"] == 300 and report["problems"][1]["line"] == 11
    assert peak < path.stat().st_size / 4, (peak, path.stat().st_size)  # rows are never all held


def test_inspect_keeps_the_first_problems_and_counts_the_rest(tmp_path, monkeypatch):
    import studio.data.inspect as inspect_module

    monkeypatch.setattr(inspect_module, "PROBLEM_LIMIT", 5)
    path = write_jsonl(tmp_path / "d.jsonl", ["{broken"] * 12 + [{"prompt": "p", "completion": "c"}])
    report = inspect_module.inspect_paths([path], model=None)
    assert (len(report["problems"]), report["problem_count"], report["problems_truncated"]) == (5, 12, True)


def test_cli_prepare_then_versions_and_the_short_form(tmp_path, studio_home, capsys):
    from studio.data.cli import main as data_cli

    source = write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(30)])
    assert data_cli(["prepare", str(source), "--name", "pc", "--eval-fraction", "0.2", "--mix-general", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "saved pc v1: 36 train, 6 eval" in out and out.strip().endswith("pc/v1/data.parquet")
    assert data_cli(["versions", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["name"], v["version"], v["counts"]["general_mixed_in"]) for v in listed] == [("pc", "v1", 12)]
    assert data_cli([str(source), "--no-tokens"]) == 0  # `data PATH` is `data inspect PATH`
    assert capsys.readouterr().out.startswith("30 rows, format 'prompt_completion', 30 usable")
