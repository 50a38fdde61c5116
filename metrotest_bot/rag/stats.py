"""Term statistics of one KB index: rarity, section leads, words derived from one root.

Built once when an index is loaded; read by the ranker, the gate's features
and the offline answerer. Everything here comes from the KB itself.
"""
from __future__ import annotations

import math
import re
from collections import Counter

from haystack import Document
from razdel import sentenize

from . import analysis
from .pacing import give_way
from .query import Query, Slot
from .semantic import PassageVectors


SENTENCE_CACHE = 20_000  # passages whose sentences' terms are kept
LABEL_TERMS = 3  # a passage's first sentence this short is a label (a model's code, a name), not a statement
MAX_TITLES = 3  # titles covering a question beyond which it names no one section


class KBStats:
    """Term rarity over the passages of one index (for the ranker, the gate and the offline answerer)."""

    def __init__(self, documents: list[Document], vectors: PassageVectors | None = None):
        self.n = len(documents)
        # The passages' sentence embeddings, as stored with the index (the gate's semantic features).
        self.vectors = vectors if vectors is not None else PassageVectors()
        self.df: Counter = Counter()
        for i, doc in enumerate(documents):
            self.df.update(set((doc.content or "").split()))
            give_way(i)
        self._by_prefix: dict[str, list[str]] = {}  # KB words by their first four letters
        for t in self.df:
            if t.isalpha() and len(t) >= 4:
                self._by_prefix.setdefault(t[:4], []).append(t)
        self._related: dict[str, tuple[str, ...]] = {}
        self._sentences: dict[str, list[tuple[str, frozenset[str]]]] = {}  # passage id → its sentences
        self._terms: dict[str, frozenset[str]] = {}  # passage id → its index terms
        # Each section's leading passage and its title's terms (for questions that name a section's topic).
        self.leads: dict[str, Document] = {}
        for doc in sorted(documents, key=lambda d: d.meta.get("position", 0)):
            self.leads.setdefault(doc.meta.get("section", ""), doc)
        self.leads.pop("", None)  # text before the first heading has no title to match
        self.title_terms: dict[str, frozenset[str]] = {}
        for i, title in enumerate(self.leads):  # a big KB's thousands of titles analysed: ~0.1 ms each
            self.title_terms[title] = frozenset(analysis.index_terms(title) + analysis.section_markers(title))
            give_way(i)
        # Titles by the terms they hold (in file order): a big KB has thousands of sections.
        self._title_order = {title: i for i, title in enumerate(self.title_terms)}
        self._titles_by_term: dict[str, list[str]] = {}
        for title, terms in self.title_terms.items():
            for term in terms:
                self._titles_by_term.setdefault(term, []).append(title)

    def titles_covering(self, parsed: Query) -> list[str]:
        """Section titles that name everything the question asks about (see title_covers).

        Only titles holding a form of every said word (or, with none said, a term the phrasing
        implies) can cover the question: those are looked up, not every title. When more than
        MAX_TITLES do, the question names no one section's topic (a big KB repeats its headings)."""
        said = [s for s in parsed.slots if s.said]
        candidates: set[str] | None = None
        for keys in ([list(s.lemmas) + list(s.expansions) + [analysis.stem(t) for t in s.lemmas] for s in said]
                     or [parsed.extra + parsed.soft_markers]):
            found = {title for key in keys if key for title in self._titles_by_term.get(key, ())}
            candidates = found if candidates is None else candidates & found
            if not candidates:
                return []
        covering = [title for title in sorted(candidates or (), key=self._title_order.__getitem__)
                    if self.title_covers(parsed, title)]
        return covering if len(covering) <= MAX_TITLES else []

    def title_covers(self, parsed: Query, title: str) -> bool:
        """Does the section title hold every content word the caller said?

        «условия доставки» → «Доставка», «что вы за фирма» → «О компании». A
        question with no said word (only phrasing: «расскажите о себе») is
        covered by a title holding one of the terms its phrasing implies."""
        terms = self.title_terms.get(title)
        if not terms:
            return False
        said = [s for s in parsed.slots if s.said]
        if said:
            return all(slot_match(s, terms, self)[0] >= 0.7 for s in said)
        return any(t in terms for t in parsed.extra + parsed.soft_markers)

    def section_terms(self, title: str) -> frozenset[str]:
        return self.title_terms.get(title, frozenset())

    def sentences(self, passage_id: str, text: str) -> list[tuple[str, frozenset[str]]]:
        """Each sentence of a passage with its index terms, computed on first use and kept (bounded):
        the gate's features and the offline answer read the same ones."""
        cached = self._sentences.get(passage_id)
        if cached is None:
            cached = [(t, frozenset(analysis.index_terms(t))) for t in (s.text.strip() for s in sentenize(text)) if t]
            if len(self._sentences) >= SENTENCE_CACHE:
                self._sentences.clear()  # a big KB: keep memory bounded, recompute the few asked again
            self._sentences[passage_id] = cached
        return cached

    def passage_terms(self, doc: Document) -> frozenset[str]:
        """A passage's index terms, split once and kept (bounded): every question reads its candidates'
        (splitting a passage again costs ~15 µs, twenty of them a question)."""
        cached = self._terms.get(doc.id)
        if cached is None:
            cached = frozenset((doc.content or "").split())
            if len(self._terms) >= SENTENCE_CACHE:
                self._terms.clear()
            self._terms[doc.id] = cached
        return cached

    def label_terms(self, passage_id: str, text: str) -> frozenset[str]:
        """A passage that opens with a label («ПМ-8. Объём камеры 8 литров… Цена — 76 000 рублей.»): the
        label's terms, which its other sentences are about as a section's are about its title."""
        sentences = self.sentences(passage_id, text)
        if len(sentences) >= 2 and 0 < sum(not t.startswith("#") for t in sentences[0][1]) <= LABEL_TERMS:
            return sentences[0][1]
        return frozenset()

    def heading_terms(self, section: str, passage_id: str, text: str) -> frozenset[str]:
        """What a passage's sentences are about besides their own words: its section's title and its label
        (the gate's features, the ranker and the offline answer read the same)."""
        return self.section_terms(section) | self.label_terms(passage_id, text)

    def sentence_terms(self, doc: Document) -> list[frozenset[str]]:
        return [terms for _, terms in self.sentences(doc.id, doc.meta.get("text", ""))]

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def known(self, term: str) -> bool:
        return term in self.df

    def knows(self, slot: Slot) -> bool:
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
            # A diminutive undone: печка ~ печь, телефончик ~ телефон, водичка ~ вода.
            for base in {term[:-len(x)] for x in _DIMINUTIVE if term.endswith(x) and len(term) - len(x) >= 3}:
                out += [base + e for e in _ENDINGS if base + e in self.df]
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
        self._related[term] = tuple(dict.fromkeys(out))
        return self._related[term]


# Consonants that alternate between related Russian words (грузить ~ гружу, платить ~ плачу, простить ~ прощать).
_ALTERNATIONS = str.maketrans({"ж": "з", "д": "з", "ш": "с", "ч": "т", "щ": "т"})
_NEGATIONS = ("не", "без", "бес")
# A diminutive or colloquial suffix undone leaves the word's base, found in the KB with an ending of one letter.
_DIMINUTIVE = ("очка", "ечка", "ичка", "чка", "очко", "ечко", "чко", "чик", "ка", "ко")
_ENDINGS = ("", "ь", "а", "о", "и", "ы", "я", "й")


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


def slot_match(slot: Slot, terms: set[str], stats: KBStats) -> tuple[float, float]:
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
