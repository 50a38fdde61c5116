"""Speech form: a written speakable piece → the words TTS should read.

The KB writes «г. Екатеринбург, ул. Испытателей, д. 12», «+7 (343) 000-12-20»,
«от 920 000 рублей», «(МСК+2)», «ПИ-2000»: a synthesiser reads those badly or
literally. `speech_form` spells them as a person would say them on the phone.
The written form stays the record (call log, panel, `flask ask --json`
`answer`); only the `text` frame carries the speech form.

Rules run in order, most specific first: an e-mail or a phone number must be
read whole before its digits look like ordinary numbers. Numerals and their
agreement live in speech_numbers.py.
"""
from __future__ import annotations

import logging
import re

from ..morph import EMAIL_DOMAIN, EMAIL_LOCAL, morph
from .speech_numbers import (agree, context, int_words, number_words, ordinal_words, preposition_case,
                             read_digits)

log = logging.getLogger(__name__)

# Russian letter names, as an abbreviation is spelled aloud (НДС → «эн дэ эс»).
LETTER_NAMES = {
    "А": "а", "Б": "бэ", "В": "вэ", "Г": "гэ", "Д": "дэ", "Е": "е", "Ё": "ё", "Ж": "жэ", "З": "зэ", "И": "и",
    "Й": "й", "К": "ка", "Л": "эль", "М": "эм", "Н": "эн", "О": "о", "П": "пэ", "Р": "эр", "С": "эс", "Т": "тэ",
    "У": "у", "Ф": "эф", "Х": "ха", "Ц": "цэ", "Ч": "че", "Ш": "ша", "Щ": "ща", "Ъ": "твёрдый знак", "Ы": "ы",
    "Ь": "мягкий знак", "Э": "э", "Ю": "ю", "Я": "я",
}
VOWELS = set("АЕЁИОУЫЭЮЯ")
# Latin standards' names as Russian engineers say them.
LATIN_ABBREVIATIONS = {"ISO": "исо", "ASTM": "а эс тэ эм", "DIN": "дин", "EN": "е эн", "GOST": "гост"}

# Unit abbreviations after a number: (noun lemma agreed with the number, fixed words after it).
UNITS = {
    "кН": ("килоньютон", ""), "МН": ("меганьютон", ""), "Н": ("ньютон", ""), "ГПа": ("гигапаскаль", ""),
    "МПа": ("мегапаскаль", ""), "кПа": ("килопаскаль", ""), "Па": ("паскаль", ""), "мкм": ("микрометр", ""),
    "мм": ("миллиметр", ""), "см": ("сантиметр", ""), "км": ("километр", ""), "м": ("метр", ""),
    "кг": ("килограмм", ""), "г": ("грамм", ""), "т": ("тонна", ""), "°C": ("градус", " Цельсия"),
    "°С": ("градус", " Цельсия"), "°": ("градус", ""), "кДж": ("килоджоуль", ""), "Дж": ("джоуль", ""),
    "кВт": ("киловатт", ""), "Вт": ("ватт", ""), "Гц": ("герц", ""), "л": ("литр", ""), "ч": ("час", ""),
    "мин": ("минута", ""), "сек": ("секунда", ""), "%": ("процент", ""), "₽": ("рубль", ""),
    "руб": ("рубль", ""), "коп": ("копейка", ""), "тыс": ("тысяча", ""), "млн": ("миллион", ""),
    "млрд": ("миллиард", ""), "шт": ("штука", ""),
}
PER = {"мин": "в минуту", "с": "в секунду", "сек": "в секунду", "ч": "в час"}
_UNIT_NAMES = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True) if u not in ("°C", "°С"))
_UNIT = rf"(?:\s?(?P<unit>°\s?[CС]|{_UNIT_NAMES})(?P<dot>\.)?(?:/(?P<per>мин|сек|с|ч))?(?![\w°]))"
_NUM = r"\d{1,3}(?:[ \u00a0]\d{3})+(?!\d)|\d+(?:,\d+)?"
NUMBER = re.compile(
    rf"(?P<sign>(?<![\w)])[+−-](?=\d))?(?P<a>{_NUM})(?![A-Za-z])(?:(?P<dash>\s?[–—]\s?|-)(?P<b>{_NUM}))?{_UNIT}?"
)

