"""The RAG comparison's retrieval side: reading documents, passages, BM25 search, the cited prompt."""

from __future__ import annotations

import pytest

from studio import rag
from studio.errors import StudioError


def test_split_keeps_short_paragraphs_together_and_windows_long_ones():
    text = "alpha beta gamma.\n\ndelta epsilon.\n\n" + " ".join(f"w{n}" for n in range(300))
    passages = rag.split_passages(text, "doc.txt", words=100, overlap=20)
    assert passages[0].text.startswith("alpha beta gamma. delta epsilon.")
    assert all(len(p.text.split()) <= 100 for p in passages)
    assert [p.number for p in passages] == list(range(1, len(passages) + 1))
    words = " ".join(p.text for p in passages).split()
    assert {f"w{n}" for n in range(300)} <= set(words)  # nothing lost between windows


def test_bm25_finds_the_passage_that_answers(tmp_path):
    (tmp_path / "a.txt").write_text("Cats sleep most of the day.\n\nThe Zorblat festival is held every March in Quillby.\n")
    (tmp_path / "b.md").write_text("# Parts\n\nThe W-9 widget weighs 3.2 kilograms.\n")
    index = rag.RagIndex.from_files([tmp_path / "a.txt", tmp_path / "b.md"])
    hits = index.search("When is the Zorblat festival?", k=2)
    assert hits[0][0].source == "a.txt" and "Zorblat" in hits[0][0].text
    assert hits == sorted(hits, key=lambda h: -h[1])
    assert index.search("the of and", k=2) == []  # stop words only: nothing to match
    messages = rag.rag_messages("When is the Zorblat festival?", hits)
    assert "[1] (a.txt #1)" in messages[0]["content"] and messages[0]["content"].endswith("When is the Zorblat festival?")
    assert rag.rag_messages("q", []) == [{"role": "user", "content": "q"}]


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("notes.docx", b"PK\x03\x04", "only .txt"),
        ("bad.txt", b"caf\xe9\n", "UTF-8"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "PDF"),
    ],
)
def test_unreadable_documents_get_one_clear_message(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(StudioError, match=words):
        rag.RagIndex.from_files([path])


def test_empty_documents_are_refused(tmp_path):
    (tmp_path / "empty.md").write_text("\n\n")
    with pytest.raises(StudioError, match="no text"):
        rag.RagIndex.from_files([tmp_path / "empty.md"])
