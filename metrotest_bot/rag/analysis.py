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

from ..morph import morph
from .numbers import number_runs

# Bump when the analysis changes: persisted indexes built with another
# version are rebuilt on load.
ANALYZER_VERSION = "10"


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    return morph().parse(word)[0].normal_form.replace("ё", "е")


@lru_cache(maxsize=200_000)
def lemma_alternatives(word: str) -> tuple[str, ...]:
    """Distinct normal forms of a word, most likely first: «прессы» → (пресса, пресс).

    Indexing every plausible lemma keeps an ambiguous form findable whichever
    reading the analyzer prefers."""
    out: list[str] = []
    for parse in morph().parse(word):
        form = parse.normal_form.replace("ё", "е")
        if form not in out and (not out or parse.score >= 0.01):
            out.append(form)
        if len(out) == 3:
            break
    return tuple(out) or (word,)


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


# Function words and the way callers wrap a question; they say nothing about
# which passage answers it.
STOP = frozenset("""
а без более бы был была были было быть в вам вас весь во вот все всего всех вы где да даже для до его ее
если есть еще же за здесь и из или им их к как какой какая какие каков когда кто ли либо мне может можно
мой мы на над надо наш не него нее нет ни них но ну о об один однако он она они оно от очень по под после
при про с со так также такой там те то тоже только тот ту у уже хотеть хотеться чем через что чтобы чей
чья эта эти это этот я себя свой сам ваш который весь сей оный бы ж либо нибудь будто
подсказать сказать скажите пожалуйста узнать интересовать интересно вопрос слушать алло здравствуйте
куда откуда почему зачем каков добрый день девушка извинить простить спасибо пожалуйста ли подскажите могу мочь нужно нужный сколько
рассказать рассказывать заниматься
чтоб самый вообще примерно приблизительно скок скоко типа короче кстати вроде просто значит смочь
э ээ эээ эм мм ммм ага угу
полпервого полвторого полтретьего полчетвертого полпятого полшестого полседьмого полвосьмого полдевятого
полдесятого полодиннадцатого полдвенадцатого
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

# Units of the measurable quantities a caller asks about (see QUERY_SYNONYMS: вес → кг).
UNITS = frozenset({"кн", "мн", "н", "мм", "см", "м", "кг", "г", "дж", "квт", "вт", "°", "%"})

# Everyday compounds of business speech, spelled out as the KB would write them.
COMPOUNDS = {
    "техподдержка": ("технический", "поддержка"), "техобслуживание": ("технический", "обслуживание"),
    "техзадание": ("технический", "задание"), "спецификация": ("спецификация",),
    "госзаказчик": ("государственный", "заказчик"), "госзакупка": ("государственный", "закупка"),
    "юрлицо": ("юридический", "лицо"), "физлицо": ("физический", "лицо"), "ип": ("индивидуальный", "предприниматель"),
    "запчасть": ("запчасть",), "соцсеть": ("социальный", "сеть"),
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
    "деньги": ["цена", "стоимость"],
    "деньга": ["цена", "стоимость"],
    "кубик": ["куб"],
    "чужой": ["другой", "любой"],
    "мощный": ["максимальный", "кн"],
    "открываться": ["работать", "режим"],
    "закрываться": ["работать", "режим"],
    "открытый": ["работать", "режим"],
    "выходной": ["суббота", "воскресенье"],
    "понедельник": ["будни", "будний"],
    "вторник": ["будни", "будний"],
    "среда": ["будни", "будний"],
    "четверг": ["будни", "будний"],
    "пятница": ["будни", "будний"],
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
    "накрыться": ["ремонт", "неисправность"],
    "сгореть": ["ремонт", "неисправность"],
    "глючить": ["ремонт", "неисправность"],
    "барахлить": ["ремонт", "неисправность"],
    "помятый": ["повреждение"],
    "вмятина": ["повреждение"],
    "царапина": ["повреждение"],
    "трещина": ["повреждение"],
    "груз": ["доставка", "отгрузка"],
    "частый": ["популярный"],
    "мятый": ["повреждение"],
    "побитый": ["повреждение"],
    "разбитый": ["повреждение"],
    "поврежденный": ["повреждение"],
    "московский": ["мск"],
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
    "использовать": ["работать"],
    "вернуть": ["возврат"],
    "возвращать": ["возврат"],
    "обменять": ["возврат", "обмен"],
    "ехать": ["доставка"],
    "везти": ["доставка"],
    "выезжать": ["выезд"],
    "выехать": ["выезд"],
    "приехать": ["выезд"],
    "приезжать": ["выезд"],
    "посмотреть": ["демонстрация", "демонстрационный"],
    "вживую": ["демонстрация", "демонстрационный"],
    "продлить": ["продление"],
    "пользоваться": ["работать"],
    "софт": ["программа", "программный"],
    "покупать": ["заказ", "приобрести"],
    "вызвать": ["выезд"],
    "вызов": ["выезд"],
    "входить": ["включить"],
    "продать": ["поставить", "поставка"],
    "большой": ["максимальный"],
    "наибольший": ["максимальный"],
    "маленький": ["минимальный"],
    "наименьший": ["минимальный"],
    # the trade's own words: a «разрывная машина» tears samples, i.e. tests them in tension
    "разрывной": ["растяжение"],
    "рвать": ["растяжение", "разрыв"],
    "порвать": ["растяжение", "разрыв"],
    "разорвать": ["растяжение", "разрыв"],
    "поверить": ["поверка"],
    "поверять": ["поверка"],
    "калибровать": ["калибровка"],
    "откалибровать": ["калибровка"],
    # a quantity asked about → the unit its value is written in
    "температура": ["°"],
    "вес": ["кг", "г"],
    "весить": ["кг", "г"],
    "нагрузка": ["кн"],
    "усилие": ["кн"],
    "энергия": ["дж"],
    "мощность": ["квт", "вт"],
    # the caller's words for the company itself
    "фирма": ["компания"],
    "организация": ["компания"],
    "предприятие": ["компания"],
}

_NUM_GROUPS = re.compile(r"(?<![\d,.])(\d{1,3})((?:[ \u00a0\u202f]\d{3})+)(?![\d])")
_TOKEN = re.compile(r"[a-zа-я0-9]+(?:[-:][a-zа-я0-9]+)*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

STEM_LEN = 6

# --- what kind of fact a text holds: marker terms ------------------------------------
# A passage with a phone number answers «дайте телефон» even if the word
# «телефон» is not in it; a question asking for a price prefers passages
# with prices. Markers are indexed with the passage and added to questions.
M_PHONE, M_EMAIL, M_ADDRESS, M_PRICE, M_HOURS, M_TERM = "#телефон", "#почта", "#адрес", "#цена", "#часы", "#срок"
M_MODEL = "#модель"
M_SELF = "#компания"  # a section about the company itself («О компании», «О нас»)

_TEXT_MARKERS = [
    (M_PHONE, re.compile(r"(?:\+7|\b8)[\s-]*\(?\d{3,5}\)?[\s-]*\d{1,3}[\s-]*\d{2}[\s-]*\d{2}\b")),
    (M_EMAIL, _EMAIL),
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


# Question words that ask for a kind of fact.
_LEMMA_INTENTS = {
    M_PRICE: {"стоить", "цена", "стоимость", "почем", "прайс", "дорого", "дешево", "платный", "бесплатный",
              "расценка", "тариф", "заплатить"},
    M_PHONE: {"телефон", "номер", "позвонить", "звонить", "дозвониться", "связаться", "связь"},
    M_EMAIL: {"почта", "написать", "связаться"},
    M_ADDRESS: {"адрес", "находиться", "располагаться"},
    M_TERM: {"срок", "ждать"},
}

# Phone phrasings (on the question's text): (pattern, markers, extra terms, said words that become light).
_PHRASES = [
    (re.compile(r"\b(?:во|до|со|с|к)\s+скольк|\b(?:до|с|со)\s+какого\s+(?:часа|времени)|в\s+котором\s+часу|"
                r"часы работы|режим работы|график работы|открыва|закрыва|открыты?\b|"
                r"работа\w*\s+(?:ли\s+)?(?:в|по|на)\s+(?:суббот|воскресень|выходн|праздник)|когда\s+(?:вы\s+)?работа|"
                # «до полшестого», «с девяти утра», «после шести вечера»
                r"\bпол(?:первого|второго|третьего|четвертого|пятого|шестого|седьмого|восьмого|девятого|десятого|"
                r"одиннадцатого|двенадцатого)\b|\b(?:до|с|со|после)\s+\w+\s+(?:утра|вечера)\b|\bв\s+какие\s+часы"),
     [M_HOURS], ["работать", "режим"], {"работать", "открываться", "закрываться", "открыть", "открытый", "час", "время"}),
    (re.compile(r"сколько\s+(?:по\s+)?времени|как\s+долго|как\s+быстро|за\s+сколько|сколько\s+(?:дней|недель|месяцев)|"
                r"какие\s+сроки|какой\s+срок|в\s+течение\s+какого|когда\s+(?:привез|достав|будет|приед|отгруз|сделает)|"
                r"сколько\s+(?:делается|изготавлива|ждать|ехать|идет|идёт)"),
     [M_TERM], ["срок"], {"время", "быстро", "долго"}),
    (re.compile(r"как\s+часто|периодичност|раз\s+в\s+(?:год|сколько)"),
     [M_TERM], ["интервал", "периодический", "периодичность"], {"часто"}),
    (re.compile(r"где\s+(?:вы|у\s+вас|ваш|наход|располож)"), [M_ADDRESS], ["адрес"], set()),
    # «куда резюме отправить», «куда писать»: an e-mail or postal address is the answer
    (re.compile(r"\bкуда\s+(?:\w+\s+)?(?:отправ|присыл|присла|слать|высла|выслат|писать|написа|обращ)"),
     [M_EMAIL, M_ADDRESS], [], set()),
]
# A question that asks what something costs (not how to pay: «картой можно заплатить»).
ASKS_PRICE = re.compile(r"\bсколько\s+(?:\w+\s+){0,2}(?:стоит|стоят|стоить|стоило|будет стоить)|\bпочем\b|"
                        r"\b(?:какая|какие|какова|каковы|узнать|скажите|подскажите)\s+(?:\w+\s+){0,2}(?:цен|стоимост)|"
                        r"\bпрайс|\bрасценк|\bпо\s+деньгам")
# «расскажите о себе», «кто вы такие», «чем вы занимаетесь»: a question about the company itself.
_SELF_PHRASE = re.compile(r"\b(?:о|об|про)\s+(?:себе|себя|вас)\b|\bкто\s+вы\b|\bвы\s+кто\b|\bчем\s+(?:вы\s+)?занима|"
                          r"\bчто\s+вы\s+за\b|^\W*(?:а\s+)?что\s+(?:вы|у\s+вас)\s+(?:производ|выпуска|делает|продает)\w*\W*$")
# What the company does, in a question about the company itself: the phrase says it, not a topic.
SELF_VERBS = frozenset({"производить", "выпускать", "делать", "продавать", "заниматься"})
# «какие копры вы делаете»: the caller wants the models; a passage naming them is better.
_MODELS_QUESTION = re.compile(r"\bкак(?:ие|ой|ая|ое|их)\b.*\b(?:дела|выпуска|производ|бывают|есть у вас|продает|продаете|"
                              r"предлага|изготавл|модел)|\bмодел")


# --- analysis --------------------------------------------------------------------------

def normalize(text: str) -> str:
    text = text.lower().replace("ё", "е").replace("\u00ad", "")
    # an address is searched by its mailbox name: sales@… → «sales почта»
    text = _EMAIL.sub(lambda m: " " + m.group(0).split("@")[0] + " почта ", text)
    # «1 250 000» → «1250000»: one term however the digits are grouped
    text = _NUM_GROUPS.sub(lambda m: m.group(1) + re.sub(r"\D", "", m.group(2)), text)
    text = re.sub(r"[–—]", " ", text)
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


def items(text: str) -> list[tuple[str, ...]]:
    """Lemma alternatives of every word in order (stop words kept), number words joined into digits."""
    raw: list[tuple[str, ...]] = []
    for token in _TOKEN.findall(normalize(text)):
        raw.extend(_token_items(token))
    for start, end, value in reversed(number_runs([alts[0] for alts in raw])):
        raw[start:end] = [(value,)]
    for i in range(len(raw) - 1):
        # Machines are rated in kilonewtons; callers say tons of force («на тридцать тонн»): 1 тс ≈ 10 кН.
        if raw[i + 1][0] == "тонна" and raw[i][0].isdigit() and not isinstance(raw[i], Code):
            raw[i], raw[i + 1] = (str(int(raw[i][0]) * 10),), ("кн",)
    return [alts if isinstance(alts, Code) else tuple(dict.fromkeys(CANONICAL.get(t, t) for t in alts))
            for alts in raw]


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


# Weights of a term by how it entered the question: said, said but generic
# ("light": делать, стоить, работать), implied by phrasing, a stem, a marker.
W_SAID, W_LIGHT, W_SYNONYM, W_STEM, W_MARKER = 1.0, 0.3, 0.5, 0.4, 0.6

LIGHT = frozenset("""
делать сделать занимать занять получить получать иметь использовать пользоваться дать давать
стоить почем работать время нужный надо бывать являться проводить сказать знать
условие информация подробность вариант возможность тема порядок случай диапазон
хороший лучший
сегодня завтра сейчас
""".split())


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
    """The caller's question → slots (content words), fact markers and phrase expansions."""
    text = normalize(question)
    markers: list[str] = []
    extra: list[str] = []
    lighten: set[str] = set()
    for pattern, p_markers, p_extra, p_light in _PHRASES:
        if pattern.search(text):
            markers += p_markers
            extra += p_extra
            lighten |= p_light
    self_question = bool(_SELF_PHRASE.search(text))
    context = self_context_lemmas(text)
    slots: list[Slot] = []
    seen: set[str] = set()
    for alts in content_items(question):
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
            for marker, words in _LEMMA_INTENTS.items():
                if a in words:
                    markers.append(marker)
                    expansions.append(marker)
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
                 list(dict.fromkeys(soft)), asks_price=bool(ASKS_PRICE.search(text)))
