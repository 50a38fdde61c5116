"""Call transcripts reach Elasticsearch after commit, and survive its outages.

Elasticsearch is the local fake (tests/support/fake_elasticsearch.py) at the
network boundary: the official client talks HTTP to it, and it can answer
503 or refuse connections. Calls are written through the call log's own code
(voice.calllog.CallLog), or over the real call WebSocket of a gunicorn server.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import delete, func, select

from metrotest_bot.extensions import db
from metrotest_bot.models import Call, SearchOutbox, Turn
from metrotest_bot.search import DateRange, get_index
from metrotest_bot.search.documents import ES_ERRORS
from metrotest_bot.voice.calllog import BotTurn, CallLog

from .support.admin_data import make_admin, sign_in
from .support.apps import dispose, make_app
from .support.call_log import call_snapshot, eventually, finished_call
from .support.fake_elasticsearch import elastic_app, stop_elastic_app
from .support.ws_client import CallClient

PREFIX = "mt"
TURNS, CALLS = f"{PREFIX}-turns", f"{PREFIX}-calls"
QUESTION = "Сколько стоит доставка в Казань?"
REFUSAL = "К сожалению, у меня нет точного ответа."


@pytest.fixture
def app(es_app):
    return es_app


def log_call(app, vox_call_id="vox-1", outcome="completed") -> int:
    """A call as the call WebSocket writes it: caller turn, a refusal interrupted mid-way, the end."""
    log = CallLog(app)
    log.start(vox_call_id=vox_call_id, vox_session_id="s-1", caller="+79120000000", dialled="+73430000000",
              caller_name="Иван Петров", caller_company="ООО «Прочность»")
    log.caller_turn(QUESTION, seq=log.next_seq())
    bot = BotTurn(kind="answer", answer_id="a-1", text=REFUSAL, question=QUESTION, planned_text=REFUSAL,
                  answered=False, source="refusal", seq=log.next_seq(), first_piece_ms=120.0)
    log.save_bot_turn(bot)
    bot.interrupted, bot.spoken_text = True, "К сожалению,"
    log.save_bot_turn(bot)
    log.finish(outcome)
    assert log.flush() and log.call_id is not None
    return log.call_id


def pending(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(SearchOutbox))


def sql_turn_ids(app, call_id) -> set[str]:
    with app.app_context():
        return {str(i) for i in db.session.scalars(select(Turn.id).where(Turn.call_id == call_id))}


def indexed(fake, app, call_id, outcome="completed"):
    """The call's documents once every turn is indexed with the call's final fields, and nothing is pending."""
    turns = {k: v for k, v in fake.docs(TURNS).items() if v["call_id"] == call_id}
    call = fake.docs(CALLS).get(str(call_id))
    if (set(turns) == sql_turn_ids(app, call_id) and call and call["outcome"] == outcome
            and all(t["outcome"] == outcome for t in turns.values()) and pending(app) == 0):
        return call, turns
    return None


def test_a_logged_call_is_indexed_after_commit_with_its_fields(app, fake_elasticsearch):
    call_id = log_call(app)
    call_doc, turns = eventually(lambda: indexed(fake_elasticsearch, app, call_id))

    bot = next(t for t in turns.values() if t["role"] == "bot")
    caller = next(t for t in turns.values() if t["role"] == "caller")
    assert caller["text"] == QUESTION
    # The update at the end of the answer and the call's end both reached the index.
    assert bot["interrupted"] is True and bot["answered"] is False and bot["source"] == "refusal"
    assert bot["question"] == QUESTION and bot["first_piece_ms"] == 120.0
    for doc in turns.values():
        assert doc["vox_call_id"] == "vox-1" and doc["caller"] == "+79120000000"
        assert doc["caller_name"] == "Иван Петров" and doc["caller_company"] == "ООО «Прочность»"
        assert doc["duration_s"] is not None and doc["ended_at"] and doc["started_at"]
        assert doc["@timestamp"].endswith("Z")
    assert QUESTION in call_doc["transcript"] and REFUSAL in call_doc["transcript"]
    assert call_doc["unanswered_questions"] == [QUESTION]
    assert call_doc["n_turns"] == 2 and call_doc["n_interrupted"] == 1 and call_doc["n_unanswered"] == 1


def test_indexes_are_created_behind_aliases_with_a_russian_analyzer(app, fake_elasticsearch):
    log_call(app)
    eventually(lambda: fake_elasticsearch.docs(TURNS))
    for alias in (TURNS, CALLS):
        (index,) = fake_elasticsearch.resolve(alias)
        assert index != alias and fake_elasticsearch.aliases(index) == {alias}
        spec = fake_elasticsearch.indices[index]
        analysis = spec["settings"]["analysis"]
        assert analysis["filter"]["ru_stemmer"] == {"type": "stemmer", "language": "russian"}
        assert analysis["filter"]["ru_stop"]["stopwords"] == "_russian_"
        props = spec["mappings"]["properties"]
        assert props["@timestamp"]["type"] == "date" and props["started_at"]["type"] == "date"
        assert props["outcome"] == {"type": "keyword"} and props["caller"] == {"type": "keyword"}
    turn_props = fake_elasticsearch.indices[fake_elasticsearch.resolve(TURNS)[0]]["mappings"]["properties"]
    assert turn_props["text"]["analyzer"] == "ru_text"
    assert turn_props["question"]["fields"]["keyword"]["type"] == "keyword"  # "top unanswered questions"


@pytest.mark.parametrize("outage", ["unavailable", "refuse"])
def test_call_logged_while_elasticsearch_is_down_is_indexed_once_it_is_back(
        app, fake_elasticsearch, outage):
    fake_elasticsearch.set_mode(outage)
    call_id = log_call(app, outcome="transferred")

    # SQL has the whole call; the changes wait in the outbox.
    with app.app_context():
        call = db.session.get(Call, call_id)
        assert call.outcome == "transferred" and len(call.turns) == 2
    index = get_index(app)
    eventually(lambda: index.outbox.last_error)  # the drainer tried and failed
    assert pending(app) > 0 and not fake_elasticsearch.docs(TURNS)

    # The admin panel keeps working: its search answers from SQL.
    make_admin(app)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    page = client.get("/logs-ui/?q=казани")
    assert page.status_code == 200 and f"/logs-ui/calls/{call_id}" in page.get_data(as_text=True)
    assert index.last_backend == "sql"
    assert client.get(f"/logs-ui/calls/{call_id}").status_code == 200

    fake_elasticsearch.set_mode("ok")
    eventually(lambda: indexed(fake_elasticsearch, app, call_id, outcome="transferred"))
    eventually(lambda: index.outbox.last_error is None)  # set just after the rows are deleted

    # And search goes back to Elasticsearch once its retry pause is over.
    def searched_by_es():
        with app.app_context():
            page = index.search("казань", DateRange(), 10, 0)
        return index.last_backend == "elasticsearch" and page.call_ids == [call_id]
    eventually(searched_by_es)


def test_live_call_over_the_websocket_while_elasticsearch_refuses(
        tmp_path, live_server_factory, fake_elasticsearch):
    """The real thing: gunicorn's gevent worker, a call over the WebSocket, Elasticsearch down."""
    fake_elasticsearch.set_mode("refuse")
    server = live_server_factory(ELASTICSEARCH_URL=fake_elasticsearch.url, ELASTICSEARCH_PREFIX=PREFIX,
                                 ELASTICSEARCH_TIMEOUT=2, SEARCH_OUTBOX_RETRY_MAX=0.3, SEARCH_OUTBOX_POLL=0.5)
    call = CallClient.connect(server)
    try:
        greeting = call.setup()
        assert greeting["type"] == "text" and greeting["answerId"] == "greeting"
        if not greeting.get("last"):
            call.answer()
        frames = call.ask(QUESTION)  # with the KB's Elasticsearch down too, the bot still answers (a refusal)
        assert frames and frames[-1].get("last")
        call.hangup()
    finally:
        call.close()
    snap = finished_call(server, call.call_id)
    assert any(t.role == "caller" and t.text == QUESTION for t in snap.turns)
    assert pending(server.app) > 0 and not fake_elasticsearch.docs(TURNS)

    # The admin panel (another process on the same database) keeps working and searches SQL.
    admin = elastic_app(server.data_dir, server.database_url, fake_elasticsearch.url)
    try:
        make_admin(admin)
        client = admin.test_client()
        assert sign_in(client).status_code == 302
        page = client.get("/logs-ui/?q=доставки")
        assert page.status_code == 200 and f"/logs-ui/calls/{snap.id}" in page.get_data(as_text=True)
        assert get_index(admin).last_backend == "sql"

        fake_elasticsearch.set_mode("ok")
        call_doc, turns = eventually(lambda: indexed(fake_elasticsearch, server.app, snap.id, snap.outcome), 20)
        assert call_doc["vox_call_id"] == call.call_id and QUESTION in call_doc["transcript"]
        assert len(turns) == len(snap.turns)
    finally:
        stop_elastic_app(admin)


