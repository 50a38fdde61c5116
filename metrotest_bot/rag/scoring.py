"""How well passages answer a question: match measures, the gate's features and its learned model.

The gate decides whether the KB answers the question at all. It is not a
hand-tuned threshold but a small learned model (gradient-boosted trees,
chosen over a logistic regression by cross-validation) over general features
of the (question, best passages) pair — coverage of the question's words weighted by
rarity, the normalised term match, whether the kind of fact asked for (a
price, a phone, hours…) is there, how much of the question the KB knows at
all — trained on labelled questions by `python -m bench train-gate` and
shipped as data (gate_model.json). The weights are KB-independent: every
feature is a share or a flag computed against the KB in force.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import analysis, semantic
from .query import QUERY_SYNONYMS, W_MARKER, W_SYNONYM, Query, is_code
from .stats import KBStats, slot_match

# Weight in the gate's coverage of a question's verb or adverb that no KB passage uses.
UNKNOWN_MINOR_WEIGHT = 0.5
# Coverage factor of a passage lacking the measurable quantity asked for (weight, force, energy…).
QUANTITY_MISSING_FACTOR = 0.5
# Coverage the passage holding a price must reach to count as answering a price question.
PRICE_COVERAGE = 0.5
GATE_MODEL = Path(__file__).with_name("gate_model.json")


def coverage(parsed: Query, terms: set[str], stats: KBStats, known_only: bool = False) -> float:
    """Rarity-weighted share of the question's words a passage holds (directly, by synonym or stem).

    Generic words (делать, стоить) count only when the question has nothing else; then
    the terms its phrasing implies («до какого часа вы открыты» → работать, режим) do too.
    known_only: only the words this KB uses anywhere (a caller's own words — «перерыв»,
    «фура» — cannot be held by any passage)."""
    said = [s for s in parsed.slots if s.said and (not known_only or stats.knows(s))]
    implied = 1.0 if parsed.extra and any(t in terms for t in parsed.extra) else 0.0
    if not said and implied:
        return implied
    slots = said or parsed.slots
    if not slots:
        return implied
    total = got = 0.0
    quantity_missing = False
    for slot in slots:
        credit, idf = slot_match(slot, terms, stats)
        quantity_missing |= credit == 0.0 and bool(set(slot.expansions) & analysis.UNITS)
        weight = 1.0
        if slot.context and not any(stats.known(t) for t in slot.lemmas):
            # What callers say of themselves in words the KB never uses («у нас лаборантка новая»,
            # «у нас импортозамещение») tells nothing about which passage answers them.
            weight = 0.0
        elif slot.minor and not stats.knows(slot):
            # A verb or adverb the KB never uses («сидит», «продиктуйте», «давно») is how this caller
            # asks, not what about: it counts, but less than a word naming the topic.
            weight = UNKNOWN_MINOR_WEIGHT
        total += weight * idf
        got += weight * credit * idf
    share = got / total if total else 0.0
    # «сколько весит ПИ-2000» over a passage about ПИ-2000 with no weight in it: the model is
    # there, the asked quantity (neither its name nor its unit) is not.
    return share * QUANTITY_MISSING_FACTOR if quantity_missing else share


def topic_found(parsed: Query, terms: set[str], stats: KBStats) -> bool:
    """Does the passage hold what the question is about, not only what the caller wants done?

    «можно заказать пиццу», «где купить телевизор»: the action (заказать, купить)
    is in the KB, the thing (пицца, телевизор) is not. A passage that holds
    none of the question's said nouns answers it only if those nouns are words
    the KB uses elsewhere (a paraphrase, not a foreign topic)."""
    nouns = [s for s in parsed.slots if s.said and not s.verb]
    if not nouns or any(slot_match(s, terms, stats)[0] >= 0.7 for s in nouns):
        return True
    return all(stats.knows(s) for s in nouns)


def match_score(parsed: Query, terms: set[str], stats: KBStats) -> float:
    """Weighted match of all the question's terms (said, light, implied, markers), rarity-weighted."""
    score = 0.0
    for slot in parsed.slots:
        credit, idf = slot_match(slot, terms, stats)
        score += slot.weight * credit * idf
    for t in parsed.extra:
        if t in terms:
            score += W_SYNONYM * stats.idf(t)
    for m in parsed.markers + parsed.soft_markers:
        if m in terms:
            score += W_MARKER * stats.idf(m)
    return score


