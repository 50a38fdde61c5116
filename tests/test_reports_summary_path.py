"""The post-call summary written without ORM objects when nothing but the summary is needed (issue
#16: loading the call and its turns cost more than the rest of a call's end), byte-identical to the
summary built from the ORM objects, which the webhook and the CRM note still read."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from metrotest_bot.extensions import db
from metrotest_bot.models import Call, Turn
from metrotest_bot.reports import finalize_call, llm_summary
from metrotest_bot.reports.summary import call_summary

from .support.admin_data import make_call

LONG = "Скажите, пожалуйста, какие документы нужны для того, чтобы оформить заказ на поставку пресса с доставкой"
TURNS = [
    {"role": "bot", "kind": "greeting", "text": "Здравствуйте!", "question": "не вопрос"},
    ("caller", "Сколько стоит доставка?"),
    {"role": "bot", "text": "1 500 рублей.", "question": "Сколько стоит\n  доставка?", "answered": True},
    {"role": "bot", "text": "Нет ответа.", "question": "Какая погода на Марсе?", "answered": False},
    {"role": "bot", "text": "Пресс…", "question": LONG, "answered": True, "interrupted": True},
    {"role": "bot", "text": "", "question": "Где вы?", "answered": None},
    {"role": "bot", "text": "Пусто", "question": "   ", "answered": True},
    {"role": "bot", "text": "Да.", "question": "Гарантия есть?", "answered": True},
    {"role": "bot", "text": "Да.", "question": "А сервис?", "answered": True},
    {"role": "bot", "text": "Нет.", "question": "Скидки?", "answered": False},
    {"role": "bot", "kind": "transfer", "text": "Соединяю.", "question": "Оператор"},
]


def orm_summary(app, cid) -> str:
    """The summary as built from the ORM objects (the path the webhook and CRM note take)."""
    with app.app_context():
        call = db.session.get(Call, cid)
        turns = db.session.scalars(select(Turn).where(Turn.call_id == cid).order_by(Turn.seq, Turn.id)).all()
        return call_summary(call.outcome, turns)


def finish(app, cid):
    with app.app_context():
        queued = finalize_call(db.session, cid, app.config)
        loaded = len(db.session.identity_map)
        db.session.commit()
        call = db.session.get(Call, cid)
        return queued, loaded, call.summary, call.summary_source


@pytest.mark.parametrize("turns", [TURNS, [], TURNS[:2]], ids=["many", "none", "unasked"])
def test_the_summary_alone_is_written_without_orm_objects_and_byte_identical(app, turns):
    cid = make_call(app, turns=turns, outcome="transferred")
    queued, loaded, summary, source = finish(app, cid)
    assert (queued, source) == (False, llm_summary.EXTRACTIVE)
    assert loaded == 0  # no Call, no Turn loaded into the session
    assert summary == orm_summary(app, cid)
    if turns is TURNS:
        assert summary.startswith("Вопросы (7): «Сколько стоит доставка?» — ответ дан; ")
        assert "и ещё 2" in summary and "Оператор" not in summary and "не вопрос" not in summary


def test_a_missing_call_gets_nothing(app):
    with app.app_context():
        assert finalize_call(db.session, 987654, app.config) is False


def test_with_the_llm_summary_the_call_waits_for_the_model(tmp_path, database_url):
    from .support.apps import dispose, make_app

    app = make_app(tmp_path / "llm", database_url, OPENAI_API_KEY="sk-test", CALL_SUMMARY_LLM=True)
    try:
        cid = make_call(app, turns=TURNS)
        queued, loaded, summary, source = finish(app, cid)
        assert (queued, loaded, source) == (True, 0, llm_summary.PENDING)
        assert summary == orm_summary(app, cid)
    finally:
        llm_summary.summarizer(app).stop()
        dispose(app)
