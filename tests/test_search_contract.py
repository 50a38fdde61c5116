"""The transcript-search contract, run against every backend.

"sql" (the embedded default) always runs. "elasticsearch" runs against a
real Elasticsearch when ELASTICSEARCH_URL is set, for instance the one
docker-compose.yml starts:

    docker compose up -d elasticsearch
    ELASTICSEARCH_URL=http://localhost:9200 .venv/bin/pytest tests/test_search_contract.py

Each test uses its own index prefix and deletes its indexes afterwards.
"""
from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select

from metrotest_bot.extensions import db
from metrotest_bot.models import Call, SearchOutbox, Turn
from metrotest_bot.search import DateRange, get_index

from .support.admin_data import make_call
from .support.apps import dispose, make_app
from .support.call_log import eventually

ES_URL = os.environ.get("ELASTICSEARCH_URL")
T0 = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)

needs_es = pytest.mark.skipif(not ES_URL, reason="ELASTICSEARCH_URL is not set (see docker-compose.yml)")


@pytest.fixture(params=["sql", pytest.param("elasticsearch", marks=needs_es)])
def backend(request, tmp_path, database_url):
    if request.param == "sql":
        app = make_app(tmp_path / "data", database_url, ELASTICSEARCH_URL=None)
        yield app
        dispose(app)
        return
    prefix = f"mt-contract-{uuid.uuid4().hex[:8]}"
    app = make_app(tmp_path / "data", database_url, ELASTICSEARCH_URL=ES_URL, ELASTICSEARCH_PREFIX=prefix,
                   SEARCH_OUTBOX_RETRY_MAX=0.5)
    index = get_index(app)
    assert index.name == "elasticsearch"
    yield app
    index.outbox.stop()
    # Elasticsearch 8 refuses wildcard deletes by default (action.destructive_requires_name).
    names = list(index.store.es.indices.get(index=f"{prefix}-*", allow_no_indices=True).body)
    if names:
        index.store.es.indices.delete(index=",".join(names))
    dispose(app)


def settle(app) -> None:
    """Wait until what was committed is searchable (Elasticsearch: outbox drained, index refreshed)."""
    index = get_index(app)
    if index.name != "elasticsearch":
        return

    def drained():
        with app.app_context():
            index.outbox.drain()
            return db.session.scalar(select(func.count()).select_from(SearchOutbox)) == 0
    eventually(drained, timeout=30)
    index.store.refresh()


def search(app, q, dates=DateRange(), limit=50, offset=0):
    settle(app)
    with app.app_context():
        page = get_index().search(q, dates, limit, offset)
        assert get_index().name == "sql" or get_index().last_backend == "elasticsearch"
        return page


def test_word_forms_and_every_word(backend):
    kazan = make_call(backend, T0, [("caller", "Вы работаете с Казанью? Нужна доставка пресса.")])
    moscow = make_call(backend, T0 + timedelta(hours=1), [("caller", "Доставка в Москву возможна?")])
    assert search(backend, "казани").call_ids == [kazan]
    assert search(backend, "Казань").call_ids == [kazan]
    assert search(backend, "доставку").call_ids == [moscow, kazan]  # newest first
    assert search(backend, "доставки казань").call_ids == [kazan]
    assert search(backend, "доставка Новосибирск").call_ids == []
    assert search(backend, "и в на").call_ids == []


def test_words_may_come_from_different_turns_of_a_call(backend):
    both = make_call(backend, T0, [("caller", "Доставка есть?"), ("bot", "Да, возим в Пермь и Казань.")])
    make_call(backend, T0 + timedelta(minutes=1), [("caller", "Доставка есть?"), ("bot", "Да.")])
    assert search(backend, "доставку казань").call_ids == [both]