def test_two_workers_index_every_call_once(live_server_factory, fake_elasticsearch):
    """Two gunicorn workers, each with its drainer: every call ends up indexed with its final fields."""
    server = live_server_factory(workers=2, ELASTICSEARCH_URL=fake_elasticsearch.url, ELASTICSEARCH_PREFIX=PREFIX,
                                 SEARCH_OUTBOX_RETRY_MAX=0.3, SEARCH_OUTBOX_POLL=0.5)
    calls = [CallClient.connect(server) for _ in range(4)]  # the kernel spreads them over both workers
    try:
        for call in calls:
            call.setup()
        for call in calls:
            call.hangup()
    finally:
        for call in calls:
            call.close()
    snaps = [finished_call(server, call.call_id) for call in calls]
    for snap in snaps:
        eventually(lambda: indexed(fake_elasticsearch, server.app, snap.id, snap.outcome), 20)
    assert len(fake_elasticsearch.docs(CALLS)) == 4
    created = [p for m, p in fake_elasticsearch.requests if m == "PUT" and re.fullmatch(rf"/{CALLS}-v\d+", p)]
    assert len(created) == 1  # built once, not by each worker


def test_clearing_the_log_removes_documents_but_keeps_live_calls(app, fake_elasticsearch):
    from metrotest_bot.admin.clear import clear_log

    done = log_call(app, "vox-done")
    eventually(lambda: indexed(fake_elasticsearch, app, done))
    live = CallLog(app)
    live.start(vox_call_id="vox-live", vox_session_id=None, caller="+7", dialled="+7")
    live.caller_turn("Алло, доставка есть?", seq=live.next_seq())
    assert live.flush()
    eventually(lambda: str(live.call_id) in fake_elasticsearch.docs(CALLS) and pending(app) == 0)

    with app.app_context():
        clear_log("admin")
    eventually(lambda: set(fake_elasticsearch.docs(CALLS)) == {str(live.call_id)} and pending(app) == 0)
    assert {d["call_id"] for d in fake_elasticsearch.docs(TURNS).values()} == {live.call_id}


