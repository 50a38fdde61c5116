"""A call has a memory: follow-ups are resolved against the previous question, offline too."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.rag import get_engine
from metrotest_bot.rag.dialogue import Dialogue
from metrotest_bot.rag.query import analyze_question, is_followup, resolve

ROOT = Path(__file__).resolve().parents[1]


def converse(questions):
    dialogue, answers = Dialogue(), []
    for q in questions:
        stream = get_engine().answer(q, BotSettings(), dialogue=dialogue)
        text = stream.text()
        dialogue.add(q, text, stream.query)
        answers.append((stream, text))
    return answers


def test_a_pronoun_follow_up_gets_the_previous_subject(app):
    with app.app_context():
        (_, first), (stream, text) = converse(["расскажите про разрывные машины", "а сколько она стоит"])
        assert "РМ" in first
        assert stream.answered and "1 250 000" in text and "920 000" not in text and "18 000" not in text


def test_a_follow_up_with_only_adverbs_of_its_own_is_about_the_calls_topic(app):
    """«потом» names no topic and «его» points back: the question is about the press just asked about.
    It used to be screened out as off-topic («потом» taken for a noun the KB never uses). Whether the gate
    then answers is the model's call on this small sample KB (measured in bench/, not pinned here); among
    the passages it judges is the press's verification price."""
    with app.app_context():
        _, (stream, text) = converse(["сколько стоит пресс пи две тысячи", "а поверить его потом сколько будет стоить"])
        assert not stream.found.off_topic
        assert any("12 000" in p.text for p in stream.passages[:3])
        assert not stream.answered or ("12 000" in text and "920 000" not in text)


def test_a_follow_ups_reply_does_not_say_again_a_sentence_just_heard(app):
    """After «Цена пресса ПИ-2000 — …» the verification follow-up's best sentence holds the verification
    price; the press's price, just heard and holding none of the follow-up's own words, is not said again."""
    from metrotest_bot.rag import offline

    with app.app_context():
        engine = get_engine()
        first, _ = engine.search("сколько стоит пресс пи две тысячи", None)
        heard = offline.compose(first.query, first.passages, engine.current().stats)
        assert "920 000" in heard
        found, _ = engine.search("а поверить его потом сколько будет стоить", first.query)
        again = offline.compose(found.query, found.passages, engine.current().stats)
        reply = offline.compose(found.query, found.passages, engine.current().stats, heard=heard)
        assert "12 000" in again and "920 000" in again  # the sentence model's second pick, without the memory
        assert "12 000" in reply and "920 000" not in reply


def test_a_word_pointing_back_is_no_topic_of_its_own():
    """«туда» stands for the place just talked about (carried in by resolve), not for a word to find."""
    query = analyze_question("а сколько туда едет")
    assert [s.lemmas[0] for s in query.slots] == ["ехать"] and query.leans_back


def test_an_interjection_is_no_topic():
    """«слушайте» (pymorphy: an interjection, its own lemma) is how the caller talks, not what about."""
    assert [s.lemmas[0] for s in analyze_question("слушайте а на копёр гарантия какая").slots] == ["копер", "гарантия"]


def test_without_the_memory_the_same_follow_up_is_not_about_the_machine(app):
    """The test above would pass by luck if the bare question already found the machine's price
    as its best sentence (a second, weaker sentence may be any price of the KB)."""
    with app.app_context():
        text = get_engine().answer("а сколько она стоит", BotSettings()).text()
        assert "1 250 000" not in text.split(". ")[0]


def test_a_new_topic_resets_the_memory(app):
    with app.app_context():
        _, (stream, text) = converse(["сколько стоит пресс ПИ-2000", "какая гарантия на оборудование"])
        assert "24 месяца" in text and "920 000" not in text


def test_a_code_named_in_the_follow_up_replaces_the_carried_one():
    first = resolve(analyze_question("сколько стоит ПИ-2000"), None)
    follow = resolve(analyze_question("а ПИ-3000?"), first)
    lemmas = {t for s in follow.slots for t in s.lemmas}
    assert "пи-3000" in lemmas and "пи-2000" not in lemmas
    assert follow.asks_price  # the kind of fact asked carries over


@pytest.mark.parametrize("question, followup", [
    ("а сколько такой стоит", True),
    ("а гарантия на него какая", True),
    ("а по срокам", True),
    ("какая гарантия на пресс", False),
    ("где вы находитесь", False),
])
def test_what_counts_as_a_follow_up(question, followup):
    assert is_followup(analyze_question(question)) is followup


def test_flask_ask_dialogue(tmp_path):
    env = {"DATA_DIR": str(tmp_path), "FLASK_APP": "wsgi:app", "HAYSTACK_TELEMETRY_ENABLED": "False",
           "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "flask", "ask", "--json", "--dialogue"], cwd=ROOT, env=env,
                         input="расскажите про разрывные машины\nа сколько она стоит\n", capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["question"] for line in lines] == ["расскажите про разрывные машины", "а сколько она стоит"]
    assert "1 250 000" in lines[1]["answer"] and lines[1]["answered"]


def test_a_follow_ups_context_adds_the_last_turns_passages_once_and_is_bounded():
    from types import SimpleNamespace

    from metrotest_bot.rag.dialogue import MAX_CONTEXT
    from metrotest_bot.rag.types import Passage

    def passages(ids):
        return [Passage(id=str(i), text=f"t{i}", section="", score=0.0) for i in ids]

    dialogue = Dialogue()
    assert dialogue.context(SimpleNamespace(carried=True), passages([1])) == passages([1])  # nothing before
    dialogue.add("q", "a", None, passages(range(10, 30)))
    own = passages([1, 2, 10])
    follow_up = dialogue.context(SimpleNamespace(carried=True), own)
    assert [p.id for p in follow_up] == ["1", "2", "10"] + [str(i) for i in range(11, 11 + MAX_CONTEXT - 3)]
    assert dialogue.context(SimpleNamespace(carried=False), own) == own  # a new topic: its own only
    many = passages(range(100, 100 + MAX_CONTEXT + 2))
    assert dialogue.context(SimpleNamespace(carried=True), many) == many  # never fewer than its own
