"""Which sentence of the retrieved passages answers the question: a learned model.

The offline answer speaks one or two sentences of the top three passages. Each sentence is described
by a few features (how much of the question it holds, with and without its section's title, whether it
holds the kind of fact asked, the models and numbers named, a follow-up's carried topic, its passage's
rank) and ordered by a pairwise logistic model trained on the labelled questions: within a question, a
sentence holding the expected fact should score above one that does not (bench/train_compose.py, shipped
as data in sentence_model.json). It replaced hand-set weights (a rank factor per passage, a penalty for a
sentence without the asked kind of fact).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .query import Query, is_code
from .scoring import coverage, holds_asked_fact, match_score, max_match
from .stats import KBStats, slot_match
from .types import Passage

SENTENCE_MODEL = Path(__file__).with_name("sentence_model.json")

SENTENCE_FEATURES = (
    "log_score", "coverage", "own_coverage", "match", "holds_fact", "lacks_fact", "fact_coverage", "second_passage",
    "third_passage", "passage_score", "opening", "position", "named", "carried", "length",
)


@dataclass(frozen=True)
class Sentence:
    rank: int  # its passage's rank (0 = the best)
    pos: int  # its position in the passage
    text: str
    terms: frozenset[str]  # its own index terms
    section_terms: frozenset[str]  # its section title's (and the passage's label's)
    row: tuple[float, ...]  # SENTENCE_FEATURES


def sentences_of(parsed: Query, passages: list[Passage], stats: KBStats) -> list[Sentence]:
    """Every sentence of the given passages with its features."""
    scale = max_match(parsed, stats)
    said = [s for s in parsed.slots if s.said]
    named = {s.lemmas[0] for s in said if is_code(s) or s.lemmas[0].isdigit()}
    carried = [s for s in parsed.carried_slots if not s.said]
    asks = bool(parsed.markers)
    out = []
    for rank, passage in enumerate(passages):
        section = stats.heading_terms(passage.section, passage.id, passage.text)
        for pos, (text, terms) in enumerate(stats.sentences(passage.id, passage.text)):
            whole = terms | section
            cov = coverage(parsed, whole, stats) if scale else 0.0
            holds = asks and holds_asked_fact(parsed, terms)
            match = min(1.0, match_score(parsed, terms, stats) / scale) if scale else 0.0
            row = (
                # The hand-set score this model replaced, in log form (its rank factors and penalty are weights here).
                math.log(max(0.01, cov + 0.5 * match)),
                cov,
                coverage(parsed, terms, stats) if scale else 0.0,
                match,
                float(holds),
                float(asks and not holds),
                cov if holds else 0.0,
                float(rank == 1),
                float(rank == 2),
                float(passage.score),
                float(pos == 0),
                min(pos, 6) / 6,
                (len(named & whole) / len(named)) if named else 1.0,
                (sum(slot_match(s, whole, stats)[0] > 0 for s in carried) / len(carried)) if carried else 1.0,
                min(len(text), 400) / 400,
            )
            out.append(Sentence(rank, pos, text, terms, section, row))
    return out


@dataclass(frozen=True)
class SentenceModel:
    """raw = Σ weight · feature, fitted on pairs (a sentence holding the fact above one that does not, within a
    question): only the order and the gaps matter. A sentence's score is exp(raw − the best one's)."""

    weights: tuple[float, ...]

    @classmethod
    def from_dict(cls, data: dict) -> "SentenceModel":
        """Weights in SENTENCE_FEATURES' order; a feature missing from the file is an error."""
        weights = dict(zip(data["features"], data["weights"]))
        missing = [f for f in SENTENCE_FEATURES if f not in weights]
        if missing:
            raise ValueError(f"sentence model lacks features {missing}: run `python -m bench train-gate`")
        return cls(tuple(float(weights[f]) for f in SENTENCE_FEATURES))

    def scores(self, rows: list[tuple[float, ...]]) -> list[float]:
        """Each sentence's score relative to the best one: 1.0 for the best."""
        raw = [sum(w * x for w, x in zip(self.weights, row)) for row in rows]
        best = max(raw, default=0.0)
        return [math.exp(max(-50.0, z - best)) for z in raw]


@lru_cache(maxsize=4)
def load_sentence_model(path: str = str(SENTENCE_MODEL)) -> SentenceModel:
    """The shipped weights, read once per process."""
    return SentenceModel.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