def test_deleted_turns_and_calls_leave_the_index(app, fake_elasticsearch):
    first, second = log_call(app, "vox-a"), log_call(app, "vox-b")
    eventually(lambda: indexed(fake_elasticsearch, app, first) and indexed(fake_elasticsearch, app, second))
    with app.app_context():
        turn = db.session.scalars(select(Turn).where(Turn.call_id == first, Turn.role == "bot")).one()
        db.session.delete(turn)  # ORM delete of a single turn
        db.session.commit()
        db.session.execute(delete(Turn).where(Turn.call_id == second))  # bulk deletes
        db.session.execute(delete(Call).where(Call.id == second))
        db.session.commit()
    eventually(lambda: pending(app) == 0 and str(second) not in fake_elasticsearch.docs(CALLS))
    left = fake_elasticsearch.docs(TURNS)
    assert {d["call_id"] for d in left.values()} == {first} and len(left) == 1
    assert fake_elasticsearch.docs(CALLS)[str(first)]["transcript"] == QUESTION


def test_an_index_deleted_by_hand_is_created_again(app, fake_elasticsearch):
    call_id = log_call(app)
    eventually(lambda: indexed(fake_elasticsearch, app, call_id))
    for index in fake_elasticsearch.resolve(f"{TURNS},{CALLS}"):
        del fake_elasticsearch.indices[index]
    with app.app_context():
        db.session.get(Call, call_id).caller_name = "Пётр Иванов"
        db.session.commit()
    call_doc, turns = eventually(lambda: indexed(fake_elasticsearch, app, call_id))
    assert call_doc["caller_name"] == "Пётр Иванов" and all(t["caller_name"] == "Пётр Иванов" for t in turns.values())


def test_calls_from_before_elasticsearch_are_indexed_from_sql(tmp_path, database_url, fake_elasticsearch):
    """Switching Elasticsearch on (or a fresh cluster) needs no manual step: the history is rebuilt."""
    plain = make_app(tmp_path / "plain", database_url)
    try:
        old = log_call(plain, "vox-old")
    finally:
        dispose(plain)
    app = elastic_app(tmp_path / "data", database_url, fake_elasticsearch.url)
    try:
        new = log_call(app, "vox-new")
        eventually(lambda: indexed(fake_elasticsearch, app, old) and indexed(fake_elasticsearch, app, new))
    finally:
        stop_elastic_app(app)