EMAIL = re.compile(rf"(?<![\w.+-])({EMAIL_LOCAL})@({EMAIL_DOMAIN})")
PHONE = re.compile(
    r"(?<![\w+])(?P<cc>\+\s?7|8)[\s\u00a0-]*(?:\((?P<area1>\d{3,5})\)|(?P<area2>\d{3}))[\s\u00a0-]*"
    r"(?P<rest>\d{1,3}(?:[\s\u00a0-]?\d{2}){2})(?!\d)"
)
LOCAL_PHONE = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{2})(?![\d-])")
TIME_ZONE = re.compile(r"(?P<open>\(\s*)?(?:по\s+)?(?:МСК|MSK)(?:\s*(?P<sign>[+−-])\s*(?P<h>\d{1,2}))?(?P<close>\s*\))?")
TIME = re.compile(r"(?<![\d:,.])(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?![\d:])")
YEAR = re.compile(r"(?<!\d)(?<!\d )(?P<y>1[89]\d\d|20\d\d)\s+(?P<noun>год[а-я]*|г\.)")
MONTHS = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
          "ноября", "декабря")
DATE = re.compile(rf"(?<![\d,.])(?P<d>[1-9]|[12]\d|3[01])\s+(?P<month>{'|'.join(MONTHS)})\b")
NUMERIC_DATE = re.compile(r"(?<![\d.])(?P<d>0?[1-9]|[12]\d|3[01])\.(?P<m>0?[1-9]|1[0-2])\.(?P<y>(?:19|20)\d\d)(?![\d])")
# «1-го», «2-й», «3-х», «5-ти»: a number with a case ending.
NUMBER_ENDING = re.compile(r"(?<![\d,.])(?P<n>\d{1,4})-(?P<end>[а-я]{1,3})\b")
MODEL = re.compile(r"(?<![\w-])(?P<letters>[А-ЯЁ]{1,5})-(?P<num>\d+)(?![\w,]\d)")
ABBREVIATION = re.compile(r"\b[А-ЯЁ]{2,}\b")
LATIN = re.compile(r"\b(" + "|".join(LATIN_ABBREVIATIONS) + r")\b")
# Not a group of a grouped number («1 250 000») nor a decimal part («0,001»).
LONG_DIGITS = re.compile(r"(?<!\d)(?<!\d[,.\s\u00a0])(?:0\d+|\d{7,})(?!\d|[,.]\d|[\s\u00a0]\d{3}\b)")
DOTTED = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?!\d|\.\d)")  # ГОСТ 310.4: «триста десять точка четыре»

# Abbreviations with a dot, by what follows them (an address word takes a capital or a digit after it).
ABBREVIATED_WORDS = [
    (re.compile(r"\bи\s?т\.\s?д\."), "и так далее"), (re.compile(r"\bи\s?т\.\s?п\."), "и тому подобное"),
    (re.compile(r"\bт\.\s?е\."), "то есть"), (re.compile(r"\bт\.\s?к\."), "так как"),
    (re.compile(r"\bв\s?т\.\s?ч\."), "в том числе"),
    (re.compile(r"\bг\.\s*(?=[А-ЯЁ])"), "город "), (re.compile(r"\bул\.\s*"), "улица "),
    (re.compile(r"\bд\.\s*(?=\d)"), "дом "), (re.compile(r"\bкорп\.\s*(?=\d)"), "корпус "),
    (re.compile(r"\bоф\.\s*(?=\d)"), "офис "), (re.compile(r"\bстр\.\s*(?=\d)"), "строение "),
    (re.compile(r"\bкв\.\s*(?=\d)"), "квартира "), (re.compile(r"\bпом\.\s*(?=\d)"), "помещение "),
    (re.compile(r"\b(?:просп\.|пр-т)\s*"), "проспект "), (re.compile(r"\bпер\.\s*(?=[А-ЯЁ])"), "переулок "),
    (re.compile(r"\bнаб\.\s*(?=[А-ЯЁ])"), "набережная "), (re.compile(r"\bпл\.\s*(?=[А-ЯЁ])"), "площадь "),
    (re.compile(r"\bобл\."), "область"), (re.compile(r"\bр-н\b"), "район"), (re.compile(r"\bтел\.\s*"), "телефон "),
    (re.compile(r"№\s*"), "номер "),
]
# The words before a dot that any of them needs (и т.д., т.е., в т.ч., ул., просп. …): a piece with
# none of them (most pieces) skips the passes, one regex scan each, at the cost of a look at its dots.
_ABBREVIATED_HEADS = frozenset({"т", "д", "п", "е", "к", "ч", "ит", "вт", "г", "ул", "корп", "оф", "стр", "кв",
                                "пом", "просп", "пер", "наб", "пл", "обл", "тел"})


