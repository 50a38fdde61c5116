"""What retrieval found for one question, as the answer needs it; a two-part question is asked as two.

«сколько стоит ПИ-3000 и какая у него нагрузка»: the passage with the price and the one with the
load each hold half of the question, so neither covered it and the gate refused. Split at «и» (or
«ещё») before a question word, each part is retrieved and judged alone, against the same call so
far; the offline answer speaks each answered part, and the LLM reads the parts' passages in turn.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import lexicon, offline
from .analysis import LETTERS, lemma
from .pipeline import TOP_K, Retrieved, run_pipeline
from .types import Passage

PART_WORDS = lexicon.words("parts.txt")
JOINS = frozenset({"и"})  # not «ещё»: mostly an adverb («а он ещё есть в наличии»)
LOOKAHEAD = 4  # the question word comes within this many words after the join («и у него какая…»)
MAX_PARTS = 3  # a longer run-on question is asked whole (each part is a pipeline run)
_WORD = re.compile(r"[\w-]+")


@dataclass
class Found:
    """Retrieval's result as the answer needs it."""

    retrieved: Retrieved
    passages: list[Passage]
    parts: tuple["Found", ...] = ()  # a two-part question's parts, each retrieved and judged alone

    @property
    def query(self):
        return self.retrieved.query

    @property
    def answered(self) -> bool:
        return self.retrieved.answered or any(p.answered for p in self.parts)

    @property
    def off_topic(self) -> bool:
        return self.retrieved.off_topic and all(p.off_topic for p in self.parts)

    @property
    def screened(self) -> bool:
        """Refused before an LLM reads it: plainly off-topic, unless it is a follow-up that carried the call's
        topic — then it is about the KB whatever its own words («а в казахстан отправляете»), and only the
        model can say whether the KB answers it."""
        return self.off_topic and not self.query.carried

    @property
    def context(self) -> list[Passage]:
        """The passages an LLM reads (TOP_K): each part's best in turn, then the whole question's."""
        if not self.parts:
            return self.passages
        seen, out = set(), []
        lists = [p.passages for p in self.parts] + [self.passages]
        for rank in range(max(len(x) for x in lists)):
            for passages in lists:
                if rank < len(passages) and passages[rank].id not in seen:
                    seen.add(passages[rank].id)
                    out.append(passages[rank])
        return out[:TOP_K]

    def compose(self, stats, heard: str = "") -> str:
        """The offline reply: the whole question's when it is answered, with what the answered parts add;
        heard: the call's last reply, which a follow-up's second sentence does not repeat."""
        whole = (offline.compose(self.query, self.passages, stats, heard=heard)
                 if self.retrieved.answered or not self.parts else "")
        return join_replies(whole, [offline.compose(p.query, p.passages, stats, heard=heard)
                                    for p in self.parts if p.answered])


def join_replies(whole: str, parts: list[str]) -> str:
    """The whole question's reply, then each part's sentences it does not already say (once each)."""
    said = list(dict.fromkeys(offline.sentences(whole)))
    for reply in parts:
        said += [s for s in offline.sentences(reply) if s not in said]
    return offline.trim(" ".join(said), offline.MAX_CHARS * 2)


def question_parts(question: str) -> list[str]:
    """«… и какая гарантия» → two questions; one otherwise (each part at least two words)."""
    words = _WORD.findall(question.lower())
    parts, start = [], 0
    for i, word in enumerate(words):
        # «пэ и две тысячи» spells ПИ-2000: an «и» after a letter's name is a letter, not a join.
        if word in JOINS and i - start >= 2 and words[i - 1] not in LETTERS and any(lemma(w) in PART_WORDS for w in words[i + 1:i + 1 + LOOKAHEAD]):
            parts.append(words[start:i])
            start = i + 1
    parts.append(words[start:])
    if not 2 <= len(parts) <= MAX_PARTS or any(len(p) < 2 for p in parts):
        return [question]
    return [" ".join(p) for p in parts]


def find(pipeline, question: str, previous=None) -> Found | None:
    """Analyse and retrieve (a follow-up resolved against `previous`); None when nothing can be asked.
    A second part is asked as a follow-up of the first («и сколько он стоит»: «он» is the first's subject)."""
    found = _find_one(pipeline, question, previous)
    parts = question_parts(question) if found is not None else [question]
    if len(parts) > 1:
        each = []
        for part in parts:
            one = _find_one(pipeline, part, each[-1].query if each else previous)
            if one is not None:
                each.append(one)
        if len(each) > 1:
            found.parts = tuple(each)
    return found


def _find_one(pipeline, question: str, previous) -> Found | None:
    result = run_pipeline(pipeline, question, previous)
    if result.query.is_empty():
        return None
    return Found(result, [Passage(id=d.id, text=d.meta.get("text", ""), section=d.meta.get("section", ""),
                                  score=float(d.score or 0.0)) for d in result.documents])
