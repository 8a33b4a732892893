"""The advisor with the real embedded model: "already does the task?" answered by running the base
model on the demo eval split, and the three-way RAG comparison (base, base+RAG, tuned)."""

from __future__ import annotations

import json
from pathlib import Path

from studio import advisor, rag
from studio.chat import ChatEngine
from studio.engine import GenerationSettings
from tests.conftest import DEMO_DATA


def looks_like_demo_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict) and "topic" in json.loads(text)
    except ValueError:
        return False


def test_base_model_check_gives_evidence_and_feeds_the_decision():
    signals = advisor.dataset_signals(DEMO_DATA)
    assert signals.token_source == "tokenizer" and signals.has_eval_split
    check = advisor.check_base_model(signals.eval_pairs, sample=2, max_new_tokens=24)
    assert len(check.rows) == 2
    for row in check.rows:
        assert row.answer.strip()
        assert (row.prompt, row.reference) in signals.eval_pairs
        assert row.score == round(advisor.answer_score(row.answer, row.reference), 3)
    # The demo data teaches a JSON answer format the base model does not produce: the evidence says so.
    assert not any(looks_like_demo_json(r.answer) for r in check.rows)
    assert not check.already_good
    answers = advisor.answers_from_signals(signals, goal="format", base_model_already_good=check.already_good)
    result = advisor.advise(answers, signals=signals, device="cpu")
    assert result.approach == ("fine-tune" if signals.examples >= advisor.MIN_EXAMPLES else "prompting")
    assert result.preset is None or result.preset.values["max_length"] >= signals.token_p95


def test_three_way_rag_comparison_cites_the_right_passage(tmp_path, monkeypatch, trained_demo_run):
    from studio.jobs import registry

    (tmp_path / "festival.txt").write_text("The Zorblat festival is held every March in the town of Quillby.\n\n"
                                           "Visitors eat blue pancakes and race paper boats on the river Wend.\n")
    (tmp_path / "widgets.md").write_text("# Widgets\n\nThe model W-9 widget weighs 3.2 kilograms and ships in a green box.\n\n"
                                         "Its warranty lasts 18 months.\n")
    index = rag.RagIndex.from_files([tmp_path / "festival.txt", tmp_path / "widgets.md"])
    question = "How much does the W-9 widget weigh?"
    top, _ = index.search(question, k=1)[0]
    assert top.source == "widgets.md" and "3.2 kilograms" in top.text

    home, result = trained_demo_run
    monkeypatch.setenv("STUDIO_HOME", str(home))
    record = registry.get(Path(result.stdout.strip().splitlines()[-1]).name)
    engine = ChatEngine.for_run(record)
    base, with_rag, tuned = list(rag.stream_three(engine, question, index, GenerationSettings(temperature=0.0, max_new_tokens=24)))[-1]
    assert "3.2" in with_rag and "3.2" not in base  # only the retrieved passage carries the fact
    assert tuned != base  # the adapter is on for the third column
