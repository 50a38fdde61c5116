"""Callers' questions grouped by meaning: one question in different words counts once.

A question's key is the sorted set of its content-word lemmas: function words
(prepositions, conjunctions, particles, pronouns) and the way callers wrap a
question («скажите, пожалуйста», «а можно узнать») are dropped, the rest is
lemmatized, so «до скольки вы работаете» and «до скольки работаете вы?» share
the key «работать сколько», and «заказы на твердомеры» meets «заказ на
твердомер».

Ambiguous forms have several lemmas («прессы» is a form of «пресса» and of
«пресс»). The lemmas of each word are joined (union-find) over all questions
of the period, and a word counts as the smallest lemma of its group, so the
key of a word does not depend on which reading pymorphy ranks first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from ..morph import FUNCTION_POS, morph
from ..search.lemmas import normalize, words

# Lemmas that do not tell one question from another: politeness, fillers, the
# verbs a caller wraps a question in, pronoun-like words pymorphy tags otherwise.
STOP = frozenset("""
а алло ага да нет ну вот ой эх ладно хорошо понятно здравствуйте здравствовать привет
пожалуйста спасибо извинить извините простить девушка молодой человек
подсказать сказать узнать спросить уточнить интересовать интересно хотеть хотеться мочь можно нужно надо
вопрос такой какой какая какие каков который этот тот весь вообще ещё еще уже также тоже просто именно
мой наш ваш твой свой быть есть это то
""".split())

_EDGE_PUNCT = re.compile(r"^[\s\W_]+|[\s\W_]+$")
_END_PUNCT = re.compile(r"[\s?!.,;…]+$")
# Greetings of several words («добрый день»): dropped before the words are looked at.
_GREETING = re.compile(r"\b(?:добр(?:ый|ое|ого)\s+(?:день|дня|утро|утра|вечер|вечера)|доброго\s+времени\s+суток)\b",
                       re.IGNORECASE)


@lru_cache(maxsize=100_000)
def word_lemmas(word: str) -> frozenset[str]:
    """Every lemma a (normalized) word may have; empty for words that carry no meaning here."""
    if word.isdigit():
        return frozenset({word})
    parses = morph().parse(word)
    if not parses:
        return frozenset({word})
    top = parses[0]
    if top.tag.POS in FUNCTION_POS or normalize(top.normal_form) in STOP:
        return frozenset()
    return frozenset(lemma for lemma in (normalize(p.normal_form) for p in parses) if lemma not in STOP)


def shown(text: str) -> str:
    """How a phrasing is shown: as the caller said it, spaces squashed and a closing «?», «.» or «!»
    dropped; brackets, signs and digits stay («=SUM(A1)», «(2+3)» are shown whole)."""
    return _END_PUNCT.sub("", re.sub(r"\s+", " ", text or "")).strip()


def surface(text: str) -> str:
    """How phrasings are told apart: spaces squashed, edge punctuation dropped («цена?» is «цена»)."""
    return _EDGE_PUNCT.sub("", shown(text)).strip()


@dataclass
class Phrasing:
    text: str  # as first seen (newest, when rows come newest first)
    count: int = 0


@dataclass
class QuestionGroup:
    key: str
    count: int = 0
    unanswered: int = 0
    last_at: datetime | None = None
    phrasings: dict[str, Phrasing] = field(default_factory=dict)  # by lower-cased surface
    call_ids: list[int] = field(default_factory=list)  # newest first, distinct
    unanswered_call_ids: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The phrasing asked most often (the newest of equals)."""
        return max(self.phrasings.values(), key=lambda p: p.count).text

    @property
    def other_phrasings(self) -> list[str]:
        main = self.text
        return [p.text for p in sorted(self.phrasings.values(), key=lambda p: -p.count) if p.text != main]


class QuestionGroups:
    """Feed questions (newest first), then read groups()."""

    MAX_CALLS = 5  # call links kept per group

    def __init__(self):
        self._parent: dict[str, str] = {}
        self._asked: list[tuple[list[frozenset[str]], str, int | None, bool, datetime | None]] = []
        self._by_text: dict[str, list[frozenset[str]]] = {}

    def _find(self, x: str) -> str:
        parent = self._parent
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def _union(self, lemmas: frozenset[str]) -> None:
        roots = sorted({self._find(lemma) for lemma in lemmas})
        for r in roots[1:]:
            self._parent[r] = roots[0]  # the smallest lemma stays the root

    def add(self, question: str, call_id: int | None = None, answered: bool = True,
            at: datetime | None = None) -> None:
        text = surface(question)
        if not text:
            return
        lemma_sets = self._by_text.get(text.lower())
        if lemma_sets is None:
            lemma_sets = [s for s in (word_lemmas(w) for _, _, w in words(_GREETING.sub(" ", text))) if s]
            self._by_text[text.lower()] = lemma_sets
            for s in lemma_sets:
                self._union(s)
        self._asked.append((lemma_sets, shown(question), call_id, answered, at))

    def key(self, lemma_sets: list[frozenset[str]]) -> str:
        return " ".join(sorted({self._find(min(s)) for s in lemma_sets}))

    def groups(self) -> list[QuestionGroup]:
        """Groups, most asked first; questions with no content words are left out."""
        out: dict[str, QuestionGroup] = {}
        for lemma_sets, text, call_id, answered, at in self._asked:
            key = self.key(lemma_sets)
            if not key:
                continue
            g = out.get(key) or out.setdefault(key, QuestionGroup(key))
            g.count += 1
            if at is not None and (g.last_at is None or at > g.last_at):
                g.last_at = at
            told = surface(text).lower()  # one phrasing whatever its edge punctuation; shown as first seen
            p = g.phrasings.get(told) or g.phrasings.setdefault(told, Phrasing(text))
            p.count += 1
            if call_id is not None and call_id not in g.call_ids and len(g.call_ids) < self.MAX_CALLS:
                g.call_ids.append(call_id)
            if not answered:
                g.unanswered += 1
                if call_id is not None and call_id not in g.unanswered_call_ids \
                        and len(g.unanswered_call_ids) < self.MAX_CALLS:
                    g.unanswered_call_ids.append(call_id)
        return sorted(out.values(), key=lambda g: (-g.count, -(g.last_at.timestamp() if g.last_at else 0), g.key))


def question_key(question: str) -> str:
    """The key of one question on its own (no other questions to join lemmas with)."""
    groups = QuestionGroups()
    groups.add(question)
    return groups.key(groups._asked[0][0]) if groups._asked else ""
