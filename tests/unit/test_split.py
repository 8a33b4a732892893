"""The one train/eval split (studio.data.split): row ids, rules, split.json, contamination."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.config import RunConfig
from studio.data import load_dataset_file
from studio.data import split as S
from studio.data.versions import prepare
from tests.conftest import REPO

PUBLIC = REPO / "tests" / "data" / "public"
PAIRS = PUBLIC / "preference_mixed.jsonl"


def pair(i: int, words: str = "") -> dict:
    return {"prompt": f"Question number {i}: {words}", "chosen": f"Good answer {i}.", "rejected": f"Bad answer {i}."}


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_split_is_seeded_disjoint_and_covers_every_usable_row():
    loaded = load_dataset_file(PAIRS)
    first, again, other = S.make_split(loaded, 0.25, 42), S.make_split(loaded, 0.25, 42), S.make_split(loaded, 0.25, 7)
    assert (first.train, first.eval) == (again.train, again.eval)
    assert first.eval != other.eval
    assert not set(first.train) & set(first.eval)
    assert sorted(first.train + first.eval) == S.usable_ids(loaded)
    assert len(first.eval) == round(len(S.usable_ids(loaded)) * 0.25) and first.origin == "eval_fraction"
    nothing = S.make_split(loaded, 0.0, 42)
    assert nothing.eval == [] and nothing.train == S.usable_ids(loaded)


def test_row_ids_are_raw_row_numbers_after_dropped_bad_rows(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair(0), {"prompt": "no pair here"}, "this line is not JSON", pair(3), pair(4), pair(5)])
    loaded = load_dataset_file(data)
    assert S.usable_ids(loaded) == [0, 3, 4, 5]  # rows 1 and 2 (file rows 2 and 3) were dropped, the rest keep their number
    split = S.make_split(loaded, 0.5, 1)
    for row in split.train + split.eval:
        (example,) = S.examples(loaded, [row])
        assert example["prompt"][0]["content"] == f"Question number {row}: "
    with pytest.raises(Exception, match="row id 1 is not a usable row"):
        S.select(loaded, [1])


def test_a_saved_versions_eval_split_wins_over_eval_fraction(studio_home):
    version = prepare([PAIRS], "pairs", eval_fraction=0.25, seed=3).path
    loaded = load_dataset_file(version)
    split = S.make_split(loaded, 0.5, 99)
    assert split.origin == "saved version"
    assert split.eval == loaded.eval_kept and len(split.eval) == len(loaded.eval_conversations) > 0
    assert split.train == loaded.kept and not set(split.train) & set(split.eval)
    # The bug this replaces: DPO/reward training read the version's eval pairs too.
    from studio.methods.common import preference_split

    cfg = RunConfig(method="dpo", data=str(version), eval_fraction=0.0)
    train, evaluation = preference_split(cfg, None)
    assert len(evaluation) == len(loaded.eval_conversations) and len(train) == len(loaded.conversations)
    prompts = lambda rows: {json.dumps(r["prompt"]) for r in rows}  # noqa: E731
    assert not prompts(train) & prompts(evaluation)


def test_contamination_counts_exact_and_near_copies_and_drop_removes_them(tmp_path):
    long = ("the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat all afternoon long "
            "and the farmer walks along the river to the old mill where the miller grinds wheat into flour for the village bakery every single morning")
    rows = [pair(0), pair(1, long), pair(2), pair(0), pair(1, long.replace("afternoon", "evening")), pair(5)]
    loaded = load_dataset_file(write_jsonl(tmp_path / "pairs.jsonl", rows))
    split = S.Split(str(tmp_path), train=[2, 3, 4, 5], eval=[0, 1], origin="eval_fraction")
    found = S.contamination(loaded, split)
    assert found.exact == {3: 0} and found.near == {4: 1}
    assert found.counts() == {"exact": 1, "near": 1, "train_rows": 2, "eval_rows_copied": 2, "eval_rows": 2, "threshold": S.NEAR_THRESHOLD}
    assert S.contamination(loaded, split, threshold=None).near == {}
    clean = S.drop_contaminated(split, found)
    assert clean.train == [2, 5] and clean.dropped == [3, 4] and clean.eval == [0, 1]
    assert S.contamination(loaded, clean).train_ids == []


def test_for_run_writes_split_json_and_eval_rows_reads_the_held_out_rows(tmp_path):
    rows = [pair(i) for i in range(12)] + [pair(0)]  # row 12 copies row 0
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    seed = next(s for s in range(100) if 0 in S.make_split(load_dataset_file(data), 0.25, s).eval and 12 not in S.make_split(load_dataset_file(data), 0.25, s).eval)
    cfg = RunConfig(method="dpo", data=str(data), eval_fraction=0.25, seed=seed, drop_contaminated=True)
    logged = []
    _, split = S.for_run(cfg, run_dir, log=logged.append)
    saved = json.loads((run_dir / "split.json").read_text())
    assert saved["source"] == str(data) and saved["train"] == split.train and saved["eval"] == split.eval
    assert saved["dropped"] == [12] and 12 not in saved["train"] and saved["contamination"]["exact"] == 1
    assert any("contamination: 1 train rows copy 1 of the" in line and "dropped" in line for line in logged), logged
    cfg.save(run_dir / "config.yaml")
    conversations, source = S.eval_rows(run_dir, max_examples=2)
    assert source["kind"] == "held-out split" and source["rows"] == saved["eval"][:2] and len(conversations) == 2
    assert conversations[0]["messages"][-1]["content"] == f"Good answer {source['rows'][0]}."


def test_eval_rows_of_a_run_older_than_split_json_recreates_the_same_split(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair(i) for i in range(10)])
    run_dir = tmp_path / "old-run"
    run_dir.mkdir()
    RunConfig(method="dpo", data=str(data), eval_fraction=0.3, seed=5).save(run_dir / "config.yaml")
    _, source = S.eval_rows(run_dir)
    assert source["rows"] == S.make_split(load_dataset_file(data), 0.3, 5).eval


def test_drop_them_saves_a_version_that_keeps_the_eval_rows_and_loses_the_copies(studio_home, tmp_path):
    rows = [pair(i) for i in range(8)] + [pair(0), pair(1)]
    loaded = load_dataset_file(write_jsonl(tmp_path / "pairs.jsonl", rows))
    split = S.Split(str(tmp_path), train=[2, 3, 4, 5, 6, 7, 8, 9], eval=[0, 1], origin="eval_fraction")
    found = S.contamination(loaded, split)
    assert found.exact == {8: 0, 9: 1}
    version = load_dataset_file(S.save_without_contamination(loaded, split, found))
    again = S.make_split(version, 0.5, 1)
    assert again.origin == "saved version" and (len(again.train), len(again.eval)) == (6, 2)
    assert S.contamination(version, again).train_ids == []
    assert version.manifest["name"] == "pairs-no-eval-copies" and version.manifest["counts"]["dropped_eval_copies"] == 2


def test_a_resumed_run_whose_data_changed_is_warned_about(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair(i) for i in range(10)])
    cfg = RunConfig(method="dpo", data=str(data), eval_fraction=0.3)
    logged = []
    S.for_run(cfg, tmp_path, log=logged.append)
    S.for_run(cfg, tmp_path, log=logged.append)
    assert not any("warning" in line for line in logged)
    write_jsonl(data, [pair(i) for i in range(20)])
    S.for_run(cfg, tmp_path, log=logged.append)
    assert any("changed since the run started" in line for line in logged), logged
