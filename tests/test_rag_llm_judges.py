"""With an LLM configured, the model decides whether the KB answers (the NO_ANSWER marker), through the
real `openai` client against the local OpenAI-compatible SSE server."""
import pytest

from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.rag import get_engine
from metrotest_bot.rag.dialogue import MAX_CONTEXT, Dialogue
from metrotest_bot.rag.generate import NO_ANSWER, NoAnswerDetector
from metrotest_bot.rag.scoring import plainly_off_topic
from metrotest_bot.rag.speakable import split_text
from tests.support.apps import llm_app_context

REFUSAL = "К сожалению, в базе знаний нет ответа. Соединить вас с сотрудником?"
QUESTION = "во сколько вы открываетесь"


@pytest.fixture
def llm_app(tmp_path, database_url, fake_openai):
    with llm_app_context(tmp_path / "data", database_url, fake_openai) as app:
        yield app


def ask(question, dialogue=None):
    stream = get_engine().answer(question, BotSettings(refusal=REFUSAL), dialogue=dialogue)
    return stream, list(stream)


def test_the_model_saying_no_answer_is_spoken_as_the_refusal(llm_app, fake_openai):
    fake_openai.answer = NO_ANSWER
    stream, pieces = ask(QUESTION)
    assert pieces == split_text(REFUSAL)
    assert stream.answered is False and stream.source == "refusal"
    [request] = fake_openai.requests
    assert NO_ANSWER in request["messages"][0]["content"]  # the model was told how to say it


@pytest.mark.parametrize("chunks", [
    ["НЕ", "Т_", "ОТ", "ВЕТА"],  # the marker split over chunks
    [" ", "НЕТ_ОТВЕТА", "."],  # after a space, with trailing punctuation
    ["НЕТ_ОТВЕТА", " Извините, не знаю."],  # whatever follows the marker is never spoken
])
def test_the_marker_is_recognised_however_it_is_split(llm_app, fake_openai, chunks):
    fake_openai.chunks = chunks
    stream, pieces = ask(QUESTION)
    assert pieces == split_text(REFUSAL) and stream.answered is False


def test_an_answer_that_starts_like_the_marker_is_spoken_whole(llm_app, fake_openai):
    fake_openai.chunks = ["Не", "т, по суббот", "ам мы не работаем. ", "Ждём вас в будни."]
    stream, pieces = ask("вы работаете в субботу")
    assert pieces == ["Нет, по субботам мы не работаем.", "Ждём вас в будни."]
    assert stream.answered is True and stream.source == "llm"


# Near the KB (its words), not in it; which of them the learned gate refuses moves as it is retrained.
NEAR_TOPIC = ["а у вас можно взять пресс в аренду на месяц", "сколько весит пресс пи две тысячи",
              "какая скидка на пресс при оплате сразу", "дилер ваш в минске по какому адресу находится"]


def refused_near_topic() -> str:
    refused = [q for q in NEAR_TOPIC
               if (f := get_engine().search(q)[0]) is not None and not f.answered and not f.off_topic]
    assert refused, "the offline gate answers every near-topic question: pick others"
    return refused[0]


def test_a_question_the_offline_gate_refuses_reaches_the_model(llm_app, fake_openai):
    question = refused_near_topic()
    fake_openai.answer = "Аренды нет, но есть лизинг."
    stream, pieces = ask(question)
    assert pieces == ["Аренды нет, но есть лизинг."] and stream.answered
    [request] = fake_openai.requests
    assert len([line for line in request["messages"][0]["content"].splitlines() if line.startswith("[")]) >= 4


def test_plainly_off_topic_is_refused_without_the_model(llm_app, fake_openai):
    stream, pieces = ask("можно заказать пиццу")
    assert pieces == split_text(REFUSAL) and not stream.answered
    assert fake_openai.requests == []


def test_a_question_only_in_the_callers_own_words_reaches_the_model(llm_app, fake_openai):
    """No word the caller names is the KB's («пятисотка», «посылка», «Уфа»): the lexical screen alone refused it
    before the model (v12.8), but the learned gate does not find it plainly off-topic, so the model judges."""
    question = "а пятисотку в уфу посылкой отправите"
    found = get_engine().search(question)[0]
    assert plainly_off_topic(found.query, get_engine().current().stats) and not found.screened
    fake_openai.answer = "Да, в другие города отправляем транспортной компанией."
    stream, pieces = ask(question)
    assert pieces == ["Да, в другие города отправляем транспортной компанией."]
    assert stream.answered and stream.source == "llm" and len(fake_openai.requests) == 1


