"""The offline answer: the sentences of the retrieved passages that answer the question.

Used without an API key and as the LLM's fallback. Sentences are scored by
the question's terms they contain (rare terms count more), the best one or
two are kept in their original order, and the reply is trimmed short for
the phone.
"""
from __future__ import annotations

from razdel import sentenize

from . import analysis
from .types import Passage

MAX_CHARS = 320


class _FlatStats:
    """Every term equally rare: used when no KB statistics are at hand."""

    @staticmethod
    def idf(term: str) -> float:
        return 1.0


def compose(question: str, passages: list[Passage], stats=None, max_chars: int = MAX_CHARS) -> str:
    """A short spoken reply from the best passages (empty when there are none).

    Each sentence of the top passages is scored like a passage is (the
    question's words it holds, rare ones counting more, plus the kind of fact
    asked for: a price, a phone, hours); its section title counts a little.
    The best sentence is kept, with a second one when it adds almost as much.
    """
    from .pipeline import holds_asked_fact, match_score

    if not passages:
        return ""
    stats = stats or _FlatStats()
    parsed = analysis.analyze_question(question)
    top_score = passages[0].score or 0.0
    candidates = []  # (score, passage rank, position in passage, sentence)
    for rank, passage in enumerate(passages[:3]):
        if rank and top_score and passage.score < 0.7 * top_score:
            break
        section_terms = set(analysis.index_terms(passage.section))
        for pos, s in enumerate(sentenize(passage.text)):
            text = s.text.strip()
            if not text:
                continue
            terms = set(analysis.index_terms(text))
            score = match_score(parsed, terms, stats) + 0.3 * match_score(parsed, section_terms | terms, stats)
            score *= (passage.score / top_score) if top_score else 1.0
            if not holds_asked_fact(parsed, terms):
                score *= 0.6
            candidates.append((score, rank, pos, text))
    if not candidates:
        return ""
    candidates.sort(key=lambda c: -c[0])
    best = candidates[0]
    chosen = [best]
    for cand in candidates[1:]:
        length = sum(len(c[3]) for c in chosen) + len(cand[3])
        if cand[0] >= 0.75 * best[0] and cand[0] > 0 and length <= max_chars:
            chosen.append(cand)
        if len(chosen) == 2:
            break
    chosen.sort(key=lambda c: (c[1], c[2]))
    return trim(" ".join(c[3] for c in chosen), max_chars)


def trim(text: str, max_chars: int) -> str:
    """Cut a too-long reply at a clause end, never mid-word."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    for mark in (". ", "; ", ", "):
        cut = head.rfind(mark)
        if cut > max_chars // 2:
            return head[:cut].rstrip(",;") + "."
    return head.rsplit(" ", 1)[0] + "…"
