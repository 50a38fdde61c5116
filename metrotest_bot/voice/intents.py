"""What a caller's words ask for besides an answer: a person, or goodbye.

Matched on lemmas (pymorphy3), so «соедините с оператором», «соединить
с оператором», «переключите на менеджера», «хочу поговорить с живым
человеком» and «позовите специалиста» all count. These replies are fixed
phrases, so a false positive costs a caller a transfer: the rules want a
request word next to a person word, or a very short utterance.
"""
from __future__ import annotations

import re
from functools import lru_cache

from ..morph import fold_yo
from ..morph import morph as _analyzer

TRANSFER = "transfer"
GOODBYE = "goodbye"

WORD_RE = re.compile(r"[0-9a-zа-яё]+", re.IGNORECASE)

PERSON = frozenset({
    "оператор", "человек", "менеджер", "сотрудник", "специалист", "консультант", "администратор",
    "секретарь", "инженер", "продавец", "диспетчер", "отдел", "бухгалтерия", "руководитель",
})
# Verbs that ask for a connection whenever a person word is near.
STRONG_REQUEST = frozenset({
    "соединить", "соединять", "переключить", "переключать", "перевести", "переводить", "позвать", "звать",
    "поговорить", "говорить", "пообщаться", "общаться", "связать", "связывать", "связаться", "подключить",
    "подозвать", "пригласить",
})
# Words that ask for something only when the person word follows right away
# («хочу оператора», but not «хочу машину на десять человек»).
WEAK_REQUEST = frozenset({"хотеть", "нужный", "нужно", "надо", "дать", "можно", "требоваться"})
NEGATION = frozenset({"не", "нет", "ненадо"})
STRONG_WINDOW = 4
WEAK_WINDOW = 2
SHORT_UTTERANCE = 3

GOODBYE_PHRASES = (
    ("до", "свидание"), ("досвидание",), ("весь", "добрый"), ("весь", "хороший"), ("до", "встреча"),
    ("до", "связь"), ("прощать",), ("прощай",),
)
GOODBYE_SHORT = frozenset({"пока"})  # «пока» alone (or «спасибо, пока»): also «пока не надо»
GOODBYE_MAX_WORDS = 10


@lru_cache(maxsize=20_000)
def _lemmas(word: str) -> frozenset[str]:
    if word.isdigit():
        return frozenset({"#num"})
    parses = _analyzer().parse(word)
    forms = {fold_yo(p.normal_form) for p in parses} | {word}
    if any(p.tag.POS == "NUMR" for p in parses):  # «десять», «пять»: a count, as digits are
        forms.add("#num")
    return frozenset(forms)


def lemmatize(text: str) -> list[frozenset[str]]:
    return [_lemmas(fold_yo(w.lower())) for w in WORD_RE.findall(text)]


def detect(text: str) -> str | None:
    """TRANSFER, GOODBYE or None for one final caller utterance."""
    words = lemmatize(text)
    if not words:
        return None
    if _asks_for_person(words):
        return TRANSFER
    if _says_goodbye(words):
        return GOODBYE
    return None


def _is_person(words, i) -> bool:
    # «десять человек», «сколько человек» count people, they do not ask for one.
    if not words[i] & PERSON:
        return False
    return i == 0 or not (words[i - 1] & {"#num", "сколько", "несколько"})


def _negated(words, i) -> bool:
    return i > 0 and bool(words[i - 1] & NEGATION)


def _asks_for_person(words) -> bool:
    persons = [i for i in range(len(words)) if _is_person(words, i)]
    if not persons:
        return False
    if len(words) <= SHORT_UTTERANCE:
        return not any(w & NEGATION for w in words)
    for i, w in enumerate(words):
        if _negated(words, i):
            continue
        window = STRONG_WINDOW if w & STRONG_REQUEST else WEAK_WINDOW if w & WEAK_REQUEST else 0
        if window and any(0 < p - i <= window or 0 < i - p <= 2 for p in persons):
            return True
    return False


def _says_goodbye(words) -> bool:
    if len(words) > GOODBYE_MAX_WORDS:
        return False
    for phrase in GOODBYE_PHRASES:
        n = len(phrase)
        for i in range(len(words) - n + 1):
            if all(phrase[k] in words[i + k] for k in range(n)):
                return True
    if len(words) <= 3 and any(w & GOODBYE_SHORT for w in words) and not any(w & NEGATION for w in words):
        return True
    return False
