"""Speakable pieces: whole sentences out as soon as complete; nothing cut inside numbers,
times, codes, abbreviations, e-mails or phone numbers."""
import re

import pytest

from metrotest_bot.rag.speakable import LONG_SENTENCE, PieceSplitter, clean_for_speech, split_text


def llm_tokens(text):
    """Roughly how an LLM streams: words with their leading space, punctuation apart."""
    return re.findall(r"\s*[\w-]+|\s*[^\w\s]", text)


def stream(text):
    splitter = PieceSplitter()
    out = []
    for token in llm_tokens(text):
        out.extend(splitter.feed(token))
    return out + splitter.finish()


HARD = [
    "Мы работаем с 8:30 до 17:30 по будням.",
    "Пресс ПИ-2000 стоит от 1 250 000 рублей с НДС.",
    "Наш адрес: г. Екатеринбург, ул. Испытателей, д. 12, корпус 3.",
    "Поверка занимает пять рабочих дней, т. е. около недели.",
    "Пишите на sales@metrotest.example, ответим в тот же день.",
    "Звоните по номеру +7 (343) 000-12-10 или 8 800 000-12-12.",
    "Класс точности 0,5 по ГОСТ 28840, скорость траверсы от 0,001 до 500 мм/мин.",
]


@pytest.mark.parametrize("sentence", HARD)
def test_hard_sentences_stay_whole(sentence):
    assert stream(sentence) == [sentence]
    assert split_text(sentence) == [sentence]


def test_each_sentence_leaves_as_soon_as_the_next_begins():
    splitter = PieceSplitter()
    emitted = []
    tokens = llm_tokens("Мы работаем с 8:30 до 17:30. Суббота — выходной.")
    for i, token in enumerate(tokens):
        for piece in splitter.feed(token):
            emitted.append((i, piece))
    # the first sentence was out before the stream ended, right after «Суббота» arrived
    assert emitted == [(tokens.index(" Суббота"), "Мы работаем с 8:30 до 17:30.")]
    assert splitter.finish() == ["Суббота — выходной."]


def test_all_hard_cases_in_one_stream():
    text = " ".join(HARD)
    assert stream(text) == HARD


def test_long_sentence_is_cut_at_a_clause_and_loses_nothing():
    text = ("Выезд инженера по Свердловской области занимает до трёх рабочих дней после заявки, "
            "а в другие регионы выезд организуется в течение десяти рабочих дней, "
            "стоимость выезда вне гарантии от 15 000 рублей плюс транспортные расходы.")
    pieces = stream(text)
    assert len(pieces) >= 2
    assert " ".join(pieces) == text
    assert all(len(p) <= LONG_SENTENCE + 40 for p in pieces)
    assert pieces[0].endswith(",")


def test_long_sentence_with_numbers_is_not_cut_inside_them():
    text = ("Цены такие: пресс ПИ-500 стоит от 640 000 рублей, пресс ПИ-1000 стоит от 780 000 рублей, "
            "пресс ПИ-2000 стоит от 920 000 рублей, пресс ПИ-3000 стоит от 1 350 000 рублей с НДС.")
    pieces = stream(text)
    assert len(pieces) >= 2 and " ".join(pieces) == text
    for piece in pieces:
        assert not piece.startswith(("000", "-", "2000"))
    for number in ("640 000", "780 000", "920 000", "1 350 000", "ПИ-2000"):
        assert any(number in p for p in pieces)


def test_markdown_is_not_spoken():
    assert clean_for_speech("**Цена** — `98 000` рублей") == "Цена — 98 000 рублей"
    assert stream("- Первое.\n- Второе.") == ["Первое.", "Второе."]


def test_empty_stream_gives_nothing():
    splitter = PieceSplitter()
    assert splitter.feed("") == [] and splitter.finish() == []
