"""The speech form (rag/speech.py): what TTS reads for a written piece."""
import re

import pytest

from metrotest_bot.rag.speakable import LONG_SENTENCE, split_text
from metrotest_bot.rag import speech
from metrotest_bot.rag.speech import speech_form

# Numbers with the case their preposition or noun asks for: (written, spoken).
NUMBER_CASES = [
    ("от 640 000 рублей", "от шестисот сорока тысяч рублей"),
    ("от 920 000 рублей", "от девятисот двадцати тысяч рублей"),
    ("от 1 250 000 рублей", "от одного миллиона двухсот пятидесяти тысяч рублей"),
    ("стоит 98 000 рублей", "стоит девяносто восемь тысяч рублей"),
    ("до 12 часов", "до двенадцати часов"),
    ("весит 450 граммов", "весит четыреста пятьдесят граммов"),
    ("на 5 лет", "на пять лет"),
    ("до 5 лет", "до пяти лет"),
    ("в течение 3 рабочих дней", "в течение трёх рабочих дней"),
    ("от 45 до 60 рабочих дней", "от сорока пяти до шестидесяти рабочих дней"),
    ("в течение 2–3 недель", "в течение двух-трёх недель"),
    ("более 3500 единиц", "более трёх тысяч пятисот единиц"),
    ("на 10 000 испытаний", "на десять тысяч испытаний"),
    ("на 20 машин", "на двадцать машин"),
    ("к 5 часам", "к пяти часам"),
    ("с 2 захватами", "с двумя захватами"),
    ("о 3 образцах", "о трёх образцах"),
    ("2 недели", "две недели"),
    ("на 1 неделю", "на одну неделю"),
    ("21 день", "двадцать один день"),
    ("24 месяца", "двадцать четыре месяца"),
    ("не более 30 месяцев", "не более тридцати месяцев"),
    ("с 8:30 до 17:30", "с восьми тридцати до семнадцати тридцати"),
    ("с 9:00 до 16:00", "с девяти до шестнадцати"),
    ("в 9:00", "в девять"),
    ("в 2004 году", "в две тысячи четвёртом году"),
    ("с 2010 года", "с две тысячи десятого года"),
    ("до 31 мая", "до тридцать первого мая"),
    ("до минус 70 градусов", "до минус семидесяти градусов"),
    ("1 год", "один год"),
]

UNIT_CASES = [
    ("2000 кН", "две тысячи килоньютонов"),
    ("до 2000 кН", "до двух тысяч килоньютонов"),
    ("2 кН", "два килоньютона"),
    ("на 1 кН", "на один килоньютон"),
    ("5 мм", "пять миллиметров"),
    ("от 0,001 до 500 мм/мин", "от ноля целых одной тысячной до пятисот миллиметров в минуту"),
    ("3 кг", "три килограмма"),
    ("-70 °C", "минус семьдесят градусов Цельсия"),
    ("до 350 °C", "до трёхсот пятидесяти градусов Цельсия"),
    ("300 Дж", "триста джоулей"),
    ("до 50%", "до пятидесяти процентов"),
]

FORM_CASES = [
    # addresses
    ("620000, г. Екатеринбург, ул. Испытателей, д. 12, корпус 3.",
     "шестьсот двадцать, ноль ноль ноль, город Екатеринбург, улица Испытателей, дом двенадцать, корпус три."),
    ("ул. Примерная, д. 5, оф. 301, корп. 2", "улица Примерная, дом пять, офис триста один, корпус два"),
    # phones in groups
    ("+7 (343) 000-12-20", "плюс семь, три четыре три, ноль ноль ноль, двенадцать, двадцать"),
    ("8 800 000-12-12", "восемь, восемьсот, ноль ноль ноль, двенадцать, двенадцать"),
    ("+73430001210", "плюс семь, три четыре три, ноль ноль ноль, двенадцать, десять"),
    # e-mails as dictated
    ("service@metrotest.example", "service собака metrotest точка example"),
    ("info-2@metro-test.ru", "info дефис два собака metro дефис test точка ru"),
    # time zones
    ("по екатеринбургскому времени (МСК+2).", "по екатеринбургскому времени, по московскому времени плюс два часа."),
    ("МСК-1", "по московскому времени минус один час"),
    # model codes: letter names and the number in words
    ("ПИ-2000", "пэ и две тысячи"),
    ("КМ-300", "ка эм триста"),
    ("ТП-1", "тэ пэ один"),
    # abbreviations as read
    ("с НДС", "с эн дэ эс"),
    ("по ГОСТ 10180", "по гост десять тысяч сто восемьдесят"),
    ("ISO 7500-1", "исо семь тысяч пятьсот — один"),
    ("ГОСТ Р ИСО 9001-2015", "гост эр исо девять тысяч один — две тысячи пятнадцать"),
    ("т. е. за неделю", "то есть за неделю"),
    # dates and numbers with a case ending
    ("до 01.02.2025", "до первого февраля две тысячи двадцать пятого года"),
    ("с 1-го числа", "с первого числа"),
    ("в 3-м корпусе", "в третьем корпусе"),
    ("для 3-х машин", "для трёх машин"),
    ("ГОСТ 310.4", "гост триста десять точка четыре"),
    ("Цена — 1,2 млн руб. Звоните.", "Цена — одна целая две десятых миллиона рублей. Звоните."),
    ("Работаем 24/7.", "Работаем круглосуточно."),
    ("ИНН 6600000000", "и эн эн шестьсот шестьдесят, ноль ноль ноль, ноль ноль, ноль ноль"),
]