def test_reindex_rebuilds_from_sql_and_switches_aliases(app, fake_elasticsearch):
    ids = [log_call(app, f"vox-{i}") for i in range(3)]
    eventually(lambda: all(indexed(fake_elasticsearch, app, i) for i in ids))
    old = set(fake_elasticsearch.resolve(f"{TURNS},{CALLS}"))
    # A document Elasticsearch should not have (e.g. written by hand) disappears with the rebuild.
    fake_elasticsearch.indices[fake_elasticsearch.resolve(CALLS)[0]]["docs"]["999"] = {"call_id": 999}

    seen = []
    with app.app_context():
        n = get_index(app).reindex_all(progress=lambda done, total: seen.append((done, total)))
    assert n == 3 and seen[0] == (0, 3) and seen[-1] == (3, 3)
    new = set(fake_elasticsearch.resolve(f"{TURNS},{CALLS}"))
    assert new.isdisjoint(old) and not (set(fake_elasticsearch.indices) & old)  # old indexes dropped
    assert set(fake_elasticsearch.docs(CALLS)) == {str(i) for i in ids}
    assert len(fake_elasticsearch.docs(TURNS)) == 6


def test_reindex_fails_cleanly_when_elasticsearch_is_down(app, fake_elasticsearch):
    log_call(app)
    eventually(lambda: pending(app) == 0)
    before = set(fake_elasticsearch.indices)
    fake_elasticsearch.set_mode("unavailable")
    with app.app_context(), pytest.raises(ES_ERRORS):
        get_index(app).reindex_all()
    fake_elasticsearch.set_mode("ok")
    assert set(fake_elasticsearch.indices) == before


def test_flask_reindex_rebuilds_the_transcript_index_too(tmp_path, database_url):
    plain = make_app(tmp_path / "plain", database_url)
    try:
        log_call(plain)
        result = plain.test_cli_runner().invoke(args=["reindex"])
        assert result.exit_code == 0, result.output + repr(result.exception)
        assert "Индекс разговоров (sql) перестроен: 1 звонков" in result.output
        result = plain.test_cli_runner().invoke(args=["reindex", "--if-needed"])  # what `make run` does
        assert result.exit_code == 0 and "Индекс разговоров" not in result.output
    finally:
        dispose(plain)


def test_reindex_step_on_elasticsearch(app, fake_elasticsearch, capsys):
    import click

    from metrotest_bot.search.cli import reindex_transcripts_step

    log_call(app)
    eventually(lambda: pending(app) == 0)
    seen = []
    with app.app_context():
        reindex_transcripts_step(False, lambda done, total: seen.append((done, total)))
        reindex_transcripts_step(True)  # the indexes are there: nothing to do
    out = capsys.readouterr().out
    assert out.count("Индекс разговоров (elasticsearch) перестроен: 1 звонков") == 1
    assert seen[-1] == (1, 1)

    fake_elasticsearch.set_mode("unavailable")
    get_index(app).store._ensured = False  # as in a fresh `flask` process, which must ask Elasticsearch
    with app.app_context():
        reindex_transcripts_step(True)  # `make run` starts anyway
        assert "Elasticsearch недоступен" in capsys.readouterr().err
        with pytest.raises(click.ClickException, match="Elasticsearch недоступен"):
            reindex_transcripts_step(False)


def test_one_drainer_at_a_time_across_apps(app, tmp_path, database_url, fake_elasticsearch):
    """Two workers (two apps on one database): while one drains, the other stands aside."""
    other = elastic_app(tmp_path / "other", database_url, fake_elasticsearch.url)
    try:
        first, second = get_index(app).outbox, get_index(other).outbox
        with app.app_context(), first.lock() as got:
            assert got
            with other.app_context(), second.lock() as got_too:
                assert not got_too
            assert second.drain() is None
        with other.app_context(), second.lock() as got_now:
            assert got_now
    finally:
        stop_elastic_app(other)


def test_without_elasticsearch_nothing_is_queued(tmp_path, database_url):
    plain = make_app(tmp_path / "plain", database_url)
    try:
        log_call(plain)
        assert pending(plain) == 0
        assert get_index(plain).name == "sql"
    finally:
        dispose(plain)
