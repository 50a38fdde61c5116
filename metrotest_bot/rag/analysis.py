"""Russian text → search terms: lemmas, digits for number words, units, stems.

The same analysis runs over KB passages (at index time) and over the
caller's question, so «доставку», «доставки» and «доставка» meet as one term,
«пятьдесят килоньютон» meets «50 кН», and «почём» meets «стоимость».

pymorphy3's MorphAnalyzer is loaded once per process and shared; lemmas are
cached, so analysing a question costs well under a millisecond.
"""
from __future__ import annotations

import re
import threading
from functools import lru_cache

from .numbers import join_number_words

# Bump when the analysis changes: persisted indexes built with another
# version are rebuilt on load.
ANALYZER_VERSION = "1"

_morph = None
_morph_lock = threading.Lock()


def morph():
    global _morph
    if _morph is None:
        with _morph_lock:
            if _morph is None:
                import pymorphy3

                _morph = pymorphy3.MorphAnalyzer(lang="ru")
    return _morph


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    return morph().parse(word)[0].normal_form.replace("ё", "е")


# Function words and the way callers wrap a question; they say nothing about
# which passage answers it.
STOP = frozenset("""
а без более бы был была были было быть в вам вас весь во вот все всего всех вы где да даже для до его ее
если есть еще же за здесь и из или им их к как какой какая какие каков когда кто ли либо мне может можно
мой мы на над надо наш не него нее нет ни них но ну о об один однако он она они оно от очень по под после
при про с со так также такой там те то тоже только тот ту у уже хотеть хотеться чем через что чтобы чей
чья эта эти это этот я себя свой сам ваш который весь сей оный бы ж либо нибудь будто
подсказать сказать скажите пожалуйста узнать интересовать интересно вопрос слушать алло здравствуйте
добрый день девушка извинить простить спасибо пожалуйста ли подскажите могу мочь нужно нужный сколько
""".split())

# Units and spelling variants written both ways: one canonical term.
CANONICAL = {
    "килоньютон": "кн", "кнь": "кн", "килоньютона": "кн",
    "меганьютон": "мн", "ньютон": "н",
    "миллиметр": "мм", "сантиметр": "см", "метр": "м", "килограмм": "кг", "грамм": "г",
    "джоуль": "дж", "киловатт": "квт", "ватт": "вт", "градус": "°",
    "рубль": "руб", "тыс": "тысяча",
    "емейл": "почта", "имейл": "почта", "email": "почта", "e-mail": "почта", "мейл": "почта",
    "линукс": "linux", "виндовс": "windows", "астра": "astra",
    "процент": "%",
}

# Colloquial phone phrasing → the words a KB uses for the same thing. General
# company-FAQ vocabulary, not tied to one KB; applied to questions only.
QUERY_SYNONYMS = {
    "почем": ["цена", "стоимость", "стоить"],
    "почём": ["цена", "стоимость", "стоить"],
    "стоить": ["цена", "стоимость"],
    "цена": ["стоимость", "стоить"],
    "стоимость": ["цена", "стоить"],
    "прайс": ["цена", "стоимость"],
    "дорого": ["цена", "стоимость"],
    "открываться": ["работать", "режим"],
    "закрываться": ["работать", "режим"],
    "открытый": ["работать", "режим"],
    "выходной": ["суббота", "воскресенье"],
    "суббота": ["выходной"],
    "воскресенье": ["выходной"],
    "находиться": ["адрес"],
    "располагаться": ["адрес"],
    "офис": ["адрес"],
    "доехать": ["проехать", "добраться"],
    "добраться": ["проехать"],
    "проехать": ["добраться"],
    "позвонить": ["телефон"],
    "номер": ["телефон"],
    "связаться": ["телефон", "почта"],
    "дозвониться": ["телефон"],
    "почта": ["электронный"],
    "привезти": ["доставка"],
    "доставлять": ["доставка"],
    "отправлять": ["доставка", "отгружать"],
    "забрать": ["самовывоз"],
    "заплатить": ["оплата"],
    "платить": ["оплата"],
    "оплатить": ["оплата"],
    "купить": ["заказ", "приобрести"],
    "приобрести": ["купить"],
    "заказать": ["заказ"],
    "сломаться": ["ремонт", "неисправность"],
    "починить": ["ремонт"],
    "чинить": ["ремонт"],
    "ремонтировать": ["ремонт"],
    "поломка": ["ремонт", "неисправность"],
    "наличие": ["склад"],
    "быстро": ["срок"],
    "долго": ["срок"],
    "ждать": ["срок"],
    "делаться": ["изготовление", "срок"],
    "изготавливать": ["изготовление"],
    "делать": ["производить"],
    "выпускать": ["производить"],
    "производить": ["выпускать"],
    "работа": ["вакансия"],
    "устроиться": ["вакансия"],
    "резюме": ["вакансия"],
    "сотрудник": ["вакансия"],
    "бесплатный": ["стоимость"],
    "платный": ["стоимость"],
    "учить": ["обучение"],
    "научить": ["обучение"],
    "компьютер": ["программа"],
    "софт": ["программа", "программный"],
}

