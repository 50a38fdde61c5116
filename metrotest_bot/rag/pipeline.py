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

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def known(self, term: str) -> bool:
        return term in self.df


@component
class QueryAnalyzer:
    """Caller's question → search query (lemma terms) and weighted terms."""

    @component.output_types(query=str, weights=dict)
    def run(self, question: str):
        weights = analysis.weighted_query_terms(question)
        return {"query": " ".join(weights) or "∅", "weights": weights}


def _expansions(term: str) -> list[str]:
    out = [term]
    out += analysis.QUERY_SYNONYMS.get(term, [])
    s = analysis.stem(term)
    if s:
        out.append(s)
    return out


def coverage(weights: dict[str, float], doc_terms: set[str], stats: KBStats) -> float:
    """Rarity-weighted share of the said terms a passage holds (directly, by synonym or stem)."""
    said = [t for t, w in weights.items() if w >= analysis.W_SAID]
    if not said:
        return 0.0
    total = got = 0.0
    for term in said:
        idf = stats.idf(term)
        total += idf
        if term in doc_terms:
            got += idf
        elif any(e in doc_terms for e in _expansions(term)[1:]):
            got += 0.8 * idf
    return got / total if total else 0.0


@component
class PassageRanker:
    """Rescore candidates: backend BM25 (normalised) + coverage of the question's terms."""

    def __init__(self, stats: KBStats, top_k: int = TOP_K):
        self.stats = stats
        self.top_k = top_k

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document], weights: dict):
        if not documents:
            return {"documents": []}
        best = max((d.score or 0.0) for d in documents) or 1.0
        rescored = []
        for doc in documents:
            terms = set((doc.content or "").split())
            cov = coverage(weights, terms, self.stats)
            score = 0.5 * (doc.score or 0.0) / best + 0.5 * cov
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
    pipe.connect("analyzer.weights", "ranker.weights")
    pipe.connect("retriever.documents", "ranker.documents")
    pipe.connect("ranker.documents", "gate.documents")
    return pipe


def run_pipeline(pipe: Pipeline, question: str) -> tuple[list[Document], bool]:
    out = pipe.run({"analyzer": {"question": question}})
    return out["gate"]["documents"], out["gate"]["answered"]
