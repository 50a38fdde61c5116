"""The offline answer: the sentences of the retrieved passages that answer the question.

Used without an API key and as the LLM's fallback. Sentences are scored by a
learned model (rag/sentences.py), the best one or two are kept in their
original order, and the reply is trimmed short for the phone. A question
that names a section's topic and asks for no particular fact («расскажите о
компании», «условия доставки») is answered by that section's opening
sentences. A chosen sentence that lists «name — value»
items, when the question names one of them, is cut down to that item.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from razdel import sentenize

from . import analysis, lexicon
from .query import Query
from .scoring import holds_asked_fact
from .sentences import SentenceModel, load_sentence_model, sentences_of
from .stats import KBStats, slot_match
from .types import Passage

MAX_CHARS = 320
CATCH_ALL = lexicon.words("others.txt")
# A second sentence is spoken when it scores this share of the best one, or, when it holds a part of
# the question the best one lacks, SECOND_PART of it (on the labelled sets, with the kinds of fact
# and the caller's place below, 0.75 → 0.5 held 1,500 → 1,524 of 1,644 answerable facts; replies
# 12 characters longer on average).
SECOND_CLOSE, SECOND_PART = 0.5, 0.3


def compose(parsed: Query, passages: list[Passage], stats: KBStats, max_chars: int = MAX_CHARS,
            model: SentenceModel | None = None, heard: str = "") -> str:
    """A short spoken reply from the best passages (empty when there are none).

    Each sentence of the top passages is scored by a learned model
    (rag/sentences.py: the question's words it holds, rare ones counting
    more, the kind of fact asked for, its passage's rank). The best one is
    kept, with a second one when it scores almost as much, or when it holds
    a word of the question the first one lacks (a two-part question:
    «сколько стоит и какая гарантия»). A second sentence the caller has
    just heard (`heard`, the call's last reply) is not said again: after
    «Цена пресса ПИ-2000 — …», «а поверить его сколько стоит» gets the
    verification price alone, not the press's price once more.
    """
    if not passages:
        return ""
    lead = topic_lead(parsed, passages[0], stats)
    if lead:
        return trim(lead, max_chars)
    model = model or load_sentence_model()
    found = sentences_of(parsed, passages[:3], stats)
    # (score, passage rank, position in passage, sentence, holds the kind of fact asked for, slots held,
    # markers held, its terms); the score is a share of the best sentence's
    candidates = []
    for sentence, score in zip(found, model.scores([s.row for s in found])):
        terms = sentence.terms | sentence.section_terms
        candidates.append((score, sentence.rank, sentence.pos, sentence.text, holds_asked_fact(parsed, sentence.terms),
                           _said_covered(parsed, terms), frozenset(m for m in parsed.markers if m in sentence.terms),
                           terms))
    if not candidates:
        return ""
    candidates.sort(key=lambda c: -c[0])
    best = candidates[0]
    chosen = [best]
    repeated = {s.strip() for s in sentences(heard)} if heard else set()
    own = [slot for slot in parsed.slots[:parsed.own_slots] if slot.said] if parsed.carried else []
    for cand in candidates[1:]:
        # Said again only when it holds a word of the follow-up's own («а в каком он городе»: the dealer's
        # sentence just heard names the city).
        if cand[3].strip() in repeated and not any(slot_match(slot, cand[7], stats)[0] > 0 for slot in own):
            continue
        length = sum(len(c[3]) for c in chosen) + len(cand[3])
        # asked for a price and the best sentence names it: a sentence without one adds nothing
        adds_fact = cand[4] or not best[4]
        covered = set().union(*(c[5] for c in chosen))
        # A second part: a naming word, or a kind of fact asked («почём и сколько ждать»), the first lacks.
        new_kind = bool(cand[6] - set().union(*(c[6] for c in chosen)))
        second_part = (bool(cand[5] - covered) or new_kind) and cand[0] >= SECOND_PART * best[0]
        if (cand[0] >= SECOND_CLOSE * best[0] or second_part) and cand[0] > 0 and length <= max_chars and adds_fact:
            chosen.append(cand)
        if len(chosen) == 2:
            break
    chosen.sort(key=lambda c: (c[1], c[2]))
    return trim(" ".join(focus_list_item(c[3], parsed) for c in chosen), max_chars)


def sentences(text: str) -> list[str]:
    return [s.text for s in sentenize(text) if s.text.strip()]


def _said_covered(parsed: Query, terms: set[str]) -> frozenset[int]:
    """Which of the question's own naming words a sentence holds (indexes into parsed.slots)."""
    return frozenset(i for i, slot in enumerate(parsed.slots)
                     if slot.said and not slot.verb and any(t in terms for t in slot.lemmas + slot.expansions))


def topic_lead(parsed: Query, top: Passage, stats, sentences: int = 2) -> str:
    """The opening sentences of the top passage's section when the question names that section's
    topic and asks for no particular kind of fact; "" otherwise. A follow-up carrying the call's
    topic («а гарантия на них какая» after гидравлические машины) asks about that topic within the
    section, not for its opening."""
    leads = getattr(stats, "leads", None)
    if parsed.markers or parsed.carried or not leads or top.section not in leads \
            or not stats.title_covers(parsed, top.section):
        return ""
    text = leads[top.section].meta.get("text", "")
    return " ".join(s.text for s in list(sentenize(text))[:sentences]).strip()


# --- «name — value» lists ---------------------------------------------------------

_DASH = re.compile(r"\s[—–-]\s")
_ITEM_SEP = re.compile(r"[,;]\s+")
MAX_NAME_WORDS, MAX_VALUE_WORDS = 8, 12


@dataclass
class DashList:
    """«Цены: ПИ-500 — от 640 000 рублей, ПИ-1000 — от 780 000 рублей с НДС.»"""

    head: str  # text before the first item: «Цены:» (may be empty)
    items: list[str]  # each «name — value» as written
    tail: str  # words after the last item's value that belong to every item: « с НДС»
    end: str  # final punctuation

    def name(self, item: str) -> str:
        return _DASH.split(item, 1)[0]


def parse_dash_list(sentence: str) -> DashList | None:
    """A sentence listing two or more «name — value» items separated by commas or semicolons."""
    body = sentence.strip()
    end = body[-1] if body and body[-1] in ".!?…" else ""
    body = body[: len(body) - len(end)]
    head_parts: list[str] = []
    items: list[str] = []
    for part in _ITEM_SEP.split(body):
        if _DASH.search(part):
            items.append(part)
        elif items:
            return None  # «запчасти — датчики, захваты, вкладыши — есть на складе»: dashes of prose
        else:
            head_parts.append(part)
    if len(items) < 2:
        return None
    if ":" in _DASH.split(items[0], 1)[0]:  # «Цены: ПИ-500 — …»
        lead_in, items[0] = (x.strip() for x in items[0].split(":", 1))
        head_parts.append(lead_in + ":")
    head = ", ".join(head_parts)
    for item in items:
        name, value = _DASH.split(item, 1)
        if len(name.split()) > MAX_NAME_WORDS or len(value.split()) > MAX_VALUE_WORDS:
            return None  # prose with dashes, not a list
    return DashList(head=head, items=items, tail=_shared_tail(items), end=end)


def _shared_tail(items: list[str]) -> str:
    """Words after the last item's unit that apply to all: «…, ПИ-3000 — от 1 350 000 рублей с НДС» → « с НДС»."""
    last_words = [_DASH.split(item, 1)[1].split()[-1] for item in items[:-1]]
    units = Counter(analysis.lemma(w.strip(".,;:").lower()) for w in last_words)
    unit, n = units.most_common(1)[0]
    if n < len(items) - 1 or not unit.isalpha():
        return ""
    words = items[-1].split(" ")
    for k in range(len(words) - 1, -1, -1):
        if analysis.lemma(words[k].strip(".,;:").lower()) == unit:
            return " " + " ".join(words[k + 1:]) if k + 1 < len(words) else ""
    return ""


def _stands_alone(name: str) -> bool:
    """Can an item's name start a sentence: its first word may be nominative (or is a code, a number)?"""
    first = name.split()[0].strip("«»\"'(),").lower()
    if not first.isalpha():
        return True
    return any(parse.tag.case in (None, "nomn") for parse in analysis.morph().parse(first))


def _name_terms(text: str) -> set[str]:
    return {t for t in analysis.index_terms(text) if not t.startswith("#") and not t.endswith("~")}


def _question_terms(parsed: Query) -> set[str]:
    terms = set()
    for slot in parsed.slots:
        for t in slot.lemmas:
            terms.add(t)
            if "-" in t and any(ch.isdigit() for ch in t):  # ПИ-2000: its number names it too
                terms.update(p for p in t.split("-") if p)
    return terms


def focus_list_item(sentence: str, parsed: Query) -> str:
    """The item(s) of a «name — value» list the question names (by word, model code, number or
    unit value), with the list's head and shared tail; the sentence itself otherwise."""
    dash_list = parse_dash_list(sentence)
    if dash_list is None:
        return sentence
    asked = _question_terms(parsed)
    names = [_name_terms(dash_list.name(item)) for item in dash_list.items]
    common = set.intersection(*names)
    scores = [len((n - common) & asked) for n in names]
    best = max(scores)
    chosen = [i for i, score in enumerate(scores) if score == best]
    if best == 0 or len(chosen) == len(dash_list.items):
        return sentence
    if any(n & CATCH_ALL for n in names) and any(analysis.is_place(t) for t in asked - set().union(*names)):
        # «мы в перми, когда инженер приедет» over «по Свердловской области — 3 дня, в другие регионы —
        # 10 дней»: the caller's own place is in no item's name, so the catch-all item may be theirs.
        return sentence
    if not dash_list.head and not all(_stands_alone(dash_list.name(dash_list.items[i])) for i in chosen):
        # «Срок изготовления машин УИМ — …, гидравлических машин ГИМ — …»: the item depends on
        # the first one's words; alone it would lose them.
        return sentence
    text = ", ".join(dash_list.items[i] for i in chosen)
    if chosen[-1] != len(dash_list.items) - 1:
        text += dash_list.tail
    if dash_list.head:
        return f"{dash_list.head} {text}{dash_list.end or '.'}"
    return f"{text[:1].upper()}{text[1:]}{dash_list.end or '.'}"


def trim(text: str, max_chars: int) -> str:
    """Cut a too-long reply at a clause end, never mid-word."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    for mark in (". ", "; ", ", "):
        cut = head.rfind(mark)
        if cut > max_chars // 2:
            return head[:cut].rstrip(",;") + "."
    return head.rsplit(" ", 1)[0] + "…"
