"""RAG as a live comparison: a local BM25 index (bm25s) over the user's documents, and a three-way
answer (base, base + retrieved passages with citations, tuned) so the advisor's verdict can be
checked on the user's own questions. Nothing leaves the machine; no embedding model is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import StudioError

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
PDF_SUFFIXES = (".pdf",)
CHUNK_WORDS = 120  # passages short enough that three fit the small model's context with the question
OVERLAP_WORDS = 30


@dataclass
class Passage:
    source: str  # file name
    number: int  # 1-based passage number within the file
    text: str

    @property
    def label(self) -> str:
        return f"{self.source} #{self.number}"


def read_document(path: str | Path) -> str:
    """Text of a .txt/.md file, or of a PDF's text layer (pypdf)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise StudioError(f"document not found: {path}.")
    if suffix in TEXT_SUFFIXES:
        try:
            return path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as err:
            line = path.read_bytes()[: err.start].count(b"\n") + 1
            raise StudioError("the document is not valid UTF-8.", where=f"{path} line {line}", hint="Re-save it as UTF-8.") from None
    if suffix in PDF_SUFFIXES:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            pages = [page.extract_text() or "" for page in PdfReader(str(path)).pages]
        except (PdfReadError, OSError, ValueError) as err:
            raise StudioError(f"cannot read the PDF ({err}).", where=str(path), hint="Export it again, or save its text as .txt.") from None
        text = "\n\n".join(pages)
        if not text.strip():
            raise StudioError("the PDF has no text layer (a scan?).", where=str(path), hint="Run OCR on it first, or save its text as .txt.")
        return text
    raise StudioError(f"cannot index {path.name}: only {', '.join(TEXT_SUFFIXES + PDF_SUFFIXES)} files are read.", where=str(path))


def split_passages(text: str, source: str, words: int = CHUNK_WORDS, overlap: int = OVERLAP_WORDS) -> list[Passage]:
    """Paragraphs are kept whole when short; long ones become overlapping windows of `words` words."""
    passages: list[Passage] = []
    buffer: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        tokens = paragraph.split()
        if not tokens:
            continue
        if len(buffer) + len(tokens) <= words:
            buffer += tokens
            continue
        if buffer:
            passages.append(Passage(source, len(passages) + 1, " ".join(buffer)))
            buffer = []
        start = 0
        while len(tokens) - start > words:
            passages.append(Passage(source, len(passages) + 1, " ".join(tokens[start : start + words])))
            start += words - overlap
        buffer = tokens[start:]
    if buffer:
        passages.append(Passage(source, len(passages) + 1, " ".join(buffer)))
    return passages


class RagIndex:
    """BM25 over passages of the given documents (bm25s, English stop words)."""

    def __init__(self, passages: list[Passage]):
        import bm25s

        if not passages:
            raise StudioError("the documents hold no text to index.", hint="Drop in .txt, .md or .pdf files with text.")
        self.passages = passages
        self._bm25s = bm25s
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize([p.text for p in passages], stopwords="en", show_progress=False), show_progress=False)

    @classmethod
    def from_files(cls, paths: list[str | Path]) -> "RagIndex":
        passages: list[Passage] = []
        for path in paths:
            passages += split_passages(read_document(path), Path(path).name)
        return cls(passages)

    def search(self, query: str, k: int = 3) -> list[tuple[Passage, float]]:
        if not query.strip():
            return []
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return []
        k = min(k, len(self.passages))
        indices, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [(self.passages[int(i)], float(s)) for i, s in zip(indices[0], scores[0]) if float(s) > 0]


def rag_messages(question: str, hits: list[tuple[Passage, float]]) -> list[dict]:
    """The question with the retrieved passages in front, numbered so the answer can cite them."""
    if not hits:
        return [{"role": "user", "content": question}]
    context = "\n\n".join(f"[{n}] ({p.label}) {p.text}" for n, (p, _) in enumerate(hits, start=1))
    prompt = (f"Use these passages to answer. Cite them as [1], [2].\n\n{context}\n\nQuestion: {question}")
    return [{"role": "user", "content": prompt}]


def citations_text(hits: list[tuple[Passage, float]]) -> str:
    return "\n".join(f"[{n}] {p.label} (BM25 {score:.2f}): {p.text[:160]}{'…' if len(p.text) > 160 else ''}" for n, (p, score) in enumerate(hits, start=1))


def stream_three(engine, question: str, index: RagIndex, settings, k: int = 3) -> Iterator[tuple[str, str, str]]:
    """(base, base+RAG, tuned) texts after every token. `engine` is a studio.chat.ChatEngine
    (for a run, or base_only; then the third column repeats the base model). The three answers decode
    together, in the batched forwards of the generation engine (studio.engine)."""
    from . import engine as generation

    plain = [{"role": "user", "content": question}]
    augmented = rag_messages(question, index.search(question, k))
    for texts in generation.stream([(engine.base_side, plain), (engine.base_side, augmented), (engine.tuned_side, plain)], settings):
        yield texts[0], texts[1], texts[2]
