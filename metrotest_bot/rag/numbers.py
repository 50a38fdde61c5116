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
SCALES = {"тысяча": 1000, "тыс": 1000, "миллион": 1_000_000, "млн": 1_000_000, "миллиард": 1_000_000_000}


def is_number_word(lemma: str) -> bool:
    return lemma in UNITS or lemma in TENS or lemma in HUNDREDS or lemma in SCALES


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value).replace(".", ",")


def join_number_words(lemmas: list[str]) -> list[str]:
    """Replace each run of number-word lemmas by its value in digits.

    ["пресс", "два", "тысяча", "кн"] → ["пресс", "2000", "кн"]. A digit
    followed by a scale word also combines: ["5", "тысяча"] → ["5000"].
    """
    out: list[str] = []
    i = 0
    while i < len(lemmas):
        lemma = lemmas[i]
        starts = is_number_word(lemma) or (lemma.isdigit() and i + 1 < len(lemmas) and lemmas[i + 1] in SCALES)
        if not starts or (lemma in SCALES and lemma not in ("тысяча", "миллион")):
            out.append(lemma)
            i += 1
            continue
        total, current, j = 0.0, 0.0, i
        while j < len(lemmas):
            w = lemmas[j]
            if w.isdigit() and j == i:
                current += int(w)
            elif w in UNITS:
                current += UNITS[w]
            elif w in TENS:
                current += TENS[w]
            elif w in HUNDREDS:
                current += HUNDREDS[w]
            elif w in SCALES:
                total += (current or 1) * SCALES[w]
                current = 0
            else:
                break
            j += 1
        out.append(_fmt(total + current))
        i = j
    return out
