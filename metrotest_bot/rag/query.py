"""The caller's question → an analysed query: content words (slots), kinds of fact asked, follow-ups.

A question is analysed once per answer (QueryAnalyzer in rag/pipeline.py);
the result travels with the retrieved passages to the gate and the offline
answerer. In a call, a follow-up («а сколько такой стоит», «а гарантия на
него») is resolved against the subject of the previous question: its words
join the query at a lower weight; a question with a subject of its own
starts a new topic.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from . import intent, lexicon
from .analysis import (M_MODEL, M_PRICE, M_SELF, SELF_WORDS, STOP, Code, content_items, is_interjection, is_minor,
                       is_place, is_verb, items, normalize, stem)

QUERY_SYNONYMS = lexicon.mapping("synonyms.txt")

# Phone phrasings (on the question's text): (pattern, extra terms, said words that become light). Which kind of
# fact is asked (price, term, hours…) is the intent model's (rag/intent.py), not these patterns'.
_PHRASES = [
    (re.compile(r"\b(?:во|до|со|с|к)\s+скольк|\b(?:до|с|со)\s+какого\s+(?:часа|времени)|в\s+котором\s+часу|"
                r"часы работы|режим работы|график работы|открыва|закрыва|открыты?\b|"
                r"работа\w*\s+(?:ли\s+)?(?:в|по|на)\s+(?:суббот|воскресень|выходн|праздник)|когда\s+(?:вы\s+)?работа|"
                # «с девяти утра», «после шести вечера»
                r"\b(?:до|с|со|после)\s+\w+\s+(?:утра|вечера)\b|\bв\s+какие\s+часы"),
     ["работать", "режим"],
     {"работать", "открываться", "закрываться", "открыть", "открытый", "час", "часы", "время"}),
    (re.compile(r"сколько\s+(?:по\s+)?времени|как\s+долго|как\s+быстро|за\s+сколько|сколько\s+(?:дней|недель|месяцев)|"
                r"какие\s+сроки|какой\s+срок|в\s+течение\s+какого|когда\s+(?:привез|достав|будет|приед|отгруз|сделает)|"
                r"сколько\s+(?:\w+\s+){0,2}(?:делается|делать|изготавлива|ждать|ехать|идет|идёт)"),
     ["срок"], {"время", "быстро", "долго"}),
    (re.compile(r"как\s+часто|периодичност|раз\s+в\s+(?:год|сколько)"),
     ["интервал", "периодический", "периодичность"], {"часто"}),
    (re.compile(r"где\s+(?:вы|у\s+вас|ваш|наход|располож)"), ["адрес"], set()),
]
# «расскажите о себе», «кто вы такие», «чем вы занимаетесь»: a question about the company itself.
_SELF_PHRASE = re.compile(r"\b(?:о|об|про)\s+(?:себе|себя|вас)\b|\bкто\s+вы\b|\bвы\s+кто\b|\bчем\s+(?:вы\s+)?занима|"
                          r"\bчто\s+вы\s+за\b|^\W*(?:а\s+)?что\s+(?:вы|у\s+вас)\s+(?:производ|выпуска|делает|продает)\w*\W*$")
# What the company does, in a question about the company itself: the phrase says it, not a topic.
SELF_VERBS = frozenset({"производить", "выпускать", "делать", "продавать", "заниматься"})
# «какие копры вы делаете»: the caller wants the models; a passage naming them is better.
_MODELS_QUESTION = re.compile(r"\bкак(?:ие|ой|ая|ое|их)\b.*\b(?:дела|выпуска|производ|бывают|есть у вас|продает|продаете|"
                              r"предлага|изготавл|модел)|\bмодел")

# Weights of a term by how it entered the question: said, said but generic
# ("light": делать, стоить, работать), implied by phrasing, a stem, a marker.
W_SAID, W_LIGHT, W_SYNONYM, W_STEM, W_MARKER = 1.0, 0.3, 0.5, 0.4, 0.6

LIGHT = lexicon.words("light.txt")


@dataclass
class Slot:
    """One content word of the question with its alternative lemmas and what else may stand for it."""

    lemmas: tuple[str, ...]
    weight: float
    expansions: tuple[str, ...] = ()
    verb: bool = False  # an action word (заказать, приехать), not the topic (пицца, воскресенье)
    minor: bool = False  # a verb, adverb, particle…: the caller's way of asking, as often as the topic
    context: bool = False  # said where the caller describes themselves («у нас вторая смена», «мы бюджетники»)

    @property
    def said(self) -> bool:
        return self.weight >= W_SAID


@dataclass
class Query:
    question: str
    slots: list[Slot] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)  # kinds of fact asked for: an answer should hold one
    extra: list[str] = field(default_factory=list)
    soft_markers: list[str] = field(default_factory=list)  # kinds of fact that help, not required
    asks_price: bool = False  # «сколько стоит…», «почём…»: only a passage with a price answers it
    carried: bool = False  # words of the previous question were carried into this follow-up
    leans_back: bool = False  # a pronoun pointing back («такой», «его», «там») or «а …» opens it
    # What the conversation is about after this question, for the next follow-up: the words of the
    # topic-setting question that its best passage held (set after retrieval, see scoring.topic_of).
    topic: list = field(default_factory=list)
    # The section the previous answer came from: a follow-up is most often about the same part of the KB.
    previous_section: str | None = None
    answered_from: str | None = None  # the section this question's best passage is in (set after retrieval)
    own_slots: int | None = None  # a follow-up: its first own_slots slots are its own words, the rest carried
    # The intent model could not tell whether some kind of fact is asked («а весит он сколько»: a term?):
    # the fact features then say less.
    kind_unsure: bool = False
    # The question's sentence embedding (rag/semantic.py), computed when the gate first needs it.
    embedding: Any = field(default=None, compare=False, repr=False)
    # A follow-up's embedding with its carried topic's words (what the ranker compares passages with).
    context_embedding: Any = field(default=None, compare=False, repr=False)

    @property
    def carried_slots(self) -> list[Slot]:
        """A follow-up's slots taken from the call's topic, not said now (none for a question of its own)."""
        return self.slots[self.own_slots:] if self.carried and self.own_slots is not None else []

    def weights(self) -> dict[str, float]:
        out: dict[str, float] = {}

        def put(term, w):
            if w > out.get(term, 0.0):
                out[term] = w

        for slot in self.slots:
            for t in slot.lemmas:
                put(t, slot.weight)
            for t in slot.expansions:
                put(t, W_SYNONYM * max(slot.weight, 0.6))
            for t in slot.lemmas:
                s = stem(t)
                if s:
                    put(s, W_STEM * slot.weight)
        for t in self.extra:
            put(t, W_SYNONYM)
        for m in self.markers + self.soft_markers:
            put(m, W_MARKER)
        return out

    def search_text(self) -> str:
        return " ".join(self.weights())

    def is_empty(self) -> bool:
        return not self.slots and not self.extra


# Where a caller's speech splits into parts: punctuation, or (ASR text has little of it) a question word.
_CLAUSE_BREAK = re.compile(r"[,.;:!?]+|\s(?=(?:через\s+)?(?:сколько|скольки|когда|где|куда|как|какой|какая|какое|какие|"
                           r"каких|можно|можете|сможете|есть\s+ли|а\s+вы|вы|(?:нам|мне)\s+нужн\w*)\b)")
# A part in which callers describe their side, not what they ask: «у нас вторая смена», «мы бюджетное учреждение».
# Not «я …»: «я пиццу заказывал, где мой заказ» is what the caller asks about.
_SELF_CONTEXT = re.compile(r"^\s*(?:(?:а|ну|вот|и|да|так|э+|здравствуйте)\s+)*(?:у\s+(?:нас|меня)|мы)\b")


# «я инженер по качеству с завода», «это лаборатория дорожного управления»: who is calling.
_SELF_INTRO = re.compile(r"^\s*(?:(?:а|ну|вот|и|да|так|э+|здравствуйте|алло|добрый\s+(?:день|вечер)|доброе\s+утро)\s+)*"
                         r"(?:я|это)\b")


def _is_context(part: str) -> bool:
    if _SELF_CONTEXT.search(part):
        return True
    # An introduction names who calls and does nothing: «я пиццу заказывал» has a verb and is the question.
    return bool(_SELF_INTRO.search(part)) and not any(is_verb(alts[0]) for alts in content_items(part))


def self_context_lemmas(text: str) -> set[str]:
    """Lemmas said only in the parts where the caller talks about themselves (empty if every part does)."""
    parts = [p for p in _CLAUSE_BREAK.split(text) if p and p.strip()]
    context = [p for p in parts if _is_context(p)]
    if not context or len(context) == len(parts):
        return set()
    asked = {a for p in parts if p not in context for alts in content_items(p) for a in alts}
    return {alts[0] for p in context for alts in content_items(p) if alts[0] not in asked}


def analyze_question(question: str) -> Query:
    """The caller's question → slots (content words), the kinds of fact asked (markers, rag/intent.py)
    and phrase expansions."""
    text = normalize(question)
    said = items(question)  # every word once: the content words below, the pointing-back words too
    markers, kind_unsure = intent.read(question, said)
    extra: list[str] = []
    lighten: set[str] = set()
    for pattern, p_extra, p_light in _PHRASES:
        if pattern.search(text):
            extra += p_extra
            lighten |= p_light
    self_question = bool(_SELF_PHRASE.search(text))
    context = self_context_lemmas(text)
    slots: list[Slot] = []
    seen: set[str] = set()
    # A pronoun or adverb pointing back («туда», «его») stands for the previous question's topic, which
    # resolve() carries in: as a word of its own it would be an unknown topic («туда» is in no passage).
    # «другой» stays: it is also a KB word («машины других производителей»).
    for alts in (a for a in said if a[0] not in STOP and not (a[0] in ANAPHORA and is_minor(a[0]))
                 and not is_interjection(a[0])):
        if alts[0] in seen:
            continue
        seen.add(alts[0])
        if isinstance(alts, Code):  # ПИ-2000: the code itself, its parts only as a hint
            slots.append(Slot((alts[0],), W_SAID, tuple(dict.fromkeys(alts[1:]))))
            continue
        light = alts[0] in LIGHT or alts[0] in lighten or (self_question and alts[0] in SELF_VERBS)
        expansions: list[str] = []
        for a in alts:
            expansions += [e for e in QUERY_SYNONYMS.get(a, []) if e not in alts]
        slots.append(Slot(alts, W_LIGHT if light else W_SAID, tuple(dict.fromkeys(expansions)), is_verb(alts[0]),
                          is_minor(alts[0]), alts[0] in context))
    soft = [M_MODEL] if _MODELS_QUESTION.search(text) else []
    for slot in slots:
        if set(slot.lemmas) & SELF_WORDS:  # «компания» also finds a section titled «О нас»
            slot.expansions += (M_SELF,)
            soft.append(M_SELF)
    if self_question:
        extra += ["компания", M_SELF]
        soft.append(M_SELF)
    return Query(question, slots, list(dict.fromkeys(markers)), [e for e in dict.fromkeys(extra) if e not in seen],
                 list(dict.fromkeys(soft)), asks_price=M_PRICE in markers,
                 kind_unsure=kind_unsure,
                 leans_back=bool(_GOES_ON.search(text)) or any(alts[0] in ANAPHORA for alts in said))


# --- follow-ups within a call ------------------------------------------------------------

# Weight of a word carried over from the previous question into a follow-up.
W_CARRIED = 0.6
# Words that point back at what was just talked about (rag/lexicon/anaphora.txt, as lemmas).
ANAPHORA = lexicon.words("anaphora.txt")
# «а …», «и …», «ну а …»: a question that goes on from the last one.
_GOES_ON = re.compile(r"^\W*(?:(?:ну|вот|так)\s+)?(?:а|и)\b")


def is_followup(query: "Query") -> bool:
    """Does the question lean on the previous one: a pronoun, «а …», or neither a subject of its own
    nor a kind of fact asked («где вы находитесь» asks for the address: a question of its own)?"""
    subject = [s for s in query.slots if s.said and not s.verb and not s.context]
    return query.leans_back or not (subject or query.markers or query.extra)


def is_code(slot: Slot) -> bool:
    """A model code (ПИ-2000, км-300): letters and digits joined by a hyphen."""
    return "-" in slot.lemmas[0] and any(ch.isdigit() for ch in slot.lemmas[0])


def subject_slots(query: "Query") -> list[Slot]:
    """What a question names (its own said naming words)."""
    return [s for s in query.slots if s.said and not s.verb and not s.context]


def _names_only_items(query: "Query") -> bool:
    """The question's own words only name another item of the same question: a code or a number («а
    ПИ-3000?», «а на пятьсот?»), or a place said with no verb («а во Владивосток?», «а в Пермь?»; not
    «а в Москве его можно посмотреть», a question of its own)."""
    subject = subject_slots(query)
    places = [s for s in subject if is_place(s.lemmas[0])]
    if places and any(s.verb and s.said and not s.context for s in query.slots):
        return False
    return bool(subject) and all(is_code(s) or s.lemmas[0].isdigit() or s in places for s in subject)


def resolve(query: "Query", previous: "Query | None") -> "Query":
    """The question with what it leaves unsaid taken from the previous question of the call.

    The topic of the conversation (the words of the last topic-setting question
    that its answer held) joins the follow-up: as its subject when it names none
    («а сколько он стоит»), else at W_CARRIED so the caller's own words lead
    («а гарантия на него какая»). A code the caller now names replaces the
    topic's («а ПИ-3000?»), a place named alone the topic's place («а во
    Владивосток?»), and when only an item is named the kind of fact asked
    before carries over too (price, term…)."""
    if previous is None or not is_followup(query):
        return query
    own = {t for s in query.slots for t in s.lemmas}
    names_code = any(is_code(s) for s in query.slots)
    items_only = _names_only_items(query)
    names_place = items_only and any(is_place(s.lemmas[0]) for s in query.slots)
    topic = [s for s in (previous.topic or subject_slots(previous))
             if not own & set(s.lemmas) and not (names_code and is_code(s))
             and not (names_place and is_place(s.lemmas[0]))]
    weight = W_CARRIED if subject_slots(query) and not items_only else 1.0
    carried = [replace(s, weight=weight, context=False) for s in topic]
    markers, asks_price = query.markers, query.asks_price
    if items_only and not query.markers:
        markers, asks_price = previous.markers, previous.asks_price
    # The topic stays the one set before (a code or a place named now replaces its own).
    new_topic = topic + [s for s in query.slots if is_code(s) or (names_place and is_place(s.lemmas[0]))]
    return replace(query, slots=query.slots + carried, markers=list(markers), asks_price=asks_price,
                   carried=True, own_slots=len(query.slots), topic=new_topic, previous_section=previous.answered_from)
