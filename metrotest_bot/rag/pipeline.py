"""Retrieval as a Haystack pipeline of @component classes.

    question ─▶ QueryAnalyzer ─ query ─▶ BM25 retriever (embedded or Elasticsearch) ─▶ SectionLeads ─┐
                      └──────── parsed ──────────────────────────────────────────────▶ PassageRanker ─▶ RelevanceGate
                                                                                                     └▶ passages, answered

The backend retriever fetches candidates by lemma terms; SectionLeads adds
the leading passage of every section whose title names what the question
asks about («расскажите о компании» → «О компании»); PassageRanker rescores
them the same way on both backends (rare question terms that a passage or
its section title contains); RelevanceGate decides whether the KB answers
the question at all. One pipeline per loaded KB index, built
once when the index is loaded, shared by every request.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import replace

from haystack import Document, Pipeline, component

from . import analysis

CANDIDATES = 20  # fetched from the backend
TOP_K = 3  # passages returned
# Share of the question's (rarity-weighted) terms the best passage must hold.
GATE_COVERAGE = 0.5
# Coverage the passage holding a price must reach for a price question to count as answered.
PRICE_COVERAGE = 0.5
# Weight in the gate's coverage of a question's verb or adverb that no KB passage uses.
UNKNOWN_MINOR_WEIGHT = 0.5
# Coverage factor of a passage lacking the measurable quantity asked for (weight, force, energy…).
QUANTITY_MISSING_FACTOR = 0.5
# Ranking bonus of passages whose section title names the question's topic, and of that section's first passage.
TITLE_BONUS, LEAD_BONUS = 0.1, 0.05


class KBStats:
    """Term rarity over the passages of one index (for the ranker, the gate and the offline answerer)."""

    def __init__(self, documents: list[Document]):
        self.n = len(documents)
        self.df: Counter = Counter()
        for doc in documents:
            self.df.update(set((doc.content or "").split()))
        self._by_prefix: dict[str, list[str]] = {}  # KB words by their first four letters
        for t in self.df:
            if t.isalpha() and len(t) >= 4:
                self._by_prefix.setdefault(t[:4], []).append(t)
        self._related: dict[str, tuple[str, ...]] = {}
        # Each section's leading passage and its title's terms (for questions that name a section's topic).
        self.leads: dict[str, Document] = {}
        for doc in sorted(documents, key=lambda d: d.meta.get("position", 0)):
            self.leads.setdefault(doc.meta.get("section", ""), doc)
        self.leads.pop("", None)  # text before the first heading has no title to match
        self.title_terms = {title: frozenset(analysis.index_terms(title) + analysis.section_markers(title))
                            for title in self.leads}

    def titles_covering(self, parsed: analysis.Query) -> list[str]:
        """Section titles that name everything the question asks about (see title_covers)."""
        return [title for title in self.leads if self.title_covers(parsed, title)]

    def title_covers(self, parsed: analysis.Query, title: str) -> bool:
        """Does the section title hold every content word the caller said?

        «условия доставки» → «Доставка», «что вы за фирма» → «О компании». A
        question with no said word (only phrasing: «расскажите о себе») is
        covered by a title holding one of the terms its phrasing implies."""
        terms = self.title_terms.get(title)
        if not terms:
            return False
        said = [s for s in parsed.slots if s.said]
        if said:
            return all(_slot_match(s, terms, self)[0] >= 0.7 for s in said)
        return any(t in terms for t in parsed.extra + parsed.soft_markers)

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def known(self, term: str) -> bool:
        return term in self.df

    def knows(self, slot: analysis.Slot) -> bool:
        """Is a question word (or its synonym, stem or derived word) used anywhere in the KB?"""
        stems = (analysis.stem(t) for t in slot.lemmas)
        return (any(t in self.df for t in slot.lemmas + slot.expansions) or any(s in self.df for s in stems if s)
                or any(self.related(t) for t in slot.lemmas))

    def related(self, term: str) -> tuple[str, ...]:
        """KB words derived from the same root as `term`: продлить ~ продление, поверитель ~ поверка,
        отгрузить ~ отгружаться, обед ~ обеденный, платный ~ бесплатный.

        Derived words are not joined by lemmas. A shared prefix of at least five
        letters and 60 % of the shorter word (or the whole shorter word), compared
        with the usual consonant alternations folded (з/ж/д, с/ш, т/ч/щ), is a cheap,
        language-wide signal; so is a negating prefix (не-, без-, бес-)."""
        cached = self._related.get(term)
        if cached is not None:
            return cached
        out = []
        if term.isalpha() and len(term) >= 4:
            negated = [p + term for p in _NEGATIONS] + [term[len(p):] for p in _NEGATIONS
                                                              if term.startswith(p) and len(term) - len(p) >= 4]
            out += [w for w in negated if w in self.df]
            folded = _fold(term)
            verb_stems = _verb_stems(term)
            for word in self._by_prefix.get(term[:4], ()):
                if word == term:
                    continue
                if verb_stems and _fold(word).startswith(verb_stems):
                    out.append(word)  # обучить ~ обучение, изготавливать ~ изготовление
                    continue
                common = 0
                for a, b in zip(_fold(word), folded):
                    if a != b:
                        break
                    common += 1
                shorter = min(len(word), len(term))
                if (len(term) >= 5 and common >= max(5, math.ceil(0.6 * shorter))) or common == shorter:
                    out.append(word)
        self._related[term] = tuple(out)
        return self._related[term]


# Consonants that alternate between related Russian words (грузить ~ гружу, платить ~ плачу, простить ~ прощать).
_ALTERNATIONS = str.maketrans({"ж": "з", "д": "з", "ш": "с", "ч": "т", "щ": "т"})
_NEGATIONS = ("не", "без", "бес")


def _fold(word: str) -> str:
    return word.translate(_ALTERNATIONS)


_INFINITIVE = re.compile(r"(?:[аеиоуыя]?ть(?:ся)?|ти(?:сь)?|чь(?:ся)?)$")


def _verb_stems(term: str) -> tuple[str, ...]:
    """Stems of an infinitive that the nouns made from it start with: обучить → обуч;
    изготавливать → изготавлив, изготавл and (the imperfective -ыва-/-ива- undone with its о→а) изготовл."""
    if not term.endswith(("ть", "ться", "ти", "тись", "чь", "чься")) or not analysis.is_verb(term):
        return ()
    stem = _INFINITIVE.sub("", term)
    stems = [stem]
    if stem.endswith(("ыв", "ив")):
        base = stem[:-2]
        stems.append(base)  # заказывать ~ заказ, оплачивать ~ оплата
        if "а" in base:
            i = base.rindex("а")
            stems.append(base[:i] + "о" + base[i + 1:])
    return tuple(_fold(s) for s in stems if len(s) >= 4)


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

    Generic words (делать, стоить) count only when the question has nothing else; then
    the terms its phrasing implies («до какого часа вы открыты» → работать, режим) do too."""
    said = [s for s in parsed.slots if s.said]
    implied = 1.0 if parsed.extra and any(t in terms for t in parsed.extra) else 0.0
    if not said and implied:
        return implied
    slots = said or parsed.slots
    if not slots:
        return implied
    total = got = 0.0
    quantity_missing = False
    for slot in slots:
        credit, idf = _slot_match(slot, terms, stats)
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