def holds_asked_fact(parsed: Query, terms: set[str]) -> bool:
    """The question asks for a kind of fact (price, phone, hours…): does the text hold one?"""
    return not parsed.markers or any(m in terms for m in parsed.markers)




def max_match(parsed: Query, stats: KBStats) -> float:
    """match_score of a passage that held every term of the question: the scale of match_score."""
    score = sum(slot.weight * max(stats.idf(t) for t in slot.lemmas) for slot in parsed.slots)
    score += sum(W_SYNONYM * stats.idf(t) for t in parsed.extra)
    score += sum(W_MARKER * stats.idf(m) for m in parsed.markers + parsed.soft_markers)
    return score


def plainly_off_topic(parsed: Query, stats: KBStats) -> bool:
    """Nothing the caller named is a word of this KB («можно заказать пиццу», «какая погода»).

    With the gate's probability below pipeline.PLAINLY, the only screen before an LLM, which judges
    everything else itself."""
    said = [s for s in parsed.slots if s.said and not s.context]
    # Adverbs and particles («потом», «вообще») name no topic: only nouns, adjectives and codes do.
    nouns = [s for s in said if not s.minor]
    if nouns:
        return not any(stats.knows(s) for s in nouns)
    if parsed.carried:  # «а поверить его потом сколько будет»: the call's topic is what it is about
        return False
    return bool(said) and not any(stats.knows(s) for s in said) and not parsed.extra


def topic_of(parsed: Query, docs: list, stats: KBStats) -> list:
    """What the conversation is about after this question, for the next follow-up.

    For a follow-up, the topic it carried. Otherwise the question's naming words
    that the best passage's section title holds, with the codes and numbers the
    passage holds («пресс», «бетон», «2000» — not the caller's name nor «мы
    строительная лаборатория») and the verbs the title names; when the title
    holds none of them, every naming word the passage holds."""
    if parsed.carried:
        return parsed.topic
    subject = [s for s in parsed.slots if s.said and not s.verb and not s.context]
    if not docs:
        return [s for s in subject if stats.knows(s)]
    terms = docs[0].meta.get("terms") or stats.passage_terms(docs[0])
    held = [s for s in subject if slot_match(s, terms, stats)[0] > 0]
    title = stats.title_terms.get(docs[0].meta.get("section", ""), frozenset())
    # A verb is the topic when the section's title names it («модернизируете» under «Модернизация»).
    verbs = [s for s in parsed.slots if s.said and s.verb and not s.context]
    titled = [s for s in held + verbs if slot_match(s, title, stats)[0] > 0]
    if titled:
        return titled + [s for s in held if s not in titled and not s.lemmas[0].isalpha()]
    return held or [s for s in subject if stats.knows(s)]


def _names_unit(lemma: str) -> bool:
    return any(u in analysis.UNITS for u in QUERY_SYNONYMS.get(lemma, ()))


# --- the gate's features ------------------------------------------------------------

FEATURES = (
    "cov_top", "cov_max3", "cov_known_top", "sent_cov", "sent_fact_cov", "quantity_ok", "topic_top", "match_share",
    "known_share", "unknown_nouns", "asks_fact", "fact_top", "fact_any3", "price_ok", "margin", "said_words",
    "context_share", "code_asked", "code_top", "followup", "same_section_top", "named_fact", "carried_fact",
    "kind_unsure", "sem_top", "sem_max3", "sem_gap",
)
# Features whose rise never counts against answering (the gate's trees are fitted under that constraint):
# the top passage standing apart from the next in meaning (sem_gap) or in score (margin). Only a KB of a few
# passages reaches the highest values, too rarely in training for unconstrained trees to learn them right.
MONOTONE = ("sem_gap", "margin")


