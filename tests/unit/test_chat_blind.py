"""Blind A/B: shuffled seats, votes saved per pair in SQLite under $STUDIO_HOME, and the reveal."""

from __future__ import annotations

import random

import pytest

from studio.votes import BlindRound, pair_key, record_vote, reveal_text, tally, votes_path
from studio.errors import StudioError


def test_shuffle_puts_each_side_on_both_seats():
    rng = random.Random(0)
    seats = {BlindRound.shuffled("run-a", "base:embedded", rng).left for _ in range(40)}
    assert seats == {"run-a", "base:embedded"}


@pytest.mark.parametrize("first, second", [("run-a", "run-a"), ("", "run-b"), ("run-a", None)])
def test_a_pair_needs_two_different_sides(first, second):
    with pytest.raises(StudioError):
        BlindRound.shuffled(first, second)


def test_votes_are_tallied_per_pair_whatever_the_seats(studio_home):
    record_vote(BlindRound("run-a", "run-b"), "left", "q1")  # run-a wins
    record_vote(BlindRound("run-b", "run-a"), "left", "q2")  # run-b wins
    record_vote(BlindRound("run-b", "run-a"), "right", "q3")  # run-a wins
    counts = record_vote(BlindRound("run-a", "run-b"), "tie", "q4")
    assert counts == {"run-a": 2, "run-b": 1, "tie": 1, "total": 4}
    assert tally("run-b", "run-a") == {"run-b": 1, "run-a": 2, "tie": 1, "total": 4}
    assert tally("run-a", "run-c")["total"] == 0  # another pair is separate
    assert votes_path().parent == studio_home and votes_path().is_file()
    assert pair_key("x", "y") == pair_key("y", "x")


def test_bad_vote_is_refused_and_not_saved(studio_home):
    with pytest.raises(StudioError, match="left, right, tie"):
        record_vote(BlindRound("run-a", "run-b"), "both")
    assert tally("run-a", "run-b")["total"] == 0


def test_reveal_names_the_seats_and_the_score(studio_home):
    round_ = BlindRound("run-b", "run-a")
    record_vote(round_, "right")
    text = reveal_text(round_, "run-a", "run-b", label=str.upper)
    assert "Left was RUN-B; right was RUN-A." in text
    assert "Votes so far (n=1): RUN-A 1 (100%, 95% CI 21–100%) · RUN-B 0 (0%, 95% CI 0–79%) · tie 0" in text
    assert "No clear preference yet" in text  # one vote is no verdict


def test_votes_become_preference_pairs_and_a_dataset_version(studio_home):
    from studio.votes import default_blind_pair, export_votes, preference_pairs
    from studio.data.versions import load_version

    record_vote(BlindRound("run-a", "base:embedded"), "left", "Capital of France?", "Paris … (cut at 8 tokens)", "London")
    record_vote(BlindRound("base:embedded", "run-a"), "left", "2+2?", "4", "five")
    record_vote(BlindRound("run-a", "base:embedded"), "tie", "Hi?", "Hello", "Hey")  # a tie carries no preference
    pairs = preference_pairs("base:embedded", "run-a")
    assert [(p["prompt"][0]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        ("Capital of France?", "Paris", "London"), ("2+2?", "4", "five")]
    folder = export_votes("run-a", "base:embedded", "stakeholder-votes")
    loaded = load_version(folder)
    assert loaded.format == "preference" and len(loaded.preference_rows()) == 2
    assert default_blind_pair([]) == (None, None)
