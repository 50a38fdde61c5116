"""The kinds of fact a question asks for come from the learned model (rag/intent.py), and follow-ups
that only name another place or code keep the kind asked before."""
import json

import pytest

from metrotest_bot.rag import intent
from metrotest_bot.rag.analysis import M_ADDRESS, M_EMAIL, M_HOURS, M_PRICE, M_TERM
from metrotest_bot.rag.query import analyze_question, resolve


@pytest.mark.parametrize("question,kind", [
    ("а изготавливать её сколько", M_TERM),  # no «срок», no «дней»: the patterns it replaced missed these
    ("через сколько приедет инженер", M_TERM),
    ("почём у вас этот пресс", M_PRICE),
    ("во сколько вы открываетесь", M_HOURS),
    ("где вы находитесь", M_ADDRESS),
    ("куда прислать реквизиты на почту", M_EMAIL),
])
def test_the_shipped_model_finds_the_kind_asked(question, kind):
    assert kind in analyze_question(question).markers


@pytest.mark.parametrize("question", ["есть ли у вас пресс для бетона", "а погода завтра какая"])
def test_a_question_asking_no_kind_of_fact_gets_none(question):
    assert analyze_question(question).markers == []


def test_a_price_question_asks_for_a_price():
    assert analyze_question("почём у вас этот пресс").asks_price
    assert not analyze_question("есть ли у вас пресс для бетона").asks_price


def test_numbers_and_codes_are_read_as_placeholders():
    # the model learns how callers ask, not which items one KB sells
    assert intent.features("сколько стоит ПИ-2000") == intent.features("сколько стоит КМ-300")
    assert intent.features("пресс на пятьсот килоньютон") == intent.features("пресс на тысячу килоньютон")


def test_a_model_reads_its_weights(tmp_path):
    (price_word,) = intent.features("почём")  # its lemma, as the model reads it
    data = {"kinds": [M_PRICE, M_TERM], "intercepts": [-2.0, -2.0], "threshold": 0.5,
            "weights": {price_word: [4.0, -1.0], "b:как_долго": [0.0, 5.0]}}
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    model = intent.load_intents(str(path))
    assert model.kinds_asked("почём") == [M_PRICE]
    assert model.kinds_asked("как долго ждать") == [M_TERM]
    assert model.kinds_asked("здравствуйте") == []
    assert model.probabilities("почём")[M_PRICE] == pytest.approx(1 / (1 + 2.718281828459045 ** -2.0))


def test_training_labels_come_from_the_answer_sentence():
    from bench.train_intent import answer_sentences

    kb = "Цены: ПИ-500 — от 640 000 рублей. Срок поставки — 5 рабочих дней.\nАдрес: ул. Испытателей, д. 12."
    assert answer_sentences("ПИ-500 — от 640 000", kb) == ["Цены: ПИ-500 — от 640 000 рублей."]
    assert answer_sentences("5 рабочих", kb) == ["Срок поставки — 5 рабочих дней."]
    assert answer_sentences("нет такого", kb) == ["нет такого"]


def test_fitting_learns_a_kind_from_labelled_questions(monkeypatch, tmp_path):
    pytest.importorskip("sklearn")
    import bench.train_intent as ti

    kb = tmp_path / "kb.txt"
    kb.write_text("Пресс стоит 100 рублей. Доставка идёт 5 дней. Машина стоит 200 рублей. Ремонт длится 3 дня.",
                  encoding="utf-8")
    monkeypatch.setattr(ti.r, "KB", kb)
    questions = [{"question": q, "answerable": True, "any_of": [a], "set": "s"} for q, a in [
        ("почём пресс", "100 рублей"), ("сколько стоит машина", "200 рублей"), ("почём машина", "200 рублей"),
        ("как долго доставка", "5 дней"), ("сколько дней ремонт", "3 дня"), ("как долго ремонт", "3 дня")]]
    model = intent.IntentModel.from_dict(ti.fit(questions))
    assert M_PRICE in model.kinds_asked("почём ремонт")
    assert M_TERM in model.kinds_asked("как долго машина")
    assert M_PRICE not in model.kinds_asked("как долго машина")


def test_a_follow_up_naming_another_place_asks_the_same_about_it():
    previous = analyze_question("доставка в новосибирск сколько идёт")
    follow_up = resolve(analyze_question("а во владивосток"), previous)
    assert follow_up.markers == previous.markers == [M_TERM]
    said = {s.lemmas[0]: s.weight for s in follow_up.slots}
    assert said["владивосток"] == said["доставка"] == 1.0  # the topic carried in full, as its subject
    assert "новосибирск" not in said  # the place named now replaces the one before
    assert [s.lemmas[0] for s in follow_up.topic] == ["доставка", "владивосток"]


def test_a_place_said_with_a_verb_is_a_question_of_its_own():
    previous = analyze_question("сколько стоит уим пятьдесят")
    follow_up = resolve(analyze_question("а в москве её можно посмотреть"), previous)
    assert M_PRICE not in follow_up.markers
    said = {s.lemmas[0]: s.weight for s in follow_up.slots}
    assert said["москва"] == 1.0 and said["уим"] < 1.0