def test_calls_are_found_by_who_called(backend):
    known = make_call(backend, T0, [("caller", "Нужен пресс")], caller="+79123456789",
                      caller_name="Иван Петрович Сидоров", caller_company="ООО Бетонлаб")
    make_call(backend, T0 + timedelta(minutes=1), [("caller", "Нужен пресс")], caller="+73430001122")
    assert search(backend, "сидорова").call_ids == [known]
    assert search(backend, "Ивана Петровича").call_ids == [known]
    assert search(backend, "бетонлаб пресса").call_ids == [known]
    assert search(backend, "+7 (912) 345-67-89").call_ids == [known]
    assert search(backend, "бетонлаб Новосибирск").call_ids == []


def test_dates_are_a_half_open_range(backend):
    early = make_call(backend, T0, [("caller", "Нужна разрывная машина")])
    late = make_call(backend, T0 + timedelta(days=3), [("caller", "Разрывные машины есть в наличии?")])
    assert search(backend, "машина", DateRange(start=T0 + timedelta(days=1))).call_ids == [late]
    assert search(backend, "машина", DateRange(end=T0 + timedelta(days=1))).call_ids == [early]
    assert search(backend, "машина", DateRange(start=T0, end=T0 + timedelta(days=3))).call_ids == [early]


def test_pages_and_export_batches_newest_first(backend):
    ids = [make_call(backend, T0 + timedelta(minutes=i), [("caller", f"Сколько стоит пресс номер {i}?")])
           for i in range(7)]
    newest_first = list(reversed(ids))
    first, second = search(backend, "прессы", limit=4), search(backend, "прессы", limit=4, offset=4)
    assert first.call_ids + second.call_ids == newest_first
    assert first.has_more and not second.has_more
    assert first.total in (7, None)  # a backend may decline to count
    with backend.app_context():
        batches = list(get_index().iter_call_ids("пресс", DateRange(), batch=3))
    assert [len(b) for b in batches] == [3, 3, 1] and sum(batches, []) == newest_first


def test_clear_keeps_only_the_given_calls(backend):
    a = make_call(backend, T0, [("caller", "Вопрос про пресс")])
    b = make_call(backend, T0, [("caller", "Вопрос про пресс")])
    with backend.app_context():
        get_index().clear(keep=[b])
        db.session.execute(Call.__table__.delete().where(Call.id == a))
        db.session.commit()
    assert search(backend, "пресс").call_ids == [b]


def test_reindex_rebuilds_from_sql(backend):
    make_call(backend, T0, [("caller", "Где купить твердомер?")])
    with backend.app_context():
        # Rows written without the ORM bypass every hook; only a rebuild finds them.
        other = db.session.execute(insert(Call).values(started_at=T0, outcome="completed").returning(Call.id)).scalar()
        db.session.execute(insert(Turn).values(call_id=other, seq=0, role="caller", text="Нужен копер маятниковый"))
        db.session.commit()
    assert search(backend, "копра").call_ids == []
    with backend.app_context():
        assert get_index().reindex_all() == 2
    assert search(backend, "копра").call_ids == [other]
    assert len(search(backend, "твердомеры").call_ids) == 1


@pytest.mark.parametrize("backend", [pytest.param("elasticsearch", marks=needs_es)], indirect=True)
def test_elasticsearch_analyzer_folds_russian_word_forms(backend):
    index = get_index(backend)
    make_call(backend, T0, [("caller", "ёлка")])
    settle(backend)

    def tokens(text):
        resp = index.store.es.indices.analyze(index=index.store.calls_alias, analyzer="ru_text", text=text)
        return [t["token"] for t in resp["tokens"]]
    assert tokens("доставка") == tokens("доставку") == tokens("доставки") != []
    assert tokens("Ёлка") == tokens("елки")
    assert tokens("и в на") == []  # stop words
    mapping = index.store.es.indices.get_mapping(index=index.store.turns_alias)
    (props,) = [m["mappings"]["properties"] for m in mapping.body.values()]
    assert props["question"]["fields"]["keyword"]["type"] == "keyword"
    assert props["@timestamp"]["type"] == "date" and props["outcome"]["type"] == "keyword"
