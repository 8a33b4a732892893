"""An explicit eval file is checked against the run's training rows (studio.data.split.overlap_with_training,
the contamination machinery across two files), and eval rows carry their tools schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.config import RunConfig
from studio.data import load_dataset_file
from studio.data import split as S
from studio.errors import StudioError
from tests.conftest import REPO

PUBLIC = REPO / "tests" / "data" / "public"
FILLER = ("the river runs past the old mill where farmers bring grain every autumn and the miller weighs each sack "
          "before he grinds it into flour for the bakers of the town who sell bread at the market on saturday mornings")


def row(i: int, last: str = "end") -> dict:
    # ~45 words: changing the last one leaves the word 3-gram Jaccard far above 0.85
    return {"instruction": f"Question {i}: tell me about item {i} and {FILLER}?", "input": "", "output": f"Item {i} is described as follows: {FILLER} {last}"}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run trained on rows 0..11 with 3 of them held out (split.json written as a trainer writes it)."""
    data = write_jsonl(tmp_path / "train.jsonl", [row(i) for i in range(12)])
    folder = tmp_path / "run"
    folder.mkdir()
    cfg = RunConfig(method="lora", data=str(data), eval_fraction=0.25, seed=3)
    S.for_run(cfg, folder)
    cfg.save(folder / "config.yaml")
    return folder


def eval_file(tmp_path, run_dir) -> tuple[Path, list[int]]:
    """3 rows in the run's training rows (2 exact, 1 near: its last word differs), 1 copy of a HELD-OUT
    row (not trained on: not an overlap), 3 new rows. Returns the file and the ids of the 3 copies."""
    split = S.read(run_dir)
    trained, held_out = split.train, split.eval
    rows = [row(100), row(trained[0]), row(101), row(trained[1]), row(trained[2], last="finish"), row(held_out[0]), row(102)]
    return write_jsonl(tmp_path / "eval.jsonl", rows), [1, 3, 4]


def test_eval_file_rows_in_the_runs_training_rows_are_counted_and_left_out(tmp_path, run_dir):
    from studio.evaluate import honesty_warnings, overlap_warning

    path, copies = eval_file(tmp_path, run_dir)
    examples, source = S.eval_rows(run_dir, data=path)
    overlap = source["overlap"]
    assert overlap["checked"] and overlap["rows"] == 7 and overlap["copies"] == 3 and overlap["row_ids"] == copies
    assert (overlap["exact"], overlap["near"]) == (2, 1) and overlap["dropped"] and overlap["evaluated"] == 0
    assert source["rows"] == [0, 2, 5, 6] and source["examples"] == 4 == len(examples)  # the held-out copy (5) stays
    warning = overlap_warning(source)
    assert warning.startswith("3 of 7 eval rows are in (or near copies of) this run's training rows; they were left out")
    assert warning in honesty_warnings({**source, "held_out": True})

    kept, source = S.eval_rows(run_dir, data=path, drop_overlap=False)
    assert source["rows"] == list(range(7)) and source["overlap"]["evaluated"] == 3 and not source["overlap"]["dropped"]
    assert "partly measured on training data" in overlap_warning(source) and source.get("held_out", True)
    _, source = S.eval_rows(run_dir, data=path, drop_overlap=False, max_examples=2)
    assert source["overlap"]["evaluated"] == 1  # of the 2 rows scored, row 1 was trained on


def test_an_eval_file_made_only_of_training_rows_is_one_line_and_without_dropping_is_not_held_out(tmp_path, run_dir):
    trained = S.read(run_dir).train
    path = write_jsonl(tmp_path / "copies.jsonl", [row(i) for i in trained[:3]])
    with pytest.raises(StudioError) as caught:
        S.eval_rows(run_dir, data=path)
    assert "all 3 rows of" in str(caught.value) and "--no-drop-overlap" in str(caught.value) and "\n" not in str(caught.value)
    _, source = S.eval_rows(run_dir, data=path, drop_overlap=False)
    assert source["held_out"] is False and source["overlap"]["evaluated"] == 3


def test_when_the_training_data_is_gone_the_check_says_so(tmp_path, run_dir):
    from studio.evaluate import overlap_warning

    path, _ = eval_file(tmp_path, run_dir)
    (tmp_path / "train.jsonl").unlink()
    _, source = S.eval_rows(run_dir, data=path)
    assert source["overlap"]["checked"] is False and source["examples"] == 7
    assert overlap_warning(source).startswith("Could not check the eval rows against this run's training rows")


def test_eval_rows_carry_the_rows_tools(tmp_path):
    run = tmp_path  # a folder without split.json/config.yaml: the file's own rows; the overlap cannot be checked
    for name, tool in (("glaive_toolcall_demo.json", "search_recipes"), ("openai_tool_calls.jsonl", "get_current_weather")):
        examples, source = S.eval_rows(run, data=PUBLIC / name)
        assert examples[0]["tools"][0]["function"]["name"] == tool, name
        assert set(examples[0]) == {"messages", "tools"} and examples[0]["messages"][-1]["role"] == "assistant"
        assert source["overlap"]["checked"] is False


def test_the_background_job_passes_the_choice_on_to_the_cli():
    from studio.__main__ import build_parser
    from studio.evaluate import EvalOptions
    from studio.jobs.evaljob import option_args

    for drop in (True, False):
        args = build_parser().parse_args(["eval", "RUN", *option_args(EvalOptions(data="eval.jsonl", drop_overlap=drop))])
        assert args.drop_overlap is drop and args.data == "eval.jsonl"


def test_held_out_rows_whose_copies_were_trained_on_are_left_out_unless_the_run_dropped_the_copies(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [row(i) for i in range(12)] + [row(0, last="finish")])  # row 12: a near copy of row 0
    loaded = load_dataset_file(data)
    seed = next(s for s in range(100) if 0 in S.make_split(loaded, 0.25, s).eval and 12 in S.make_split(loaded, 0.25, s).train)
    copied = 0
    for drop, expect_check in ((False, True), (True, False)):
        folder = tmp_path / f"run-{drop}"
        folder.mkdir()
        cfg = RunConfig(method="lora", data=str(data), eval_fraction=0.25, seed=seed, drop_contaminated=drop)
        _, split = S.for_run(cfg, folder)
        cfg.save(folder / "config.yaml")
        assert copied in split.eval and 12 in (split.dropped if drop else split.train)
        _, source = S.eval_rows(folder)
        if expect_check:  # the run trained on row 12: held-out row `copied` is left out, and said so
            assert source["overlap"]["row_ids"] == [copied] and source["overlap"]["dropped"] and copied not in source["rows"]
            assert source["rows"] == [i for i in split.eval if i != copied]
        else:  # the copy was dropped before training: nothing to check, every held-out row is scored
            assert "overlap" not in source and source["rows"] == split.eval
