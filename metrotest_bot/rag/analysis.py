"""Russian text → search terms: lemmas, digits for number words, units, stems.

The same analysis runs over KB passages (at index time) and over the
caller's question, so «доставку», «доставки» and «доставка» meet as one term,
«пятьдесят килоньютон» meets «50 кН», and «почём» meets «стоимость».

pymorphy3's MorphAnalyzer is loaded once per process and shared; lemmas are
cached, so analysing a question costs well under a millisecond.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..morph import EMAIL_RE, PHONE_RE, fold_yo, morph
from . import lexicon
from .numbers import number_runs

# Bump when the analysis (or what an index stores) changes: persisted indexes
# built with another version are rebuilt on load. 18: passages' embeddings; 19: the unit signs ° and %
# read as words (градус, процент); 20: a section title several sections share takes its parent's (indexed); 21: a
# dump's page opens with its title (its first line under the menu and breadcrumbs).
ANALYZER_VERSION = "21"


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    return fold_yo(morph().parse(word)[0].normal_form)


@lru_cache(maxsize=200_000)
def lemma_alternatives(word: str) -> tuple[str, ...]:
    """Distinct normal forms of a word, most likely first: «прессы» → (пресса, пресс).

    Indexing every plausible lemma keeps an ambiguous form findable whichever
    reading the analyzer prefers."""
    out: list[str] = []
    for parse in morph().parse(word):
        form = fold_yo(parse.normal_form)
        if form not in out and (not out or parse.score >= 0.01):
            out.append(form)
        if len(out) == 3:
            break
    return tuple(out) or (word,)


@lru_cache(maxsize=50_000)
def is_place(lemma_: str) -> bool:
    """A geographic name (pymorphy's Geox): Пермь, Тюмень, Питер, Казахстан."""
    return lemma_.isalpha() and any("Geox" in parse.tag for parse in morph().parse(lemma_))


_VERB_POS = frozenset({"INFN", "VERB", "PRTF", "PRTS", "GRND"})
# Words that qualify or link rather than name a thing: adverbs, particles, pronouns…
_MINOR_POS = _VERB_POS | {"ADVB", "PRED", "PRCL", "CONJ", "INTJ", "NPRO", "COMP"}


@lru_cache(maxsize=50_000)
def is_verb(lemma_: str) -> bool:
    """A verb (or participle) lemma: names an action, not the topic of a question."""
    if not lemma_.isalpha():
        return False
    return morph().parse(lemma_)[0].tag.POS in _VERB_POS


@lru_cache(maxsize=50_000)
def is_minor(lemma_: str) -> bool:
    """A verb, adverb or other word that does not name the topic (nouns, adjectives and codes do)."""
    if not lemma_.isalpha():
        return False
    return morph().parse(lemma_)[0].tag.POS in _MINOR_POS


@lru_cache(maxsize=50_000)
def is_interjection(word: str) -> bool:
    """«слушайте», «ой», «алло»: how a caller talks, never what about."""
    return word.isalpha() and morph().parse(word)[0].tag.POS == "INTJ"


# Function words and the way callers wrap a question; they say nothing about

# Vocabulary as data (rag/lexicon/): see that package.
STOP = lexicon.words("stop.txt")
# Units and spelling variants written both ways: one canonical term.
CANONICAL = {k: v[0] for k, v in lexicon.mapping("canonical.txt").items()}
# Units of the measurable quantities a caller asks about (see synonyms: вес → кг).
UNITS = frozenset({"кн", "мн", "н", "кгс", "мм", "см", "м", "кг", "грамм", "дж", "квт", "вт", "°", "%"})
COMPOUNDS = lexicon.mapping("compounds.txt")

_NUM_GROUPS = re.compile(r"(?<![\d,.])(\d{1,3})((?:[ \u00a0\u202f]\d{3})+)(?![\d])")
_TOKEN = re.compile(r"[a-zа-яё0-9]+(?:[-:][a-zа-яё0-9]+)*")
_DEGREES = re.compile(r"°\s*[cс]?(?![a-zа-яё])")  # «°C», «° С», «°»: read as «градус»

STEM_LEN = 6

# --- what kind of fact a text holds: marker terms ------------------------------------
# A passage with a phone number answers «дайте телефон» even if the word
# «телефон» is not in it; a question asking for a price prefers passages
# with prices. Markers are indexed with the passage and added to questions.
M_PHONE, M_EMAIL, M_ADDRESS, M_PRICE, M_HOURS, M_TERM = "#телефон", "#почта", "#адрес", "#цена", "#часы", "#срок"
M_MODEL = "#модель"
M_SELF = "#компания"  # a section about the company itself («О компании», «О нас»)

_TEXT_MARKERS = [
    (M_PHONE, PHONE_RE),
    (M_EMAIL, EMAIL_RE),
    (M_ADDRESS, re.compile(r"\b(?:ул|пр|просп|пер|д|г)\.\s*[А-ЯЁA-Z0-9]|\bадрес", re.IGNORECASE)),
    # «бесплатно», «включено в стоимость» answer a price question too
    (M_PRICE, re.compile(r"\d[\d\s\u00a0]*\s*(?:руб|₽|р\.)|(?:стоимость|цена|стоит)\w*\b[^.]{0,60}\d|бесплатн|"
                         r"(?:входит|входят|включ\w*)\s+в\s+(?:стоимость|цену)", re.IGNORECASE)),
    (M_HOURS, re.compile(r"\b\d{1,2}:\d{2}\b|круглосуточно", re.IGNORECASE)),
    (M_TERM, re.compile(r"\d+(?:\s*[–-]\s*\d+)?\s+(?:рабоч\w+\s+|календарн\w+\s+)?"
                        r"(?:дн|день|недел|месяц|лет|год|час|минут)", re.IGNORECASE)),
    (M_MODEL, re.compile(r"\b[А-ЯЁA-Z]{1,5}-\d+")),
]


def text_markers(text: str) -> list[str]:
    return [marker for marker, pattern in _TEXT_MARKERS if pattern.search(text)]


# Words a caller (or a section title) uses for the company itself.
SELF_WORDS = frozenset({"компания", "фирма", "организация", "предприятие"})


def section_markers(title: str) -> list[str]:
    """Markers of a section title: «О компании», «О нас», «Кто мы» mark the company's own section."""
    words = lemmas(title)
    content = [w for w in words if w not in STOP]
    if (content and set(content) <= SELF_WORDS) or (not content and {"мы", "себя"} & set(words)):
        return [M_SELF]
    return []


# --- analysis --------------------------------------------------------------------------

def normalize(text: str) -> str:
    # ё is kept for the analyser («на нём» is «он», «на нем» could be «немой»); lemmas fold it
    text = text.lower().replace("\u00ad", "")
    # an address is searched by its mailbox name: sales@… → «sales почта»
    text = EMAIL_RE.sub(lambda m: " " + m.group(0).split("@")[0] + " почта ", text)
    # «1 250 000» → «1250000»: one term however the digits are grouped
    text = _NUM_GROUPS.sub(lambda m: m.group(1) + re.sub(r"\D", "", m.group(2)), text)
    text = re.sub(r"[–—]", " ", text)
    # «+100 °C», «98 %»: the unit signs are no word characters, so a temperature or a share written with them
    # held no unit term, and a question asking «до какой температуры» was refused on every KB that writes °C.
    text = _DEGREES.sub(" градус ", text).replace("%", " процент ")
    return text


class Code(tuple):
    """A model code or other hyphenated token with digits: (whole, part, part…)."""


def _token_items(token: str) -> list[tuple[str, ...]]:
    """One raw token → items, each a tuple of alternative lemmas."""
    if ":" in token:  # 8:30 stays one term
        return [(token,)]
    if "-" in token:
        parts = [p for p in token.split("-") if p]
        if any(ch.isdigit() for ch in token):
            # model codes: ПИ-2000 is searched as a whole and by its parts
            return [Code((token, *(lemma(p) if p.isalpha() else p for p in parts)))]
        return [lemma_alternatives(p) for p in parts]
    if token.isalpha():
        alts = lemma_alternatives(token)
        if alts[0] in COMPOUNDS:
            return [(part,) for part in COMPOUNDS[alts[0]]]
        return [alts]
    return [(token,)]


LETTERS = {name: letter[0] for name, letter in lexicon.mapping("letters.txt").items()}
_VOWEL_WORDS = frozenset({"а", "и", "у", "о"})


def _spelled_codes(raw: list[tuple[str, ...]], tokens: list[str]) -> None:
    """«кэ эм 300» → КМ-300, «пэ и 2000» → ПИ-2000: letter names before a number spell a model code."""
    i = len(raw) - 1
    while i > 0:
        if raw[i][0].isdigit() and not isinstance(raw[i], Code):
            start = i
            while start > 0 and tokens[start - 1] in LETTERS and i - start < 4:
                start -= 1
            spelled = tokens[start:i]
            if len(spelled) >= 2 and any(t not in _VOWEL_WORDS for t in spelled):
                letters = "".join(LETTERS[t] for t in spelled)
                raw[start:i + 1] = [Code((f"{letters}-{raw[i][0]}", letters, raw[i][0]))]
                tokens[start:i + 1] = [f"{letters}-{raw[start][0]}"]
                i = start
        i -= 1


def _spelled_units(raw: list[tuple[str, ...]], tokens: list[str]) -> None:
    """«пятьсот кэ эн» → 500 кн, «триста дэ жэ» → 300 дж: consonant names after a number spell its unit."""
    i = len(raw) - 2
    while i >= 0:
        if raw[i][0].isdigit() and not isinstance(raw[i], Code):
            end = i + 1
            while end < len(raw) and tokens[end] in LETTERS and tokens[end] not in _VOWEL_WORDS and end - i <= 3:
                end += 1
            if end - i - 1 >= 2:
                unit = "".join(LETTERS[t] for t in tokens[i + 1:end])
                raw[i + 1:end] = [(unit,)]
                tokens[i + 1:end] = [unit]
        i -= 1


def items(text: str) -> list[tuple[str, ...]]:
    """Lemma alternatives of every word in order (stop words kept), number words joined into digits."""
    raw: list[tuple[str, ...]] = []
    tokens: list[str] = []  # the surface word of each item (one per item: compounds repeat it)
    for token in _TOKEN.findall(normalize(text)):
        got = _token_items(token)
        raw.extend(got)
        tokens.extend([token] * len(got))
    for start, end, value in reversed(number_runs([alts[0] for alts in raw])):
        raw[start:end] = [(value,)]
        tokens[start:end] = [value]
    _spelled_units(raw, tokens)
    _spelled_codes(raw, tokens)
    for i in range(len(raw) - 1):
        # Machines are rated in kilonewtons; callers say tons of force («на тридцать тонн»): 1 тс ≈ 10 кН.
        if raw[i + 1][0] == "тонна" and raw[i][0].isdigit() and not isinstance(raw[i], Code):
            raw[i], raw[i + 1] = (str(int(raw[i][0]) * 10),), ("кн",)
    return [alts if isinstance(alts, Code) else tuple(dict.fromkeys(CANONICAL.get(t, t) for t in alts))
            for alts in raw]


def written(text: str) -> str:
    """The words as said, their spelled-out numbers in digits: «машина на пятьдесят килоньютон» →
    «машина на 50 килоньютон». A KB writes numbers in digits; speech recognition spells them out."""
    words = _TOKEN.findall(text.lower())
    firsts = []
    for word in words:
        got = _token_items(word)
        firsts.append(got[0][0] if len(got) == 1 else word)
    for start, end, value in reversed(number_runs(firsts)):
        words[start:end] = [value]
    return " ".join(words)


def lemmas(text: str) -> list[str]:
    """Best lemma of every word (stop words kept)."""
    return [alts[0] for alts in items(text)]


def stem(term: str) -> str | None:
    """A short prefix that joins derived words: метролог ~ метрологический."""
    if len(term) > STEM_LEN + 1 and term.isalpha():
        return term[:STEM_LEN] + "~"
    return None


def content_items(text: str) -> list[tuple[str, ...]]:
    return [alts for alts in items(text) if alts[0] not in STOP]


def content_terms(text: str) -> list[str]:
    """Best lemmas without stop words: what the passage or question is about."""
    return [alts[0] for alts in content_items(text)]


def index_terms(text: str) -> list[str]:
    """Terms indexed for a passage: every plausible lemma, stems, fact markers."""
    terms: list[str] = []
    for alts in content_items(text):
        terms.extend(a for a in alts if a not in STOP)
    stems = [s for s in (stem(t) for t in terms) if s]
    return terms + stems + text_markers(text)