def test_the_model_receives_the_earlier_turns(llm_app, fake_openai):
    dialogue = Dialogue()
    fake_openai.answer = "Да, есть разрывные машины РМ-10 и РМ-50."
    stream, pieces = ask("у вас есть разрывные машины", dialogue)
    dialogue.add("у вас есть разрывные машины", " ".join(pieces), stream.query)
    fake_openai.answer = "РМ-50 стоит от 1 250 000 рублей."
    ask("а сколько такая стоит", dialogue)
    messages = fake_openai.requests[-1]["messages"]
    assert messages[1:] == [
        {"role": "user", "content": "у вас есть разрывные машины"},
        {"role": "assistant", "content": "Да, есть разрывные машины РМ-10 и РМ-50."},
        {"role": "user", "content": "а сколько такая стоит"},
    ]
    # the follow-up was searched with its subject: the machine's price is the first passage the model reads
    first = next(line for line in messages[0]["content"].splitlines() if line.startswith("[1]"))
    assert "1 250 000" in first


def test_llm_failure_on_a_question_the_gate_refuses_speaks_the_refusal(llm_app, fake_openai):
    fake_openai.mode = "error500"
    stream, pieces = ask(refused_near_topic())
    assert pieces == split_text(REFUSAL) and stream.answered is False


@pytest.mark.parametrize("chunks, spoken, no_answer", [
    (["НЕТ_ОТВЕТА"], "", True),
    (["НЕТ_ОТ"], "", True),  # cut short at the end of the stream
    (["Не", "т."], "Нет.", False),
    (["Нетто-масса 5 кг."], "Нетто-масса 5 кг.", False),
    (["«", "НЕТ_ОТВЕТА", "»"], "", True),
])
def test_no_answer_detector(chunks, spoken, no_answer):
    detector = NoAnswerDetector()
    out = "".join(detector.feed(c) for c in chunks) + detector.finish()
    assert out == spoken and detector.no_answer is no_answer


def passage_lines(request) -> list[str]:
    """The passages a request gave the model, without their numbers."""
    lines = request["messages"][0]["content"].splitlines()
    return [line.split("] ", 1)[1] for line in lines if line.startswith("[") and "] " in line]


def as_lines(passages) -> list[str]:
    """Passages as build_messages writes them for the model."""
    return [f"{p.section + ': ' if p.section else ''}{p.text}" for p in passages]


def ask_turn(question, dialogue, fake_openai, answer):
    """One turn of a call: the model says `answer`; asked with the call's memory, then remembered as the session does."""
    fake_openai.answer = answer
    stream, pieces = ask(question, dialogue)
    dialogue.add(question, " ".join(pieces), stream.query, stream.passages)
    return stream


def test_a_follow_up_reads_the_passages_of_the_turn_before(llm_app, fake_openai):
    dialogue = Dialogue()
    ask_turn("сколько стоит поверка", dialogue, fake_openai, "Поверка разрывной машины стоит от 18 000 рублей.")
    follow_up = ask_turn("а сколько по времени", dialogue, fake_openai, "Примерно неделю.")
    first, second = (passage_lines(r) for r in fake_openai.requests)
    own = as_lines(follow_up.found.context)
    assert second[:len(own)] == own  # its own passages first, best first
    assert set(first) - set(own), "the follow-up found every passage of the turn before: pick another"
    assert set(first) <= set(second)  # then what the model read for the price
    assert len(second) <= MAX_CONTEXT
    assert len(follow_up.passages) == len(second)  # what the turn logs is what the model read


def test_a_new_topic_reads_only_its_own_passages(llm_app, fake_openai):
    dialogue = Dialogue()
    ask_turn("у вас есть разрывные машины", dialogue, fake_openai, "Да, есть разрывные машины.")
    stream = ask_turn("по какому адресу ваш офис", dialogue, fake_openai, "Мы в Екатеринбурге.")
    assert not stream.query.carried
    assert passage_lines(fake_openai.requests[-1]) == as_lines(stream.found.context)


def test_a_follow_up_in_words_the_kb_lacks_reaches_the_model(llm_app, fake_openai):
    """Its own words name nothing of the KB, but it carried the call's topic: the model judges, not the screen."""
    dialogue = Dialogue()
    ask_turn("у вас есть разрывные машины", dialogue, fake_openai, "Да, есть разрывные машины.")
    question = "а в казахстан отправляете"
    found = get_engine().search(question, dialogue.last_query)[0]
    assert plainly_off_topic(found.query, get_engine().current().stats)  # what the lexical screen alone finds
    assert found.query.carried
    stream = ask_turn(question, dialogue, fake_openai, "Да, отправляем транспортной компанией.")
    assert stream.answered and stream.source == "llm" and len(fake_openai.requests) == 2