def topic_found(parsed: analysis.Query, terms: set[str], stats: KBStats) -> bool:
    """Does the passage hold what the question is about, not only what the caller wants done?

    «можно заказать пиццу», «где купить телевизор»: the action (заказать, купить)
    is in the KB, the thing (пицца, телевизор) is not. A passage that holds
    none of the question's said nouns answers it only if those nouns are words
    the KB uses elsewhere (a paraphrase, not a foreign topic)."""
    nouns = [s for s in parsed.slots if s.said and not s.verb]
    if not nouns or any(_slot_match(s, terms, stats)[0] >= 0.7 for s in nouns):
        return True
    return all(stats.knows(s) for s in nouns)


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
class SectionLeads:
    """Add the leading passage of each section whose title names the question's topic.

    A caller asking «расскажите о компании» wants the start of «О компании»,
    which BM25 may rank below passages that merely mention the word."""

    def __init__(self, stats: KBStats):
        self.stats = stats

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document], parsed: analysis.Query):
        have = {d.id for d in documents}
        leads = [self.stats.leads[t] for t in self.stats.titles_covering(parsed)]
        return {"documents": documents + [replace(d, score=0.0) for d in leads if d.id not in have]}


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
            scored.append((doc, terms, cov, match))
        best_match = max(m for *_, m in scored) or 1.0
        titles = set(self.stats.titles_covering(parsed))
        rescored = []
        for doc, terms, cov, match in scored:
            score = 0.4 * cov + 0.4 * match / best_match + 0.2 * (doc.score or 0.0) / best_bm25
            section = doc.meta.get("section", "")
            if section in titles:
                # The question names this section's topic; with no particular fact asked
                # for, the section's opening says best what it is about.
                score += TITLE_BONUS
                if not parsed.markers and self.stats.leads[section].id == doc.id:
                    score += LEAD_BONUS
            if not holds_asked_fact(parsed, terms):
                score *= 0.8  # asked for a price and no price here: likely not the answer
            if not doc.meta.get("section"):
                score *= 0.85  # text before the first heading: usually a preamble, not an answer
            topic = topic_found(parsed, terms, self.stats)
            rescored.append(replace(doc, score=round(score, 4),
                                    meta={**doc.meta, "coverage": round(cov, 4), "topic": topic,
                                          "holds_price": analysis.M_PRICE in terms}))
        rescored.sort(key=lambda d: -d.score)
        return {"documents": rescored[: self.top_k]}