# After «до скольки», «во сколько», «со скольки»: the caller asks for hours.
_TIME_QUESTION = re.compile(r"\b(до|во|со|с)\s+скольк", re.IGNORECASE)

_NUM_GROUPS = re.compile(r"(?<![\d,.])(\d{1,3})((?:[ \u00a0\u202f]\d{3})+)(?![\d])")
_TOKEN = re.compile(r"[a-zа-я0-9]+(?:[-:][a-zа-я0-9]+)*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

STEM_LEN = 6


def normalize(text: str) -> str:
    text = text.lower().replace("ё", "е").replace("\u00ad", "")
    # an address is searched by its mailbox name: sales@… → «sales почта»
    text = _EMAIL.sub(lambda m: " " + m.group(0).split("@")[0] + " почта ", text)
    # «1 250 000» → «1250000»: one term however the digits are grouped
    text = _NUM_GROUPS.sub(lambda m: m.group(1) + re.sub(r"\D", "", m.group(2)), text)
    text = re.sub(r"[–—]", " ", text)
    return text


def _word_terms(token: str) -> list[str]:
    """One raw token → its lemma(s). Hyphenated codes keep the whole and the parts."""
    if re.search(r"\d", token) or "-" in token or ":" in token:
        out = [token]
        parts = re.split(r"[-:]", token)
        if len(parts) > 1:
            out += [lemma(p) if p.isalpha() else p for p in parts if p]
        return out
    return [lemma(token)]


def lemmas(text: str) -> list[str]:
    """Lemmas of all words in order (stop words kept), number words joined into digits."""
    out: list[str] = []
    for token in _TOKEN.findall(normalize(text)):
        out.extend(_word_terms(token))
    out = join_number_words(out)
    return [CANONICAL.get(t, t) for t in out]


def stem(term: str) -> str | None:
    """A short prefix that joins derived words: метролог ~ метрологический."""
    if len(term) > STEM_LEN + 1 and term.isalpha():
        return term[:STEM_LEN] + "~"
    return None


def content_terms(text: str) -> list[str]:
    """Lemmas without stop words: what the passage or question is about."""
    return [t for t in lemmas(text) if t not in STOP and len(t) > 0]


def index_terms(text: str) -> list[str]:
    """Terms indexed for a passage: content lemmas plus their stems."""
    terms = content_terms(text)
    return terms + [s for s in (stem(t) for t in terms) if s]


# Weight of a term by how it entered the question: said, implied, or a stem.
W_SAID, W_SYNONYM, W_STEM = 1.0, 0.5, 0.4


def weighted_query_terms(question: str) -> dict[str, float]:
    """Terms searched for a question with their weights: content lemmas (1.0),
    colloquial expansions (0.5), stems of the lemmas (0.4)."""
    base = content_terms(question)
    out: dict[str, float] = {t: W_SAID for t in base}
    extra: list[str] = []
    if _TIME_QUESTION.search(question.lower().replace("ё", "е")):
        extra += ["работать", "режим"]
    for t in base:
        extra += QUERY_SYNONYMS.get(t, [])
    for t in extra:
        out.setdefault(t, W_SYNONYM)
    for t in base:
        s = stem(t)
        if s:
            out.setdefault(s, W_STEM)
    return out


def query_terms(question: str) -> list[str]:
    return list(weighted_query_terms(question))


def query_weights(question: str, idf=None) -> dict[str, float]:
    """Weighted terms, each also weighted by its rarity in the KB when `idf` is given."""
    return {t: w * (idf(t) if idf else 1.0) for t, w in weighted_query_terms(question).items()}
