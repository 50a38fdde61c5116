"""Never silent: deadlines kept by a timer, whatever the model streams (keep-alives, a trickle, a stall).

The real `openai` client against the local OpenAI-compatible SSE server in slow modes.
"""
import time

import pytest

from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.rag import get_engine
from metrotest_bot.rag.speakable import split_text
from tests.support.apps import llm_app_context

DEADLINE = 1.0  # FIRST_SPEECH_DEADLINE here (3 s in production): the tests stay quick
STALL = 1.0
QUESTION = "во сколько вы открываетесь"  # the offline gate answers it from the sample KB
SETTINGS = BotSettings(cut_short_phrase="Извините, ответ прервался.")


@pytest.fixture
def llm_app(tmp_path, database_url, fake_openai):
    with llm_app_context(tmp_path / "data", database_url, fake_openai, LLM_FIRST_TOKEN_TIMEOUT=30, LLM_TOTAL_TIMEOUT=8,
                         FIRST_SPEECH_DEADLINE=DEADLINE, LLM_STALL_TIMEOUT=STALL) as app:
        yield app


def first_piece(question=QUESTION):
    started = time.monotonic()
    stream = get_engine().answer(question, SETTINGS)
    it = iter(stream)
    piece = next(it)
    return stream, it, piece, time.monotonic() - started


def test_keep_alives_without_a_token_do_not_keep_the_caller_waiting(llm_app, fake_openai):
    fake_openai.mode = "ping"
    stream, it, piece, took = first_piece()
    assert took < DEADLINE + 1.5  # not the read timeout (30 s here): pings reset no deadline
    assert stream.source == "offline" and "8:30" in " ".join([piece, *it])
    assert fake_openai.stream_closed.wait(5)  # the model's stream was given up


def test_a_trickle_of_words_is_replaced_by_the_offline_answer(llm_app, fake_openai):
    fake_openai.answer = "Мы работаем с понедельника по пятницу с восьми тридцати."
    fake_openai.token_delay = 0.6  # a word every 0.6 s: the first sentence would take ~6 s
    stream, it, piece, took = first_piece()
    assert took < DEADLINE + 1.5 and stream.source == "offline"


def test_fast_tokens_with_no_sentence_end_do_not_hold_speech(llm_app, fake_openai):
    fake_openai.answer = " ".join(["слово"] * 1500)  # ~7.5 s of words: far past the bound below
    fake_openai.token_delay = 0.005
    stream, it, piece, took = first_piece()
    assert took < DEADLINE + 1.5  # a margin for a loaded machine


def test_a_stall_after_a_sentence_ends_with_the_phrase_not_a_stray_word(llm_app, fake_openai):
    fake_openai.answer = "Мы работаем с понедельника по пятницу. А в субботу и воскресенье"
    fake_openai.stall_after = 8  # the first sentence, then « А в» and silence (keep-alives only)
    fake_openai.stall_seconds = 30
    stream, it, piece, took = first_piece()
    assert piece == "Мы работаем с понедельника по пятницу."
    started = time.monotonic()
    rest = list(it)
    assert time.monotonic() - started < STALL + 2.0  # not the 30 s stall; a margin for a loaded machine
    assert rest == split_text(SETTINGS.cut_short_phrase)  # «А в» is never spoken
    assert stream.source == "llm"


def test_the_whole_answer_deadline_holds_while_tokens_keep_coming(llm_app, fake_openai):
    fake_openai.answer = " ".join(f"Предложение номер {i}." for i in range(200))
    fake_openai.token_delay = 0.05
    started = time.monotonic()
    pieces = list(get_engine().answer(QUESTION, SETTINGS))
    assert time.monotonic() - started < 8 + 1.0
    assert pieces[-1] == split_text(SETTINGS.cut_short_phrase)[-1]
