"""Russian numerals for the speech form: digits → words in the case the sentence needs.

num2words writes the numeral in any case and gender; pymorphy3 (metrotest_bot.morph)
tells which case and gender: from the preposition before the number («от 920 000
рублей» → genitive), from the noun after it («с 2 захватами» → instrumental,
«2 недели» → feminine), and agrees a unit with the number («2000 кН» →
«две тысячи килоньютонов»).
"""
from __future__ import annotations

import re

from num2words import num2words

from ..morph import morph

NUM2WORDS_CASE = {"nomn": "nominative", "gent": "genitive", "datv": "dative", "accs": "accusative",
                  "ablt": "instrumental", "loct": "prepositional"}
GENDER = {"masc": "m", "femn": "f", "neut": "n"}

# Prepositions (one or two words) and the case they give the number after them.
# «с» is taken as «from» (с 8:30, с 2004 года): «с 2 захватами» is caught by its noun.
PREPOSITION_CASE = {
    "от": "gent", "до": "gent", "из": "gent", "без": "gent", "у": "gent", "около": "gent", "после": "gent",
    "для": "gent", "с": "gent", "со": "gent", "более": "gent", "менее": "gent", "свыше": "gent",
    "больше": "gent", "меньше": "gent", "порядка": "gent", "кроме": "gent", "вместо": "gent",
    "в течение": "gent", "в пределах": "gent", "в размере": "gent", "в количестве": "gent",
    "не более": "gent", "не менее": "gent", "не позднее": "gent", "не ранее": "gent",
    "к": "datv", "ко": "datv", "согласно": "datv",
    "на": "accs", "в": "accs", "во": "accs", "за": "accs", "через": "accs", "про": "accs",
    "между": "ablt", "над": "ablt", "под": "ablt", "перед": "ablt",
    "о": "loct", "об": "loct", "при": "loct",
}
# Sign words may stand between a preposition and its number: «от минус 70».
_SIGN_WORD = re.compile(r"\s(?:минус|плюс)\s+$", re.IGNORECASE)
_LOOKBACK = re.compile(r"(?:^|[^\w-])((?:\w+\s+)?\w+)\s+$")
_WORD_AFTER = re.compile(r"\s+([А-ЯЁа-яё]+)")
OBLIQUE = {"datv", "ablt", "loct"}


def preposition_case(before: str) -> str | None:
    """The case a preposition right before a number gives it: «… до » → genitive."""
    m = _LOOKBACK.search(_SIGN_WORD.sub(" ", before))
    if not m:
        return None
    words = m.group(1).lower().split()
    if len(words) == 2 and " ".join(words) in PREPOSITION_CASE:
        return PREPOSITION_CASE[" ".join(words)]
    return PREPOSITION_CASE.get(words[-1])


def noun_after(after: str, max_words: int = 3):
    """The first noun after a number (adjectives skipped, «3 рабочих дня» → «дня»): its parses, or None."""
    pos = 0
    for _ in range(max_words):
        m = _WORD_AFTER.match(after, pos)
        if not m:
            return None
        parses = morph().parse(m.group(1))
        first = parses[0].tag.POS
        if first in ("ADJF", "PRTF"):
            pos = m.end()
            continue
        nouns = [p for p in parses if p.tag.POS == "NOUN"]
        return nouns if first == "NOUN" else None
    return None


def context(before: str, after: str) -> tuple[str, str]:
    """(case, gender) of a number from its neighbours, as pymorphy grammemes / num2words gender."""
    case = preposition_case(before) or "nomn"
    gender = "m"
    nouns = noun_after(after)
    if nouns:
        cases = {p.tag.case for p in nouns}
        # A noun in an oblique case governs the number («к 5 часам», «с 2 захватами», «1 неделю»).
        if len(cases) == 1 and next(iter(cases)) in OBLIQUE | {"accs"}:
            case = next(iter(cases))
        gender = GENDER.get(nouns[0].tag.gender, "m")
    return case, gender


def _drop_leading_one(words: str) -> str:
    # «одна тысяча пятьсот» is said «тысяча пятьсот».
    return re.sub(r"^(?:один|одна|одну|одной|одного|одним|одном|одною)\s+(?=тысяч)", "", words)


def int_words(value: int, case: str = "nomn", gender: str = "m") -> str:
    words = num2words(value, lang="ru", case=NUM2WORDS_CASE.get(case, "nominative"), gender=gender,
                      animate=False)
    return _drop_leading_one(words)


def inflect_words(words: str, case: str) -> str:
    """Each word of a nominative phrase put in `case` (num2words has no case for fractions)."""
    if case == "nomn":
        return words
    out = []
    for word in words.split():
        parse = morph().parse(word)[0]
        form = parse.inflect({case}) if word not in ("целых", "десятых", "сотых", "тысячных") else None
        out.append(form.word if form is not None else word)
    return " ".join(out)


def number_words(digits: str, case: str = "nomn", gender: str = "m") -> str:
    """«920 000» → «девятьсот двадцать тысяч»; «0,5» → «ноль целых пять десятых»; case and gender applied."""
    digits = re.sub(r"[\s\u00a0]", "", digits)
    if "," in digits or "." in digits:
        whole, frac = re.split(r"[.,]", digits, maxsplit=1)
        words = num2words(float(f"{whole or 0}.{frac}"), lang="ru")
        return inflect_words(words, case)
    return int_words(int(digits), case, gender)


def read_digits(group: str) -> str:
    """A group read as on the phone: «000» → «ноль ноль ноль», «343» → «три четыре три», «12» → «двенадцать».

    Two digits are a number unless they start with 0; three or more are read digit by digit.
    """
    if len(group) == 2 and group[0] != "0":
        return int_words(int(group))
    return " ".join(int_words(int(d)) for d in group)


def agree(lemma: str, value: float, case: str = "nomn") -> str:
    """A noun in the form a number needs: («килоньютон», 2000) → «килоньютонов»; («час», 2) → «часа»."""
    parse = next((p for p in morph().parse(lemma) if p.tag.POS == "NOUN"), None)
    if parse is None:
        return lemma
    if not float(value).is_integer():
        form = parse.inflect({"gent", "sing"})  # «полтора килограмма», «0,5 миллиметра»
    elif case in ("nomn", "accs"):
        form = parse.inflect({case, "sing"})
        form = form.make_agree_with_number(int(value)) if form is not None else None
    else:
        n = int(value)
        number = "sing" if n % 10 == 1 and n % 100 != 11 else "plur"
        form = parse.inflect({case, number})
    return form.word if form is not None else lemma


def ordinal_words(value: int, case: str, gender: str = "masc", number: str = "sing") -> str:
    """«2004», loct → «две тысячи четвёртом» (only the last word of an ordinal changes)."""
    words = num2words(value, lang="ru", to="ordinal").split()
    parse = morph().parse(words[-1])[0]
    grammemes = {case, number} | ({gender} if number == "sing" else set())
    form = parse.inflect(grammemes)
    if form is not None:
        words[-1] = form.word
    return _drop_leading_one(" ".join(words))