def _may_abbreviate(text: str) -> bool:
    if "№" in text or "р-н" in text or "пр-т" in text:
        return True
    dot = text.find(".")
    while dot > 0:
        start = dot
        while start > 0 and text[start - 1].isalpha():
            start -= 1
        if text[start:dot] in _ABBREVIATED_HEADS:
            return True
        dot = text.find(".", dot + 1)
    return False
# A six-digit postal code before the city: two groups, as said («шестьсот двадцать, ноль ноль ноль»).
POSTCODE = re.compile(r"(?<!\d)(\d{3})(\d{3})(?=,\s*(?:г\.|город))")


def spell_letters(letters: str) -> str:
    return " ".join(LETTER_NAMES.get(ch, ch) for ch in letters)


def abbreviation(word: str) -> str:
    """An all-caps word as it is read: a word if it can be said as one (ГОСТ, БИК), else its letters (НДС)."""
    if len(word) >= 4 and morph().word_is_known(word.lower()):
        return word.lower()
    kinds = "".join("v" if ch in VOWELS else "c" for ch in word)
    # Said as a word: ГОСТ, БИК, ИСО, ЕГЭ; spelled: НДС, ИНН, ОГРН, ФГИС, УИМ.
    sayable = (len(word) >= 3 and "v" in kinds and not kinds.startswith(("cc", "vcc"))
               and "vv" not in kinds and "ccc" not in kinds)
    return word.lower() if sayable else spell_letters(word)


def _number_group(group: str) -> str:
    # 3-digit groups that do not start with 0 are said as numbers («сто двадцать три»).
    return int_words(int(group)) if len(group) == 3 and group[0] != "0" else read_digits(group)


# --- the rules ---------------------------------------------------------------------------------

def _email(m: re.Match) -> str:
    def part(s: str) -> str:
        s = re.sub(r"\d+", lambda d: " " + read_digits(d.group()) + " ", s)
        s = s.replace(".", " точка ").replace("-", " дефис ").replace("_", " нижнее подчёркивание ")
        return s.replace("+", " плюс ")
    return f"{part(m.group(1))} собака {part(m.group(2))}"


def _phone(m: re.Match) -> str:
    country = "плюс семь" if m.group("cc").startswith("+") else "восемь"
    area = m.group("area1") or m.group("area2")
    area_words = int_words(int(area)) if area in ("800", "804") else read_digits(area)  # 8 800 is «восемьсот»
    rest = re.findall(r"\d+", m.group("rest"))
    if len(rest) == 1:
        d = rest[0]
        rest = [d[:-4], d[-4:-2], d[-2:]]
    return ", ".join([country, area_words] + [_number_group(g) for g in rest])


def _local_phone(m: re.Match) -> str:
    return ", ".join(_number_group(g) for g in m.groups())


def _time_zone(m: re.Match) -> str:
    words = "по московскому времени"
    if m.group("h"):
        hours = int(m.group("h"))
        sign = "плюс" if m.group("sign") == "+" else "минус"
        words += f" {sign} {int_words(hours)} {agree('час', hours)}"
    return f", {words}," if m.group("open") and m.group("close") else words


def _time(m: re.Match) -> str:
    case = preposition_case(m.string[:m.start()]) or "nomn"
    words = int_words(int(m.group("h")), case)
    minutes = m.group("m")
    if minutes != "00":
        words += " " + ("ноль " + int_words(int(minutes[1])) if minutes[0] == "0" else int_words(int(minutes), case))
    return words


def _year(m: re.Match) -> str:
    noun = m.group("noun")
    before = m.string[:m.start()]
    prep = (re.search(r"(\w+)\s+$", before) or [None, ""])[1].lower()
    if re.search(rf"\b(?:{'|'.join(MONTHS)})\s+$", before):
        case = "gent"  # «31 мая 2025 г.»
    elif prep in ("в", "во") and noun in ("году", "г."):
        case = "loct"
    elif noun == "г.":
        case = preposition_case(before) or "nomn"
    else:
        tag = morph().parse(noun)[0].tag
        case = {"loc2": "loct", "gen2": "gent"}.get(tag.case, tag.case or "nomn")
    number = "plur" if noun not in ("г.",) and morph().parse(noun)[0].tag.number == "plur" else "sing"
    noun_words = noun if noun != "г." else ("году" if case == "loct" else agree("год", 1, case))
    return f"{ordinal_words(int(m.group('y')), case, number=number)} {noun_words}"