def features(parsed: Query, docs: list, stats: KBStats) -> dict[str, float]:
    """The gate's inputs for one question and its ranked passages (Documents with ranker meta)."""
    top = docs[:3]
    terms = [d.meta.get("terms") or stats.passage_terms(d) for d in top]
    said = [s for s in parsed.slots if s.said]
    nouns = [s for s in said if not s.verb and not s.context]
    codes = [s for s in parsed.slots if is_code(s)]
    scale = max_match(parsed, stats) or 1.0
    cov = [d.meta.get("coverage", 0.0) for d in top]
    scores = [d.score or 0.0 for d in top]
    price_ok = 1.0
    if parsed.asks_price:
        price_ok = float(any(d.meta.get("holds_price") and d.meta.get("coverage", 0.0) >= PRICE_COVERAGE
                             for d in top))
    # The models and quantities the caller names (КМ-750, «на семьсот пятьдесят джоулей»): a sentence
    # holding the asked fact should name them too — «Стоимость копра КМ-300 — …» does not answer for КМ-750.
    named = {s.lemmas[0] for s in said if is_code(s) or s.lemmas[0].isdigit()}
    named_fact = 0.0 if named else 1.0
    # A follow-up's carried topic counts for nothing in coverage (its words are not said): «а телефон их»
    # after a question about a dealer is covered by any sentence with a phone. carried_fact: the share of
    # the carried topic held by the best-covered sentence holding the asked fact (1.0 when none is carried).
    carried = [s for s in parsed.carried_slots if not s.said]
    carried_fact, best = (0.0 if carried else 1.0), -1.0
    sent_cov = sent_fact_cov = 0.0
    for doc in top:
        # One sentence holding the subject and the asked fact together: «почта бухгалтерии» is not
        # answered by a passage with the accounts' phone in one sentence and e-mails in another.
        section = stats.heading_terms(doc.meta.get("section", ""), doc.id, doc.meta.get("text", ""))
        for sentence in stats.sentence_terms(doc):
            c = coverage(parsed, sentence | section, stats)
            sent_cov = max(sent_cov, c)
            if holds_asked_fact(parsed, sentence):
                sent_fact_cov = max(sent_fact_cov, c)
                if named and named <= sentence | section:
                    named_fact = 1.0
                if carried:
                    held = sum(slot_match(s, sentence, stats)[0] > 0 for s in carried) / len(carried)
                    if (c, held) > (best, carried_fact):
                        best, carried_fact = c, held
    # «сколько весит ПИ-2000»: the unit of the asked quantity (кг, кВт…) must be in a passage. Not for a word
    # read two ways, one of them no quantity («ремонт весов»: of «вес», or of «весы», the instrument).
    units = {u for s in parsed.slots if all(_names_unit(lemma) for lemma in s.lemmas)
             for u in s.expansions if u in analysis.UNITS}
    quantity_ok = float(not units or any(units & t for t in terms))
    # How near the question's meaning is to its passages' (rag/semantic.py): a caller's own words the KB
    # never uses («куда заявку скинуть») can still mean what a passage says.
    sem = semantic.cosines(parsed, top, stats.vectors)
    return {
        "sem_top": sem[0] if sem else 0.0,
        "sem_max3": max(sem, default=0.0),
        "sem_gap": sem[0] - max(sem[1:]) if len(sem) > 1 else 0.0,
        "quantity_ok": quantity_ok,
        "cov_top": cov[0] if cov else 0.0,
        "cov_known_top": coverage(parsed, terms[0], stats, known_only=True) if top else 0.0,
        "sent_cov": sent_cov,
        "sent_fact_cov": sent_fact_cov,
        "cov_max3": max(cov, default=0.0),
        "topic_top": float(bool(top) and bool(top[0].meta.get("topic", True))),
        "match_share": min(1.0, match_score(parsed, terms[0], stats) / scale) if top else 0.0,
        "known_share": (sum(stats.knows(s) for s in said) / len(said)) if said else 1.0,
        "unknown_nouns": min(2, sum(not stats.knows(s) for s in nouns)) / 2,
        "asks_fact": float(bool(parsed.markers)),
        "fact_top": float(bool(top) and holds_asked_fact(parsed, terms[0])),
        "fact_any3": float(any(holds_asked_fact(parsed, t) for t in terms)),
        "price_ok": price_ok,
        # Rounded: the trees split on 0.9975 against 1.0 (a few rows of one KB), which says nothing.
        "margin": round((scores[0] - scores[1]) / scores[0], 2) if len(scores) > 1 and scores[0] > 0 else 1.0,
        "said_words": min(len(said), 6) / 6,
        "context_share": (sum(s.context for s in parsed.slots) / len(parsed.slots)) if parsed.slots else 0.0,
        "code_asked": float(bool(codes)),
        "code_top": float(bool(codes) and bool(top) and any(c.lemmas[0] in terms[0] for c in codes)),
        "followup": float(parsed.carried),
        "named_fact": named_fact,
        "carried_fact": carried_fact,
        "kind_unsure": float(parsed.kind_unsure),
        "same_section_top": float(bool(top) and bool(parsed.previous_section)
                                  and top[0].meta.get("section") == parsed.previous_section),
    }


