"""Spoken Russian numbers to digits: «две тысячи» → 2000, «пятьдесят» → 50.

Callers say numbers in words (ASR often writes them that way too); the KB
writes digits. Works on lemmas, so every case form is covered.
"""
from __future__ import annotations

UNITS = {
    "ноль": 0, "нуль": 0, "один": 1, "одна": 1, "два": 2, "две": 2, "три": 3, "четыре": 4, "пять": 5,
    "шесть": 6, "семь": 7, "восемь": 8, "девять": 9, "десять": 10, "одиннадцать": 11, "двенадцать": 12,
    "тринадцать": 13, "четырнадцать": 14, "пятнадцать": 15, "шестнадцать": 16, "семнадцать": 17,
    "восемнадцать": 18, "девятнадцать": 19, "полтора": 1.5, "полторы": 1.5,
}
TENS = {
    "двадцать": 20, "тридцать": 30, "сорок": 40, "пятьдесят": 50, "шестьдесят": 60,
    "семьдесят": 70, "восемьдесят": 80, "девяносто": 90,
}
HUNDREDS = {
    "сто": 100, "двести": 200, "триста": 300, "четыреста": 400, "пятьсот": 500,
    "шестьсот": 600, "семьсот": 700, "восемьсот": 800, "девятьсот": 900,
}
# Ordinals end a number: «сорок четвёртый» → 44 (as in «по сорок четвёртому закону»).
ORDINALS = {
    "первый": 1, "второй": 2, "третий": 3, "четвертый": 4, "пятый": 5, "шестой": 6, "седьмой": 7,
    "восьмой": 8, "девятый": 9, "десятый": 10, "одиннадцатый": 11, "двенадцатый": 12, "двадцатый": 20,
    "тридцатый": 30, "сороковой": 40, "пятидесятый": 50, "сотый": 100, "тысячный": 1000,
}
# Compound ordinals are one word: «двухтысячный» (2000), «трёхсотый» (300), «пятисотый» (500).
_ORDINAL_PREFIXES = {
    "двух": 2, "трех": 3, "четырех": 4, "пяти": 5, "шести": 6, "семи": 7, "восьми": 8, "девяти": 9,
    "десяти": 10,
}
_ORDINAL_BASES = {"сотый": 100, "тысячный": 1000}


def ordinal_value(lemma: str) -> int | None:
    if lemma in ORDINALS:
        return ORDINALS[lemma]
    for base, scale in _ORDINAL_BASES.items():
        if lemma.endswith(base) and lemma[: -len(base)] in _ORDINAL_PREFIXES:
            return _ORDINAL_PREFIXES[lemma[: -len(base)]] * scale
    return None


SCALES = {"тысяча": 1000, "тыс": 1000, "миллион": 1_000_000, "млн": 1_000_000, "миллиард": 1_000_000_000}


def is_number_word(lemma: str) -> bool:
    return lemma in UNITS or lemma in TENS or lemma in HUNDREDS or lemma in SCALES


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value).replace(".", ",")


def _order(lemma: str) -> int:
    """Within a group of a cardinal, words come in falling order: hundreds, tens (or 10-19), units."""
    if lemma in HUNDREDS:
        return 3
    if lemma in TENS or UNITS.get(lemma, 0) >= 10:
        return 2
    return 1


def number_runs(lemmas: list[str]) -> list[tuple[int, int, str]]:
    """Runs of number-word lemmas: (start, end, value in digits), end exclusive.

    ["пресс", "два", "тысяча", "кн"] → [(1, 3, "2000")]. A digit followed by a
    scale word combines too: ["5", "тысяча"] → [(0, 2, "5000")]. Words out of a
    cardinal's order start a new number, and groups said one after another are
    digits read in groups, as callers read a model or phone number: «пятьдесят
    пятьдесят семь» → 5057 (not 107).
    """
    runs = []
    i = 0
    while i < len(lemmas):
        lemma = lemmas[i]
        starts = (is_number_word(lemma) or (lemma.isdigit() and i + 1 < len(lemmas) and lemmas[i + 1] in SCALES)
                  or (ordinal_value(lemma) is not None and ordinal_value(lemma) >= 100))
        if not starts or (lemma in SCALES and lemma not in ("тысяча", "миллион")):
            i += 1
            continue
        total, current, j, last = 0.0, 0.0, i, 4
        while j < len(lemmas):
            w = lemmas[j]
            ordinal = ordinal_value(w)
            if w.isdigit() and j == i:
                current += int(w)
                last = 0
            elif w in UNITS or w in TENS or w in HUNDREDS:
                if _order(w) >= last:
                    break  # «пятьдесят пятьдесят»: a new group
                current += UNITS.get(w, 0) + TENS.get(w, 0) + HUNDREDS.get(w, 0)
                # «пятнадцать» takes no unit after it
                last = 1 if w in UNITS else _order(w)
            elif w in SCALES:
                total += (current or 1) * SCALES[w]
                current, last = 0, 4
            elif ordinal is not None and (j > i or ordinal >= 100):
                current += ordinal
                j += 1
                break
            else:
                break
            j += 1
        value = _fmt(total + current)
        if (runs and runs[-1][1] == i and lemmas[i - 1] not in SCALES and "," not in runs[-1][2] + value
                and float(runs[-1][2]) >= 10 and float(value) >= 10):
            # The previous number ended only because this word could not go on it: digit groups
            # («пятьдесят пятьдесят семь»); single digits stay apart («два три дня» is 2–3 days).
            runs[-1] = (runs[-1][0], j, runs[-1][2] + value)
        else:
            runs.append((i, j, value))
        i = j
    return runs


def join_number_words(lemmas: list[str]) -> list[str]:
    """Replace each run of number-word lemmas by its value: [..., "два", "тысяча", ...] → [..., "2000", ...]."""
    out = list(lemmas)
    for start, end, value in reversed(number_runs(lemmas)):
        out[start:end] = [value]
    return out
