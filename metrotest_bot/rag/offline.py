"""The offline answer: the sentences of the retrieved passages that answer the question.

Used without an API key and as the LLM's fallback. Sentences are scored by
the question's terms they contain (rare terms count more), the best one or
two are kept in their original order, and the reply is trimmed short for
the phone.
"""
from __future__ import annotations

import re

from razdel import sentenize

from . import analysis
from .types import Passage

MAX_CHARS = 320
# The caller wants a number (price, time, term, phone): sentences with digits win ties.
_WANTS_NUMBER = re.compile(r"сколько|скольк|почем|почём|цен|стоит|стоимост|когда|во сколько|срок|телефон|номер|"
                           r"адрес|почт|как долго|быстро", re.IGNORECASE)


def _sentence_score(sentence_terms: set[str], weights: dict[str, float]) -> float:
    return sum(w for t, w in weights.items() if t in sentence_terms)


def compose(question: str, passages: list[Passage], idf=None, max_chars: int = MAX_CHARS) -> str:
    """A short spoken reply from the best passages (empty when there are none)."""
    if not passages:
        return ""
    weights = analysis.query_weights(question, idf)
    wants_number = bool(_WANTS_NUMBER.search(question))
    top_score = passages[0].score or 0.0
    candidates = []  # (score, passage rank, position in passage, sentence)
    for rank, passage in enumerate(passages[:2]):
        if rank and top_score and passage.score < 0.75 * top_score:
            break
        section_terms = set(analysis.index_terms(passage.section))
        for pos, s in enumerate(sentenize(passage.text)):
            text = s.text.strip()
            if not text:
                continue
            terms = set(analysis.index_terms(text))
            score = _sentence_score(terms, weights) + 0.3 * _sentence_score(section_terms - terms, weights)
            if wants_number and re.search(r"\d", text):
                score += 0.5
            score *= 1.0 if rank == 0 else 0.8
            candidates.append((score, rank, pos, text))
    if not candidates:
        return ""
    candidates.sort(key=lambda c: -c[0])
    best = candidates[0]
    chosen = [best]
    for cand in candidates[1:]:
        length = sum(len(c[3]) for c in chosen) + len(cand[3])
        if cand[0] >= 0.6 * best[0] and cand[0] > 0 and length <= max_chars:
            chosen.append(cand)
        if len(chosen) == 2:
            break
    chosen.sort(key=lambda c: (c[1], c[2]))
    text = " ".join(c[3] for c in chosen)
    return trim(text, max_chars)


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