@dataclass(frozen=True)
class GateModel:
    """Gradient-boosted decision trees over FEATURES (sklearn's, exported as plain data), with the
    decision threshold. Each tree is (feature index, threshold, left, right, value) per node: a node
    with left == -1 is a leaf. raw = base + rate · Σ leaf values; probability = logistic(raw).

    The trees are walked all at once, one level per step, over arrays built once (a leaf points to
    itself): hundreds of trees cost about what a dozen do walked node by node in Python."""

    features: tuple[str, ...]
    base: float
    rate: float
    trees: tuple[tuple[tuple[int, float, int, int, float], ...], ...]
    threshold: float = 0.5
    # sklearn's GradientBoostingClassifier compares features as float32, its histogram boosting as float64.
    float32: bool = True

    @classmethod
    def from_dict(cls, data: dict) -> "GateModel":
        trees = tuple(tuple((int(f), float(t), int(lft), int(rgt), float(v)) for f, t, lft, rgt, v in tree)
                      for tree in data["trees"])
        return cls(tuple(data["features"]), float(data["base"]), float(data["rate"]), trees,
                   float(data.get("threshold", 0.5)), bool(data.get("float32", True)))

    def __post_init__(self):
        width = max(len(tree) for tree in self.trees)
        n = len(self.trees) * width
        feature, threshold, value = np.zeros(n, np.intp), np.zeros(n), np.zeros(n)
        nxt = np.arange(n)  # a leaf's children are itself
        left, right = nxt.copy(), nxt.copy()
        depth = 0
        for i, tree in enumerate(self.trees):
            at = i * width
            levels = [0] * len(tree)
            for j, (f, t, lft, rgt, v) in enumerate(tree):
                value[at + j] = v
                if lft != -1:
                    feature[at + j], threshold[at + j] = f, t
                    left[at + j], right[at + j] = at + lft, at + rgt
                    levels[lft] = levels[rgt] = levels[j] + 1
            depth = max(depth, max(levels))
        object.__setattr__(self, "_walk", (np.arange(len(self.trees)) * width, feature, threshold, left, right,
                                           value, depth))

    def raw(self, values: dict[str, float]) -> float:
        roots, feature, threshold, left, right, value, depth = self._walk
        # Rounded as the model that trained them compares (float32 for sklearn's GradientBoosting, float64 for
        # its histogram boosting): a value a hair above a split goes down the same branch here as in training.
        x = np.array([values.get(name, 0.0) for name in self.features], np.float32 if self.float32 else np.float64)
        x = x.astype(np.float64)
        node = roots
        for _ in range(depth):
            node = np.where(x[feature[node]] <= threshold[node], left[node], right[node])
        return self.base + self.rate * float(value[node].sum())

    def probability(self, values: dict[str, float]) -> float:
        z = self.raw(values)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def answers(self, values: dict[str, float]) -> bool:
        return self.probability(values) >= self.threshold


@lru_cache(maxsize=4)
def load_gate(path: str = str(GATE_MODEL)) -> GateModel:
    """The shipped model, read once per process."""
    return GateModel.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
