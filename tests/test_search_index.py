"""The transcript index: word forms, written on flush, both query plans, rebuild, clear."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from metrotest_bot.extensions import db
from metrotest_bot.models import Call, Turn
from metrotest_bot.search import DateRange, get_index, highlight, query_terms, snippets
from metrotest_bot.search import sql as sql_index
from metrotest_bot.search.sql import TranscriptTerm

from .support.admin_data import make_call

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)


def terms_of(app, call_id):
    with app.app_context():
        return set(db.session.scalars(select(TranscriptTerm.lemma).where(TranscriptTerm.call_id == call_id)))


def search(app, q, dates=DateRange(), limit=50, offset=0):
    with app.app_context():
        return get_index().search(q, dates, limit, offset)


def test_query_terms_are_lemmas_and_skip_function_words():
    terms = query_terms("В Казани ли вы?")
    assert terms == [frozenset({"казань"})]
    # An ambiguous form keeps every reading: «стали» is both «стать» and «сталь».
    assert {"стать", "сталь"} <= set(query_terms("стали")[0])
    assert query_terms("и в на") == []


def test_turns_are_indexed_when_flushed(app):
    cid = make_call(app, T0, [("caller", "Доставляете ли в Казань?"), ("bot", "Да, доставка по всей России.")])
    assert {"казань", "доставлять", "доставка", "россия"} <= terms_of(app, cid)
    assert "в" not in terms_of(app, cid) and "ли" not in terms_of(app, cid)

    # An interrupted answer updated later: what was heard gets indexed too.
    with app.app_context():
        turn = db.session.scalar(select(Turn).where(Turn.call_id == cid, Turn.seq == 1))
        turn.spoken_text = "Да, доставка по всей России и в Екатеринбург"
        db.session.commit()
    assert "екатеринбург" in terms_of(app, cid)


def test_search_finds_other_word_forms_and_needs_every_word(app):
    kazan = make_call(app, T0, [("caller", "Вы работаете с Казанью? Нужна доставка пресса.")])
    moscow = make_call(app, T0 + timedelta(hours=1), [("caller", "Доставка в Москву возможна?")])
    assert search(app, "казани").call_ids == [kazan]
    assert search(app, "Казань").call_ids == [kazan]
    assert search(app, "доставку").call_ids == [moscow, kazan]  # newest first
    assert search(app, "доставки казань").call_ids == [kazan]
    assert search(app, "доставка Новосибирск").call_ids == []
    assert search(app, "и в на").call_ids == []


def test_search_respects_dates(app):
    early = make_call(app, T0, [("caller", "Нужна разрывная машина")])
    late = make_call(app, T0 + timedelta(days=3), [("caller", "Разрывные машины есть в наличии?")])
    assert search(app, "машина", DateRange(start=T0 + timedelta(days=1))).call_ids == [late]
    assert search(app, "машина", DateRange(end=T0 + timedelta(days=1))).call_ids == [early]


@pytest.fixture
def many_calls(app):
    """12 calls: all say «пресс», every third «Казань», call 5 also «Пермь»."""
    ids = []
    for i in range(12):
        words = "Сколько стоит пресс" + (" с доставкой в Казань" if i % 3 == 0 else "") + (" и в Пермь" if i == 5 else "")
        ids.append(make_call(app, T0 + timedelta(minutes=i), [("caller", words), ("bot", "Уточните модель.")]))
    return list(reversed(ids))  # newest first


@pytest.mark.parametrize("dense", [2000, 3], ids=["rare-word plan", "common-words plan"])
def test_both_query_plans_agree(app, many_calls, monkeypatch, dense):
    monkeypatch.setattr(sql_index, "DENSE", dense)
    kazan = [cid for i, cid in enumerate(many_calls) if (11 - i) % 3 == 0]
    pages = [search(app, "пресс казани", limit=2, offset=o) for o in (0, 2)]
    assert pages[0].call_ids + pages[1].call_ids == kazan
    assert pages[0].has_more and not pages[1].has_more
    if dense == 3:
        assert pages[0].total is None  # counting would be a scan
    else:
        assert pages[0].total == 4
    assert search(app, "прессы").call_ids == many_calls[:50]
    assert search(app, "пермь пресс").call_ids == [many_calls[11 - 5]]
    with app.app_context():
        batches = list(get_index().iter_call_ids("пресс", DateRange(), batch=5))
    assert [len(b) for b in batches] == [5, 5, 2]
    assert sum(batches, []) == many_calls


def test_reindex_rebuilds_from_sql_including_rows_written_without_the_orm(app):
    cid = make_call(app, T0, [("caller", "Где купить твердомер?")])
    with app.app_context():
        other = db.session.execute(insert(Call).values(started_at=T0, outcome="completed").returning(Call.id)).scalar()
        db.session.execute(insert(Turn).values(call_id=other, seq=0, role="caller", text="Нужен копер маятниковый"))
        db.session.commit()
    assert search(app, "копра").call_ids == []  # core inserts bypass the flush hook
    before = terms_of(app, cid)
    with app.app_context():
        assert get_index().reindex_all() == 2
    assert terms_of(app, cid) == before
    assert search(app, "копра").call_ids == [other]


def test_reindex_command(app):
    make_call(app, T0, [("caller", "Интересует твердомер")])
    result = app.test_cli_runner().invoke(args=["reindex-transcripts"])
    assert result.exit_code == 0, result.output
    assert "1 звонков" in result.output
    assert search(app, "твердомеры").total == 1


def test_clear_keeps_only_the_given_calls(app):
    a = make_call(app, T0, [("caller", "Вопрос про пресс")])
    b = make_call(app, T0, [("caller", "Вопрос про пресс")])
    with app.app_context():
        get_index().clear(keep=[b])
        db.session.commit()
    assert terms_of(app, a) == set() and terms_of(app, b)
    assert search(app, "пресс").call_ids == [b]


def test_highlight_and_snippets_match_by_lemma(app):
    cid = make_call(app, T0, [("bot", "Здравствуйте!"), ("caller", "Есть ли доставка <b>в</b> Казань и в Пермь?")])
    html = str(highlight("Едем в Казань, потом в казани обедаем", query_terms("казанью")))
    assert html.count("<mark>") == 2 and "<mark>Казань</mark>" in html and "<mark>казани</mark>" in html
    with app.app_context():
        snip = snippets("казани пермью", [cid])[cid]
    assert snip.role == "caller" and snip.seq == 1
    assert "<mark>Казань</mark>" in snip.html and "<mark>Пермь</mark>" in snip.html
    assert "&lt;b&gt;" in snip.html  # the text is escaped, only the marks are HTML


def test_an_index_failure_never_loses_a_turn(app, monkeypatch, caplog):
    def broken(conn, rows):
        raise __import__("sqlalchemy").exc.OperationalError("INSERT", {}, Exception("disk full"))

    monkeypatch.setattr(sql_index, "_insert_ignoring_duplicates", broken)
    cid = make_call(app, T0, [("caller", "Важный вопрос про пресс")])
    with app.app_context():
        assert db.session.scalar(select(Turn.text).where(Turn.call_id == cid)) == "Важный вопрос про пресс"
    assert "not indexed" in caplog.text
    monkeypatch.undo()
    with app.app_context():
        get_index().reindex_all()
    assert search(app, "прессы").call_ids == [cid]
