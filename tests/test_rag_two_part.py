"""A two-part question is asked as two (issue #11: «a two-part question gets both parts»)."""
import pytest

from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.rag import get_engine
from metrotest_bot.rag.found import join_replies, question_parts
from metrotest_bot.rag.offline import focus_list_item
from metrotest_bot.rag.query import analyze_question
from tests.support.apps import llm_app_context


@pytest.mark.parametrize("question, parts", [
    ("разрывная машина рм пятьдесят на какую нагрузку и сколько она стоит",
     ["разрывная машина рм пятьдесят на какую нагрузку", "сколько она стоит"]),
    ("где вы находитесь и как до вас доехать", ["где вы находитесь", "как до вас доехать"]),
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


@pytest.mark.parametrize("question", [
    "а он ещё есть в наличии",  # «ещё» as an adverb is no join
    "у вас пресс пи две тысячи ещё есть в наличии",
    # four questions in one breath: asked whole (each part would be a pipeline run)
    "сколько стоит пресс и где вы и когда работаете и какая гарантия",
])
def test_no_split_for_an_adverb_or_a_run_on(question):
    assert question_parts(question) == [question]


def test_the_whole_questions_reply_leads_and_no_sentence_is_said_twice():
    assert join_replies("Доставка 5–7 дней. Оплата 50 процентов.", ["Оплата 50 процентов. Гарантия 24 месяца.", ""]) \
        == "Доставка 5–7 дней. Оплата 50 процентов. Гарантия 24 месяца."
    assert join_replies("", ["Цена 920 000 рублей.", "Отгрузка за 5 дней."]) == "Цена 920 000 рублей. Отгрузка за 5 дней."


REGIONS = ("Выезд инженера по Свердловской области — в течение 3 рабочих дней после заявки, "
           "в другие регионы — в течение 10 рабочих дней.")
PRICES = "Цены: ПИ-500 — от 640 000 рублей, ПИ-1000 — от 780 000 рублей, ПИ-2000 — от 920 000 рублей с НДС."


@pytest.mark.parametrize("sentence, question, spoken", [
    # the caller's place is in no item, and the list has a catch-all: the whole list is said
    (REGIONS, "мы в перми через сколько инженер приедет", REGIONS),
    (REGIONS, "инженер по свердловской области через сколько приедет",
     "Выезд инженера по Свердловской области — в течение 3 рабочих дней после заявки."),
    # a place named beside a model code does not stop the cut to that model
    (PRICES, "мы из перми сколько стоит пресс пи две тысячи", "Цены: ПИ-2000 — от 920 000 рублей с НДС."),
])
def test_a_list_is_cut_to_the_callers_item(sentence, question, spoken):
    assert focus_list_item(sentence, analyze_question(question)) == spoken
