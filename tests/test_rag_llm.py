"""The LLM path through the real `openai` client against a local OpenAI-compatible SSE server."""
import pytest

from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.rag import CallerContext, get_engine
from metrotest_bot.rag.speakable import split_text
from tests.support.apps import llm_app_context
from tests.support.openai_server import DEFAULT_ANSWER


@pytest.fixture
def llm_app(tmp_path, database_url, fake_openai):
    with llm_app_context(tmp_path / "data", database_url, fake_openai) as app:
        yield app


QUESTION = "во сколько вы открываетесь"


def test_streams_llm_tokens_as_pieces(llm_app, fake_openai):
    settings = BotSettings(system_prompt="Ты помощник Метротеста. Отвечай коротко.")
    stream = get_engine().answer(QUESTION, settings, CallerContext(name="Анна", company="ЗАО Бетон"))
    assert stream.answered and stream.source == "llm"
    pieces = list(stream)
    assert pieces == split_text(DEFAULT_ANSWER)
    assert stream.planned_text == " ".join(pieces)
    assert stream.timings.llm_first_token_ms is not None and stream.timings.first_piece_ms is not None

    [request] = fake_openai.requests
    assert request["stream"] is True and request["model"] == "local-model"
    system, user = request["messages"]
    assert user == {"role": "user", "content": QUESTION}
    assert system["content"].startswith("Ты помощник Метротеста.")
    assert "8:30" in system["content"]  # the retrieved passage went to the model
    assert "Анна" in system["content"] and "ЗАО Бетон" in system["content"]
    assert fake_openai.stream_completed.wait(5)
    assert fake_openai.completed_streams == 1


@pytest.mark.parametrize("mode", ["error500", "hang"])
def test_llm_failure_falls_back_to_the_offline_answer(llm_app, fake_openai, mode):
    fake_openai.mode = mode
    stream = get_engine().answer(QUESTION, BotSettings())
    text = " ".join(stream)
    assert "8:30" in text  # the caller still hears the answer, from the KB
    assert stream.answered and stream.source == "offline"
    assert len(fake_openai.requests) == 1  # no retry chain on a phone line


def test_close_closes_the_llm_http_stream(llm_app, fake_openai):
    fake_openai.answer = " ".join(["Первое предложение ответа."] + [f"Ещё предложение номер {i}." for i in range(40)])
    fake_openai.token_delay = 0.02
    stream = get_engine().answer(QUESTION, BotSettings())
    it = iter(stream)
    first = next(it)
    assert first == "Первое предложение ответа."
    stream.close()
    assert fake_openai.stream_closed.wait(5), "the server never saw the stream closed"
    assert fake_openai.closed_streams == 1 and fake_openai.completed_streams == 0
    assert list(it) == []
    assert stream.planned_text == first


def test_refusal_does_not_call_the_llm(llm_app, fake_openai):
    settings = BotSettings(refusal="Этого я не знаю. Соединить вас с сотрудником?")
    stream = get_engine().answer("какая завтра погода на марсе", settings)
    assert not stream.answered and stream.source == "refusal"
    assert list(stream) == ["Этого я не знаю.", "Соединить вас с сотрудником?"]
    assert fake_openai.requests == []


def test_without_a_key_answers_offline(app, fake_openai):
    with app.app_context():
        stream = get_engine().answer(QUESTION, BotSettings())
        assert stream.source == "offline"
        assert "8:30" in stream.text()
    assert fake_openai.requests == []
