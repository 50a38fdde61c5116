"""Data passed between the answer engine and its users (voice, admin, CLI)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator, Protocol

from haystack import Document


def scored(doc: Document, score: float, meta: dict | None = None) -> Document:
    """A stored passage with this question's score (and meta): its fields copied as they are. A stored
    Document has passed Document's checks and id hashing once; dataclasses.replace would run them again for
    each of the ~30 copies a question makes (3.8 µs each against 0.3)."""
    copy = object.__new__(Document)
    copy.__dict__.update(doc.__dict__)
    copy.__dict__["score"] = score
    if meta is not None:
        copy.__dict__["meta"] = meta
    return copy


@dataclass
class Passage:
    id: str
    text: str  # original passage text as it appears in the KB
    section: str  # section title the passage belongs to
    score: float  # the ranker's score: 1.0 for the question's best passage, a share of it for the others

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Timings:
    retrieval_ms: float | None = None
    llm_first_token_ms: float | None = None
    first_piece_ms: float | None = None
    total_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class AnswerStream(Protocol):
    """One answer being produced. Iterate it for speakable pieces.

    - `passages`, `answered` and `timings.retrieval_ms` are set before the
      first piece is yielded (retrieval runs when the stream is created).
    - `source`: "llm", "offline" (extractive, also the LLM fallback) or
      "refusal" (the relevance gate found nothing; `answered` is False).
    - `planned_text` grows as pieces are produced; once exhausted it is the
      whole answer.
    - `close()` cancels generation at once, closing the LLM's HTTP stream.
    """

    question: str
    passages: list[Passage]
    answered: bool
    source: str
    timings: Timings
    planned_text: str

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


@dataclass
class CallerContext:
    """What the CRM told us about the caller; facts the LLM may use."""

    name: str | None = None
    company: str | None = None
    manager: str | None = None
    extra: dict = field(default_factory=dict)