def _date(m: re.Match) -> str:
    # «5 мая» is «пятого мая» in running text («приезжайте 5 мая»), «к пятому мая», «на пятое мая».
    case = preposition_case(m.string[:m.start()]) or "gent"
    return f"{ordinal_words(int(m.group('d')), case, gender='neut')} {m.group('month')}"


def _numeric_date(m: re.Match) -> str:
    case = preposition_case(m.string[:m.start()]) or "gent"
    day = ordinal_words(int(m.group("d")), case, gender="neut")
    return f"{day} {MONTHS[int(m.group('m')) - 1]} {ordinal_words(int(m.group('y')), 'gent')} года"


def _number_ending(m: re.Match) -> str:
    """The form whose ending is written: «3-х» → «трёх», «1-го» → «первого», «2-й» → «второй»."""
    n, end = int(m.group("n")), m.group("end")
    if end in ("х", "ти", "ми", "и"):  # cardinal endings: «3-х», «5-ти», «7-ми»
        candidates = [int_words(n, case) for case in ("gent", "loct", "datv", "ablt")]
    else:
        words = ordinal_words(n, "nomn")
        head, last = words.rsplit(" ", 1) if " " in words else ("", words)
        case, gender = context(m.string[:m.start()], m.string[m.end():])
        gender = {"f": "femn", "n": "neut"}.get(gender, "masc")
        # The sentence's case and gender first: «в 3-м корпусе» is «третьем», not «третьим».
        forms = sorted(morph().parse(last)[0].lexeme,
                       key=lambda f: (f.tag.case != case, f.tag.gender not in (gender, None)))
        candidates = [f"{head} {form.word}".strip() for form in forms]
    return next((c for c in candidates if c.endswith(end)), m.group())


def _model(m: re.Match) -> str:
    num = m.group("num")
    return f"{abbreviation(m.group('letters'))} {read_digits(num) if num[0] == '0' else int_words(int(num))}"


def _digits_in_groups(m: re.Match) -> str:
    """Account numbers and codes: ≥ 7 digits, or a leading zero, read in groups as on the phone."""
    d = m.group()
    if len(d) < 7:
        return read_digits(d)
    groups, i = [], 0
    while len(d) - i > 4:
        groups.append(d[i:i + 3])
        i += 3
    groups += [d[i:i + 2], d[i + 2:]] if len(d) - i == 4 else [d[i:]]
    return ", ".join(_number_group(g) for g in groups if g)


def _value(digits: str) -> float:
    return float(re.sub(r"[\s\u00a0]", "", digits).replace(",", "."))


def _number(m: re.Match) -> str:
    a, b, dash, unit = m.group("a"), m.group("b"), m.group("dash"), m.group("unit")
    before, after = m.string[:m.start()], m.string[m.end():]
    sign = {"+": "плюс ", "-": "минус ", "−": "минус "}.get(m.group("sign") or "", "")
    if b is not None and dash == "-" and not (_value(a) < _value(b) and _value(a) < 1000 and "," not in a + b):
        # A code (ISO 7500-1, 9001-2015), not a range: each part on its own.
        head = sign + number_words(a)
        return head + " — " + number_words(b) + (_unit_words(m, _value(b), "nomn") if unit else "")
    if unit:
        unit_key = "°C" if unit.startswith("°") and len(unit) > 1 else unit
        lemma = UNITS[unit_key][0]
        gender = {"femn": "f", "neut": "n"}.get(morph().parse(lemma)[0].tag.gender, "m")
        case = preposition_case(before) or "nomn"
    else:
        case, gender = context(before, after)
    words = sign + number_words(a, case, gender)
    if b is not None:
        words += "-" + number_words(b, case, gender)
    if unit:
        words += _unit_words(m, _value(b if b is not None else a), case)
    return words


