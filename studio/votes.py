"""Blind A/B votes: which side sat where (in the viewer's session only), one SQLite table of votes
per studio home, the pair's tally and reveal text (Wilson intervals, sign test), and the decided
votes as preference pairs (exported as a dataset version, ready for DPO).

Torch-free at import: the engine (`studio.engine`, `studio.chat`'s side names) is imported only by
the two functions that need it, so counting votes never loads an ML library.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import StudioError

VOTES = ("left", "right", "tie")
VOTE_SCHEMA = """
CREATE TABLE IF NOT EXISTS ab_votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    pair_key TEXT NOT NULL,
    left_choice TEXT NOT NULL,
    right_choice TEXT NOT NULL,
    vote TEXT NOT NULL,
    winner TEXT,
    prompt TEXT,
    left_answer TEXT,
    right_answer TEXT
);
CREATE INDEX IF NOT EXISTS ab_votes_pair ON ab_votes(pair_key);
"""
VOTE_MIGRATIONS = {"left_answer": "ALTER TABLE ab_votes ADD COLUMN left_answer TEXT", "right_answer": "ALTER TABLE ab_votes ADD COLUMN right_answer TEXT"}


@dataclass(frozen=True)
class BlindRound:
    """Which choice sits on which unlabelled side. Lives in the viewer's session only."""

    left: str
    right: str

    @classmethod
    def shuffled(cls, first: str, second: str, rng=None) -> "BlindRound":
        import random

        if not first or not second:
            raise StudioError("pick two different sides to compare blind.")
        if first == second:
            raise StudioError("a blind comparison needs two different sides.", hint="Pick another run or base model for B.")
        pair = [first, second]
        (rng or random.SystemRandom()).shuffle(pair)
        return cls(pair[0], pair[1])

    def winner(self, vote: str) -> str | None:
        if vote not in VOTES:
            raise StudioError(f"a vote is one of {', '.join(VOTES)}, got {vote!r}.")
        return {"left": self.left, "right": self.right, "tie": None}[vote]


def pair_key(first: str, second: str) -> str:
    return "\x1f".join(sorted((first, second)))


def votes_path() -> Path:
    from .paths import studio_home

    return studio_home() / "ab_votes.sqlite"


def _votes_db():
    import sqlite3

    conn = sqlite3.connect(votes_path(), timeout=30)
    conn.executescript(VOTE_SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(ab_votes)")}
    for column, statement in VOTE_MIGRATIONS.items():  # votes saved before answers were kept
        if column not in columns:
            conn.execute(statement)
    return conn


def record_vote(round_: BlindRound, vote: str, prompt: str = "", left_answer: str = "", right_answer: str = "") -> dict:
    """Save one vote for the pair, with both answers as the voter saw them, and return the pair's tally."""
    import time
    from contextlib import closing

    from .engine import without_cut_marker

    winner = round_.winner(vote)
    with closing(_votes_db()) as conn, conn:
        conn.execute(
            "INSERT INTO ab_votes (created, pair_key, left_choice, right_choice, vote, winner, prompt, left_answer, right_answer) VALUES (?,?,?,?,?,?,?,?,?)",
            (time.time(), pair_key(round_.left, round_.right), round_.left, round_.right, vote, winner, prompt,
             without_cut_marker(left_answer), without_cut_marker(right_answer)),
        )
    return tally(round_.left, round_.right)


def default_blind_pair(records=None) -> tuple[str | None, str | None]:
    """Blind A/B's default: the base model against the latest completed tuned run (its own base)."""
    from .chat import BASE_PREFIX, has_weights, run_base_source
    from .jobs import registry

    records = registry.list_runs() if records is None else records
    latest = next((r for r in records if r.status == "completed" and has_weights(r)), None)  # newest first
    if latest is None:
        return None, None
    return BASE_PREFIX + run_base_source(latest), latest.id


def preference_pairs(first: str, second: str) -> list[dict]:
    """Every decided vote of the pair as a preference example: the prompt, chosen = the voted answer,
    rejected = the other (ties and votes without saved answers carry no preference)."""
    from contextlib import closing

    with closing(_votes_db()) as conn:
        rows = conn.execute(
            "SELECT prompt, left_choice, winner, left_answer, right_answer FROM ab_votes WHERE pair_key=? AND winner IS NOT NULL ORDER BY id",
            (pair_key(first, second),),
        ).fetchall()
    pairs = []
    for prompt, left, winner, left_answer, right_answer in rows:
        if not (prompt or "").strip() or not left_answer or not right_answer or left_answer == right_answer:
            continue
        chosen, rejected = (left_answer, right_answer) if winner == left else (right_answer, left_answer)
        user = [{"role": "user", "content": prompt}]
        chosen_turn, rejected_turn = [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}]
        pairs.append({"messages": user + chosen_turn, "prompt": user, "chosen": chosen_turn, "rejected": rejected_turn})
    return pairs


def export_votes(first: str, second: str, name: str) -> Path:
    """Save the pair's votes as the next version of dataset `name` (format preference): a DPO set."""
    from .data.versions import save_version

    pairs = preference_pairs(first, second)
    if not pairs:
        raise StudioError("no decided votes with saved answers for this pair yet (ties carry no preference).",
                          hint="Vote left or right on a few prompts, then export.")
    counts = tally(first, second)
    return save_version(name, pairs, [], "preference", sources=[votes_path()], filters=[],
                        counts={"votes": counts["total"], "ties_skipped": counts["tie"], "pairs": len(pairs)},
                        extra={"from_blind_ab": {"sides": sorted((first, second))}})


def tally(first: str, second: str) -> dict:
    """Wins per side and ties, over every vote ever cast for this pair (in either seat order)."""
    from contextlib import closing

    counts = {first: 0, second: 0, "tie": 0}
    with closing(_votes_db()) as conn:
        rows = conn.execute("SELECT winner, COUNT(*) FROM ab_votes WHERE pair_key=? GROUP BY winner", (pair_key(first, second),)).fetchall()
    for winner, count in rows:
        counts["tie" if winner is None else winner] = count
    counts["total"] = counts[first] + counts[second] + counts["tie"]
    return counts


def reveal_text(round_: BlindRound | None, first: str, second: str, label: Callable[[str], str] = lambda c: c) -> str:
    """What the reveal shows: who sat where this round, and the pair's tally with Wilson intervals."""
    from . import stats

    counts = tally(first, second)
    rates = stats.win_rates(counts[first], counts[second], counts["tie"])
    lines = []
    if round_ is not None:
        lines.append(f"Left was {label(round_.left)}; right was {label(round_.right)}.")

    def share(key: str, name: str) -> str:
        part = rates[key]
        return f"{name} {part['k']} ({100 * part['rate']:.0f}%, 95% CI {100 * part['ci'][0]:.0f}–{100 * part['ci'][1]:.0f}%)"

    lines.append(f"Votes so far (n={counts['total']}): " + " · ".join([share("a", label(first)), share("b", label(second)), share("ties", "tie")]))
    if counts["total"]:
        leader = {"a": label(first), "b": label(second)}.get(rates["preferred"])
        lines.append(f"Preferred: {leader} (sign test p={rates['p_value']:.3f})." if leader
                     else f"No clear preference yet (sign test on the decided votes p={rates['p_value']:.3f}).")
    return "\n".join(lines)
