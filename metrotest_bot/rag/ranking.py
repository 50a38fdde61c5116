"""How candidate passages are ordered: features per (question, passage) and a learned linear model.

The order used to be a hand-tuned sum (0.4 coverage + 0.4 term match + 0.2 BM25, a bonus for a
titled section, one for the previous answer's section, penalties for a missing asked fact…). Those
weights are now learned from the labelled questions (`python -m bench train-gate` fits them with the
gate, on which passages hold the expected fact) and shipped as data (ranker_model.json): a
pairwise logistic model. A passage's score is exp(its raw score − the best one's): 1.0 for the best,
a steep share for the rest (the gate's margin reads it; the offline answer reads the order only).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import semantic
from .query import Query, is_code
from .scoring import coverage, holds_asked_fact, match_score
from .stats import KBStats

RANKER_MODEL = Path(__file__).with_name("ranker_model.json")

RANK_FEATURES = (
    "cov", "match", "bm25", "titled", "titled_lead", "same_section", "fact_missing", "preamble",
    "cov_own", "code_held", "followup_fact_missing", "sent_fact_cov", "title_cov",
    "lead_link", "sem", "sem_gap",
)


@dataclass(frozen=True)
class Candidate:
    """One passage fetched for a question, with what ranking it needs."""

    doc: object  # haystack Document
    terms: set
    cov: float
    match: float


def candidates(parsed: Query, documents: list, stats: KBStats) -> list[Candidate]:
    return [Candidate(doc, terms := stats.passage_terms(doc), coverage(parsed, terms, stats),
                      match_score(parsed, terms, stats)) for doc in documents]


def own_query(parsed: Query) -> Query | None:
    """A follow-up's own words, without the topic it carried («а делать его сколько будете» → делать)."""
    if not parsed.carried or parsed.own_slots is None:
        return None
    return Query(parsed.question, parsed.slots[:parsed.own_slots], parsed.markers, parsed.extra,
                 parsed.soft_markers, parsed.asks_price)


def rank_features(parsed: Query, found: list[Candidate], titles: set[str], stats: KBStats) -> list[list[float]]:
    """RANK_FEATURES for each candidate, in order. Shares are against the best candidate of this question."""
    best_bm25 = max(((c.doc.score or 0.0) for c in found), default=0.0) or 1.0
    best_match = max((c.match for c in found), default=0.0) or 1.0
    own = own_query(parsed)
    link = lead_terms(parsed.previous_section, stats) if parsed.carried else frozenset()
    link_total = sum(stats.idf(t) for t in link) or 1.0
    codes = [s.lemmas[0] for s in parsed.slots if is_code(s)]
    # The question's meaning against each passage's (a follow-up's with its topic): words said otherwise than
    # the KB writes them (the right passage was among the candidates but below three others for 13 of 134
    # questions on two unseen KBs).
    cosines = semantic.cosines(parsed, [c.doc for c in found], stats.vectors, context=True)
    best_cos = max(cosines, default=0.0)
    rows = []
    for c, cos in zip(found, cosines):
        section = c.doc.meta.get("section", "")
        titled = section in titles
        fact_missing = not holds_asked_fact(parsed, c.terms)
        rows.append([
            c.cov,
            c.match / best_match,
            (c.doc.score or 0.0) / best_bm25,
            float(titled),
            float(titled and not parsed.markers and stats.leads[section].id == c.doc.id),
            float(bool(parsed.previous_section) and section == parsed.previous_section),
            float(fact_missing),
            float(not section),
            coverage(own, c.terms, stats) if own is not None and own.slots else c.cov,
            float(any(code in c.terms for code in codes)),
            float(parsed.carried and fact_missing),
            sentence_fact_coverage(parsed, c.doc, stats),
            coverage(parsed, stats.section_terms(section), stats) if section else 0.0,
            sum(stats.idf(t) for t in link & c.terms) / link_total,
            cos,
            cos - best_cos,
        ])
    return rows


def lead_terms(section: str | None, stats: KBStats) -> frozenset[str]:
    """What the KB says the previous answer's subject is: its section's title and opening sentence
    («Электромеханические универсальные испытательные машины серии УИМ…»), so that «а гарантия на неё»
    finds «гарантия на электромеханические машины» though the warranty passage never names УИМ."""
    lead = stats.leads.get(section or "")
    if lead is None:
        return frozenset()
    first = stats.sentence_terms(lead)[:1]
    return stats.section_terms(section) | (first[0] if first else frozenset())


def sentence_fact_coverage(parsed: Query, doc, stats: KBStats) -> float:
    """Best coverage of one sentence (with its section's title and its passage's label) that holds the asked kind of fact: the
    subject and the fact said together, not in two sentences about different things."""
    title = stats.heading_terms(doc.meta.get("section", ""), doc.id, doc.meta.get("text", ""))
    best = 0.0
    for sentence in stats.sentence_terms(doc):
        if holds_asked_fact(parsed, sentence):
            best = max(best, coverage(parsed, sentence | title, stats))
    return best


@dataclass(frozen=True)
class RankModel:
    """raw = bias + Σ weight · feature; only the order (and the gaps) between candidates matter."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    @classmethod
    def from_dict(cls, data: dict) -> "RankModel":
        """Weights in RANK_FEATURES' order, whatever order the file lists them in; a feature missing from the
        file (a model trained before it existed) is an error, not a silently shifted weight."""
        weights = dict(zip(data["features"], data["weights"]))
        missing = [f for f in RANK_FEATURES if f not in weights]
        if missing:
            raise ValueError(f"ranker model lacks features {missing}: run `python -m bench train-gate`")
        return cls(RANK_FEATURES, tuple(float(weights[f]) for f in RANK_FEATURES), float(data["bias"]))

    def raw(self, row: list[float]) -> float:
        return self.bias + sum(w * x for w, x in zip(self.weights, row))

    def scores(self, rows: list[list[float]]) -> list[float]:
        """Each candidate's score relative to the best one: exp(raw − best raw), 1.0 for the best. The
        weights only order (they are fitted on pairs); the gate's margin reads the ratio to the best."""
        raw = [self.raw(row) for row in rows]
        best = max(raw, default=0.0)
        return [math.exp(max(-50.0, z - best)) for z in raw]


@lru_cache(maxsize=4)
def load_ranker(path: str = str(RANKER_MODEL)) -> RankModel:
    """The shipped weights, read once per process."""
    return RankModel.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