@pytest.mark.parametrize("written, spoken", NUMBER_CASES)
def test_numbers_take_the_case_of_their_preposition_or_noun(written, spoken):
    assert speech_form(written) == spoken


def test_the_number_table_is_big_enough():
    assert len(NUMBER_CASES) >= 20


@pytest.mark.parametrize("written, spoken", UNIT_CASES)
def test_units_are_words_that_agree_with_the_number(written, spoken):
    assert speech_form(written) == spoken


@pytest.mark.parametrize("written, spoken", FORM_CASES)
def test_written_shorthand_is_read_as_said(written, spoken):
    assert speech_form(written) == spoken


def test_a_sentence_end_after_an_abbreviated_unit_is_kept():
    assert speech_form("Стоит 100 руб. Звоните.") == "Стоит сто рублей. Звоните."


# The written shorthand that must never reach TTS.
SHORTHAND = re.compile(r"\d|\bул\.|\bд\.\s|\bг\.\s|\+|@|\bкН\b|МСК|[()]|\b[А-ЯЁ]{2,}\b")


def _kb_lines(path):
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_no_shorthand_is_left_anywhere_in_the_demo_kb(shared_kb):
    for line in _kb_lines(shared_kb):
        spoken = speech_form(line)
        assert not SHORTHAND.search(spoken), (line, spoken)


def test_splitting_never_cuts_inside_a_spoken_number_or_phone_group(shared_kb):
    """A cut inside a number, a time or a phone would change how it is read: the pieces, each
    read on its own, must read exactly as the whole sentence does."""
    split = 0
    for line in _kb_lines(shared_kb):
        pieces = split_text(line)
        split += len(pieces) > 1
        assert " ".join(speech_form(p) for p in pieces) == speech_form(" ".join(pieces)), pieces
    assert split >= 10  # the KB's long sentences were cut: the check above saw cuts


def test_a_long_sentence_is_cut_at_a_clause_with_its_phone_and_price_whole():
    sentence = ("Для вызова инженера по Свердловской области позвоните в сервисный отдел по номеру "
                "+7 (343) 000-12-20, выезд стоит от 15 000 рублей, а в другие регионы инженер приезжает "
                "в течение 10 рабочих дней после заявки и оплаты.")
    assert len(sentence) > LONG_SENTENCE
    pieces = [speech_form(p) for p in split_text(sentence)]
    assert len(pieces) > 1
    whole = {"плюс семь, три четыре три, ноль ноль ноль, двенадцать, двадцать", "от пятнадцати тысяч рублей",
             "в течение десяти рабочих дней"}
    for phrase in whole:
        assert sum(phrase in p for p in pieces) == 1, (phrase, pieces)


def test_a_piece_the_rules_cannot_handle_is_read_as_written(monkeypatch, caplog):
    def broken(match):
        raise ValueError("a rule broke")

    monkeypatch.setattr(speech, "_phone", broken)
    assert speech_form("Звоните: +7 (343) 000-12-20.") == "Звоните: +7 (343) 000-12-20."
    assert "speech form failed" in caplog.text
    assert speech_form("с НДС") == "с эн дэ эс"  # pieces without a phone are unaffected


# Written forms of every abbreviation the speech form expands, inside a sentence as the LLM writes them.
ABBREVIATED_SAMPLES = ["и т.д.", "ит.д.", "и т. п.", "т.е.", "т. к.", "в т.ч.", "вт.ч.", "г. Екатеринбург", "ул.Ленина",
                       "д. 12", "корп.2", "оф. 3", "стр. 1", "кв.7", "пом. 4", "просп. Мира", "пр-т Мира",
                       "пер. Тихий", "наб. Реки", "пл. Победы", "Свердловской обл.", "Ленинский р-н", "тел. 2",
                       "№5", "№ 5"]


def test_the_abbreviation_prefilter_lets_every_abbreviation_through():
    """A piece skips the abbreviation passes when _may_abbreviate says no: it must say yes wherever
    one of them would change the piece (a new pattern needs its head in _ABBREVIATED_HEADS and a sample here)."""
    for pattern, _ in speech.ABBREVIATED_WORDS:
        assert any(pattern.search(s) for s in ABBREVIATED_SAMPLES), f"no sample for {pattern.pattern}"
    for sample in ABBREVIATED_SAMPLES:
        for text in (sample, f"Наш адрес: {sample}, звоните.", f"Это ({sample})."):
            if any(p.search(text) for p, _ in speech.ABBREVIATED_WORDS):
                assert speech._may_abbreviate(text), text
    assert not speech._may_abbreviate("Доставка по Екатеринбургу бесплатная. Отгружаем за пять дней.")
    assert speech_form("Офис: г. Екатеринбург, ул. Испытателей, д. 12.") == speech_form(
        "Офис: г. Екатеринбург, ул. Испытателей, д. 12.".replace("д. 12", "дом 12"))