@component
class RelevanceGate:
    """Does the KB answer this? The best passage must hold enough of the question, and its topic."""

    def __init__(self, threshold: float = GATE_COVERAGE):
        self.threshold = threshold

    @component.output_types(documents=list[Document], answered=bool)
    def run(self, documents: list[Document], parsed: analysis.Query | None = None):
        best = documents[0].meta if documents else {}
        answered = best.get("coverage", 0.0) >= self.threshold and best.get("topic", True)
        if answered and parsed is not None and parsed.asks_price:
            # A price question needs a price among the passages given, in a passage about what was asked
            # («сколько стоит копёр на 450 Дж»: the price of КМ-300 does not answer it).
            answered = any(d.meta.get("holds_price") and d.meta.get("coverage", 0.0) >= PRICE_COVERAGE
                           for d in documents)
        return {"documents": documents, "answered": answered}


def build_pipeline(store, stats: KBStats) -> Pipeline:
    pipe = Pipeline()
    pipe.add_component("analyzer", QueryAnalyzer())
    pipe.add_component("retriever", store.bm25_retriever(top_k=CANDIDATES))
    pipe.add_component("leads", SectionLeads(stats))
    pipe.add_component("ranker", PassageRanker(stats))
    pipe.add_component("gate", RelevanceGate())
    pipe.connect("analyzer.query", "retriever.query")
    pipe.connect("analyzer.parsed", "leads.parsed")
    pipe.connect("analyzer.parsed", "ranker.parsed")
    pipe.connect("retriever.documents", "leads.documents")
    pipe.connect("leads.documents", "ranker.documents")
    pipe.connect("ranker.documents", "gate.documents")
    pipe.connect("analyzer.parsed", "gate.parsed")
    return pipe


def run_pipeline(pipe: Pipeline, question: str) -> tuple[list[Document], bool]:
    out = pipe.run({"analyzer": {"question": question}})
    return out["gate"]["documents"], out["gate"]["answered"]