def _unit_words(m: re.Match, value: float, case: str) -> str:
    unit = m.group("unit")
    unit_key = "°C" if unit.startswith("°") and len(unit) > 1 else unit
    lemma, tail = UNITS[unit_key]
    words = f" {agree(lemma, value, case)}{tail}"
    if m.group("per"):
        words += " " + PER[m.group("per")]
    rest = m.string[m.end():]
    if m.group("dot") and (not rest.strip() or re.match(r"\s+[А-ЯЁA-Z]", rest)):
        words += "."  # «… 100 руб.» ended the sentence too
    return words


# Money words left after a scale word («1,2 млн руб.»): said in the genitive plural.
LEFT_ABBREVIATIONS = re.compile(r"(?<![\w-])(?P<word>руб|коп|тыс)(?P<dot>\.)?(?![\w-])")
LEFT_WORDS = {"руб": "рублей", "коп": "копеек", "тыс": "тысяч"}


def _left_abbreviation(m: re.Match) -> str:
    rest = m.string[m.end():]
    ends_sentence = m.group("dot") and (not rest.strip() or re.match(r"\s+[А-ЯЁA-Z]", rest))
    return LEFT_WORDS[m.group("word")] + ("." if ends_sentence else "")


_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_MARK = re.compile(r"\s+([,.!?;:»])")
_COMMAS = re.compile(r",(?:\s*,)+")
_COMMA_BEFORE_MARK = re.compile(r",\s*([.!?;:—–])")
_COMMA_AFTER_OPENER = re.compile(r"([«(—–:])\s*,\s*")
_LEADING = re.compile(r"^[\s,]+")


def _tidy(text: str) -> str:
    text = text.replace("(", ", ").replace(")", ", ").replace("+", " плюс ")
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_MARK.sub(r"\1", text)
    text = _COMMAS.sub(",", text)
    text = _COMMA_BEFORE_MARK.sub(lambda m: m.group(1) if m.group(1) in ".!?;:" else " " + m.group(1), text)
    text = _COMMA_AFTER_OPENER.sub(r"\1 ", text)
    return _LEADING.sub("", _SPACES.sub(" ", text)).rstrip()


def speech_form(text: str) -> str:
    """A written piece → what TTS reads. Sentence-local: a piece and a whole answer read the same.

    Never fails: a piece it cannot handle is read as written (the caller must never hear silence).
    """
    if not text or not text.strip():
        return text
    try:
        return _speech_form(text)
    except Exception:
        log.exception("speech form failed; the piece is read as written: %r", text[:200])
        return text


_DIGIT = re.compile(r"\d")


def _speech_form(text: str) -> str:
    # Most pieces hold no digit: the number, date, time, phone and model passes (each needs one,
    # and no pass writes a digit) are skipped for them.
    digits = _DIGIT.search(text) is not None
    text = EMAIL.sub(_email, text)
    if digits:
        text = PHONE.sub(_phone, text)
        text = LOCAL_PHONE.sub(_local_phone, text)
        text = POSTCODE.sub(lambda m: f"{_number_group(m.group(1))}, {read_digits(m.group(2))}", text)
    text = TIME_ZONE.sub(_time_zone, text)
    if digits:
        text = YEAR.sub(_year, text)  # before «г.» is taken for «город»
    if _may_abbreviate(text):
        for pattern, words in ABBREVIATED_WORDS:
            text = pattern.sub(words, text)
    if digits:
        text = TIME.sub(_time, text)
        text = NUMERIC_DATE.sub(_numeric_date, text)
        text = DATE.sub(_date, text)
        text = MODEL.sub(_model, text)
        text = re.sub(r"(?<=\d)-(?=[А-ЯЁ])", " ", text)  # 44-ФЗ
        text = NUMBER_ENDING.sub(_number_ending, text)
        text = re.sub(r"(?<!\d)24/7(?!\d)", "круглосуточно", text)
        text = re.sub(r"(?<=\d)/(?=\d)", " дробь ", text)
        text = DOTTED.sub(lambda m: f"{number_words(m.group(1))} точка {number_words(m.group(2))}", text)
        text = LONG_DIGITS.sub(_digits_in_groups, text)
        text = NUMBER.sub(_number, text)
    text = LEFT_ABBREVIATIONS.sub(_left_abbreviation, text)
    text = re.sub(r"\bГОСТ Р\b", "гост эр", text)
    text = LATIN.sub(lambda m: LATIN_ABBREVIATIONS[m.group()], text)
    text = ABBREVIATION.sub(lambda m: abbreviation(m.group()), text)
    return _tidy(text)
