"""Retrieval as a Haystack pipeline of @component classes.

    question ─▶ QueryAnalyzer ─ query ─▶ BM25 retriever (embedded or Elasticsearch) ─┐
                      └──────── weights ─────────────────────────────▶ PassageRanker ─▶ RelevanceGate
                                                                                      └▶ passages, answered

The backend retriever fetches candidates by lemma terms; PassageRanker
rescores them the same way on both backends (rare question terms that a
passage or its section title contains); RelevanceGate decides whether the
KB answers the question at all. One pipeline per loaded KB index, built
once when the index is loaded, shared by every request.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

from haystack import Document, Pipeline, component

from . import analysis

CANDIDATES = 20  # fetched from the backend
TOP_K = 3  # passages returned
# Share of the question's (rarity-weighted) terms the best passage must hold.
GATE_COVERAGE = 0.5


class KBStats:
    """Term rarity over the passages of one index (for the ranker, the gate and the offline answerer)."""

    def __init__(self, documents: list[Document]):
        self.n = len(documents)
        self.df: Counter = Counter()
        for doc in documents:
            self.df.update(set((doc.content or "").split()))
        self._words = [t for t in self.df if t.isalpha()]
        self._related: dict[str, tuple[str, ...]] = {}

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def known(self, term: str) -> bool:
        return term in self.df

    def related(self, term: str) -> tuple[str, ...]:
        """KB words sharing a long prefix with `term`: продлить ~ продление, поверитель ~ поверка.

        Derived words are not joined by lemmas; a shared prefix of at least five
        letters and 60 % of the shorter word is a cheap, language-wide signal."""
        cached = self._related.get(term)
        if cached is not None:
            return cached
        out = []
        if term.isalpha() and len(term) >= 5:
            for word in self._words:
                if word == term or word[:4] != term[:4]:
                    continue
                common = 0
                for a, b in zip(word, term):
                    if a != b:
                        break
                    common += 1
                if common >= max(5, math.ceil(0.6 * min(len(word), len(term)))):
                    out.append(word)
        self._related[term] = tuple(out)
        return self._related[term]


@component
class QueryAnalyzer:
    """Caller's question → search query (lemma terms) and its analysis (slots, markers)."""

    @component.output_types(query=str, parsed=analysis.Query)
    def run(self, question: str):
        parsed = analysis.analyze_question(question)
        return {"query": parsed.search_text() or "∅", "parsed": parsed}


def _slot_match(slot: analysis.Slot, terms: set[str], stats: KBStats) -> tuple[float, float]:
    """(credit 0..1, idf) of one question word against a passage's terms."""
    hits = [t for t in slot.lemmas if t in terms]
    if hits:
        return 1.0, max(stats.idf(t) for t in hits)
    idf = min(stats.idf(t) for t in slot.lemmas)
    if any(e in terms for e in slot.expansions):
        return 0.8, idf
    if any(s in terms for s in (analysis.stem(t) for t in slot.lemmas) if s):
        return 0.7, idf
    if any(r in terms for t in slot.lemmas for r in stats.related(t)):
        return 0.6, idf
    return 0.0, idf


def coverage(parsed: analysis.Query, terms: set[str], stats: KBStats) -> float:
    """Rarity-weighted share of the question's words a passage holds (directly, by synonym or stem).

    Generic words (делать, стоить) count only when the question has nothing else."""
    slots = [s for s in parsed.slots if s.said] or parsed.slots
    if not slots:
        return 1.0 if parsed.extra and any(t in terms for t in parsed.extra) else 0.0
    total = got = 0.0
    for slot in slots:
        credit, idf = _slot_match(slot, terms, stats)
        total += idf
        got += credit * idf
    return got / total if total else 0.0


def match_score(parsed: analysis.Query, terms: set[str], stats: KBStats) -> float:
    """Weighted match of all the question's terms (said, light, implied, markers), rarity-weighted."""
    score = 0.0
    for slot in parsed.slots:
        credit, idf = _slot_match(slot, terms, stats)
        score += slot.weight * credit * idf
    for t in parsed.extra:
        if t in terms:
            score += analysis.W_SYNONYM * stats.idf(t)
    for m in parsed.markers + parsed.soft_markers:
        if m in terms:
            score += analysis.W_MARKER * stats.idf(m)
    return score


def holds_asked_fact(parsed: analysis.Query, terms: set[str]) -> bool:
    """The question asks for a kind of fact (price, phone, hours…): does the text hold one?"""
    return not parsed.markers or any(m in terms for m in parsed.markers)


@component
class PassageRanker:
    """Rescore candidates the same way on every backend: question coverage + term match + BM25."""

    def __init__(self, stats: KBStats, top_k: int = TOP_K):
        self.stats = stats
        self.top_k = top_k

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document], parsed: analysis.Query):
        if not documents:
            return {"documents": []}
        best_bm25 = max((d.score or 0.0) for d in documents) or 1.0
        scored = []
        for doc in documents:
            terms = set((doc.content or "").split())
            cov = coverage(parsed, terms, self.stats)
            match = match_score(parsed, terms, self.stats)
            scored.append((doc, cov, match))
        best_match = max(m for _, _, m in scored) or 1.0
        rescored = []
        for doc, cov, match in scored:
            score = 0.4 * cov + 0.4 * match / best_match + 0.2 * (doc.score or 0.0) / best_bm25
            if not holds_asked_fact(parsed, set((doc.content or "").split())):
                score *= 0.8  # asked for a price and no price here: likely not the answer
            if not doc.meta.get("section"):
                score *= 0.85  # text before the first heading: usually a preamble, not an answer
            rescored.append(replace(doc, score=round(score, 4), meta={**doc.meta, "coverage": round(cov, 4)}))
        rescored.sort(key=lambda d: -d.score)
        return {"documents": rescored[: self.top_k]}


@component
class RelevanceGate:
    """Does the KB answer this? The best passage must hold enough of the question."""

    def __init__(self, threshold: float = GATE_COVERAGE):
        self.threshold = threshold

    @component.output_types(documents=list[Document], answered=bool)
    def run(self, documents: list[Document]):
        answered = bool(documents) and documents[0].meta.get("coverage", 0.0) >= self.threshold
        return {"documents": documents, "answered": answered}


def build_pipeline(store, stats: KBStats) -> Pipeline:
    pipe = Pipeline()
    pipe.add_component("analyzer", QueryAnalyzer())
    pipe.add_component("retriever", store.bm25_retriever(top_k=CANDIDATES))
    pipe.add_component("ranker", PassageRanker(stats))
    pipe.add_component("gate", RelevanceGate())
    pipe.connect("analyzer.query", "retriever.query")
    pipe.connect("analyzer.parsed", "ranker.parsed")
    pipe.connect("retriever.documents", "ranker.documents")
    pipe.connect("ranker.documents", "gate.documents")
    return pipe


def run_pipeline(pipe: Pipeline, question: str) -> tuple[list[Document], bool]:
    out = pipe.run({"analyzer": {"question": question}})
    return out["gate"]["documents"], out["gate"]["answered"]
