"""A two-part question is asked as two (issue #11: «a two-part question gets both parts»)."""
import pytest

from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.rag import get_engine
from metrotest_bot.rag.found import question_parts
from tests.support.apps import llm_app_context


@pytest.mark.parametrize("question, parts", [
    ("разрывная машина рм пятьдесят на какую нагрузку и сколько она стоит",
     ["разрывная машина рм пятьдесят на какую нагрузку", "сколько она стоит"]),
    ("где вы находитесь и как до вас доехать", ["где вы находитесь", "как до вас доехать"]),
    ("сколько стоит пресс ещё где вы находитесь", ["сколько стоит пресс", "где вы находитесь"]),
])
def test_a_join_before_a_question_word_splits(question, parts):
    assert question_parts(question) == parts


@pytest.mark.parametrize("question", [
    "пресс пэ и две тысячи сколько стоит",  # «пэ и» spells ПИ: a letter, not a join
    "сколько стоит пресс и кубы",  # no question word after «и»
    "и сколько стоит",  # nothing before the join
    "сколько стоит пресс",
])
def test_one_question_stays_whole(question):
    assert question_parts(question) == [question]


@pytest.mark.parametrize("question, facts", [
    # the load's passage and the price's each hold half of the question: the gate refused it whole
    ("разрывная машина рм пятьдесят на какую нагрузку и сколько она стоит", ["50 кН", "1 250 000"]),
    # whole, the price sentence alone was spoken
    ("пресс пи две тысячи почём и как быстро отгрузите", ["920 000", "5 рабочих дней"]),
])
def test_both_parts_are_answered_offline(app, question, facts):
    with app.app_context():
        stream = get_engine().answer(question, BotSettings())
        text = stream.text()
    assert stream.answered
    assert all(fact in text for fact in facts), text


def test_the_model_reads_each_parts_best_passage_first(tmp_path, database_url, fake_openai):
    fake_openai.answer = "ПИ-2000 стоит от 920 000 рублей, гарантия 24 месяца."
    with llm_app_context(tmp_path / "data", database_url, fake_openai) as app, app.app_context():
        stream = get_engine().answer("пресс пи две тысячи почём и какая гарантия", BotSettings())
        list(stream)
    assert stream.answered and stream.source == "llm"
    system = fake_openai.requests[-1]["messages"][0]["content"]
    first_two = "\n".join(line for line in system.splitlines() if line.startswith(("[1]", "[2]")))
    # whole, the warranty's passage came after the verification prices'
    assert "920 000" in first_two and "24 месяца" in first_two
