"""voice.calllog: turns logged by one writer per process, in grouped commits; counters kept in step;
a database outage never reaches the call and loses nothing (the records wait in the spool)."""
import threading
import time

import pytest
from flask_sqlalchemy.session import Session
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from metrotest_bot.extensions import db
from metrotest_bot.models import Call, Turn
from metrotest_bot.voice.calllog import BotTurn, CallLog
from metrotest_bot.voice import logapply
from metrotest_bot.voice.logwriter import writer_for


def start(app, vox="vox-1") -> CallLog:
    log = CallLog(app)
    log.start(vox_call_id=vox, vox_session_id=None, caller="+79120000000", dialled="+73430000000")
    return log


def read_call(app, call_id):
    with app.app_context():
        try:
            call = db.session.get(Call, call_id)
            return call, list(call.turns)
        finally:
            db.session.remove()


def call_by_vox(app, vox):
    with app.app_context():
        try:
            call = db.session.query(Call).filter_by(vox_call_id=vox).one_or_none()
            return (call, list(call.turns)) if call else (None, [])
        finally:
            db.session.remove()


class Outage:
    """Every commit of the app's sessions fails like a database that went away, until `end()`."""

    def __init__(self, monkeypatch):
        self.down = True
        self.failed = 0
        real_commit = Session.commit

        def commit(session):
            if self.down:
                self.failed += 1
                session.rollback()
                raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
            return real_commit(session)

        monkeypatch.setattr(Session, "commit", commit)
        # Away: the probe that tells an outage from a refused record gets no answer either.
        monkeypatch.setattr(logapply, "database_answers", lambda app: not self.down)

    def end(self):
        self.down = False


@pytest.fixture
def fast(app):
    """A short flush interval and retry, so the tests take moments."""
    app.config.update(CALLLOG_FLUSH_MS=50, CALLLOG_RETRY_MAX_S=0.2)
    app.extensions.pop("calllog_writer", None)
    return app


def test_turns_and_counters(app):
    log = start(app)
    log.caller_turn("Сколько стоит доставка?", confidence=0.9, seq=log.next_seq())
    turn = BotTurn(kind="answer", answer_id="a1", question="Сколько стоит доставка?", seq=log.next_seq(),
                   text="Доставка бесплатная.", planned_text="Доставка бесплатная.", answered=True,
                   source="offline", first_piece_ms=120.0)
    log.save_bot_turn(turn)
    assert turn.turn_id is not None
    assert log.flush()
    # The same turn, updated at its end: interrupted now; counted once, not twice.
    turn.interrupted, turn.spoken_text, turn.total_ms = True, "Доставка", 900.0
    log.save_bot_turn(turn)
    refusal = BotTurn(kind="answer", answer_id="a2", seq=log.next_seq(), answered=False, source="refusal",
                      first_piece_ms=80.0)
    log.save_bot_turn(refusal)
    log.set_recording("https://rec.example/1.mp3")
    log.finish("hangup", reason="caller hung up")
    assert log.flush()

    call, turns = read_call(app, log.call_id)
    assert [(t.seq, t.role, t.kind) for t in turns] == [(1, "caller", "speech"), (2, "bot", "answer"),
                                                          (3, "bot", "answer")]
    assert turns[1].interrupted is True and turns[1].spoken_text == "Доставка" and turns[1].total_ms == 900.0
    assert (call.n_turns, call.n_interrupted, call.n_unanswered, call.first_piece_n) == (3, 1, 1, 2)
    assert call.first_piece_ms_sum == pytest.approx(200.0)
    assert call.outcome == "hangup" and call.recording_url == "https://rec.example/1.mp3"
    assert call.ended_at is not None and call.duration_s >= 0 and call.summary


def test_the_records_of_many_calls_are_committed_together(app):
    """Issue #16: three short transactions per answer before; now one per flush interval for every call."""
    with app.app_context():
        engine = db.engine
    commits = []

    def counted(conn):
        commits.append(1)

    event.listen(engine, "commit", counted)
    try:
        logs = [start(app, f"vox-{i}") for i in range(10)]
        for log in logs:  # an answer each: the question, the first piece, the second, its end
            log.caller_turn("Сколько стоит доставка?", seq=log.next_seq())
            turn = BotTurn(kind="answer", answer_id="a", seq=log.next_seq(), answered=True, first_piece_ms=90.0)
            for text in ("Доставка бесплатная.", "Доставка бесплатная. По всей России."):
                turn.text = text
                log.save_bot_turn(turn)
            turn.total_ms = 700.0
            log.save_bot_turn(turn)
        assert logs[0].flush()
    finally:
        event.remove(engine, "commit", counted)
    assert len(commits) <= 3, len(commits)  # 50 turns' worth of writes (the old log: 40 commits)
    for log in logs:
        call, turns = read_call(app, log.call_id)
        assert [t.text for t in turns] == ["Сколько стоит доставка?", "Доставка бесплатная. По всей России."]
        assert call.n_turns == 2 and turns[1].total_ms == 700.0


def test_the_new_turns_of_many_calls_in_one_batch_are_one_insert(app):
    """Issue #16: a batch's new turns (questions and answers, different columns) go out as one
    INSERT … RETURNING, each row with its own id, written in the batch's order (ids follow seq);
    texts, counters and index right; a question's answer-only columns stay SQL NULL / defaults."""
    from metrotest_bot.search import DateRange, get_index

    writer = writer_for(app)
    logs = [start(app, f"vox-i{i}") for i in range(6)]
    assert logs[0].flush()
    with app.app_context():
        engine = db.engine
    inserts = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO TURNS"):
            inserts.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with writer._busy:  # the whole exchange of every call lands in one batch
            for i, log in enumerate(logs):
                log.caller_turn(f"Сколько стоит доставка в город номер {i}?", seq=log.next_seq())
                log.save_bot_turn(BotTurn(kind="answer", answer_id="a", seq=log.next_seq(), answered=False,
                                          text=f"Ответ номер {i}. Отгружаем за пять рабочих дней."))
        assert logs[0].flush()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(inserts) == 1, inserts
    for i, log in enumerate(logs):
        call, turns = read_call(app, log.call_id)
        assert [t.text for t in turns] == [f"Сколько стоит доставка в город номер {i}?",
                                           f"Ответ номер {i}. Отгружаем за пять рабочих дней."]
        assert call.n_turns == 2 and call.n_unanswered == 1
        assert turns[0].id < turns[1].id and turns[0].interrupted is False and turns[0].answer_id is None
    with app.app_context():
        ids = db.session.scalars(db.select(Turn.id).where(Turn.call_id.in_([l.call_id for l in logs]))
                                 .order_by(Turn.call_id, Turn.seq)).all()
        assert ids == sorted(ids)  # the rows in the order the records came
        sql_null = db.session.scalar(db.select(db.func.count()).select_from(Turn).where(
            Turn.role == "caller", Turn.passages.is_(None), Turn.call_id.in_([l.call_id for l in logs])))
        assert sql_null == 6  # not JSON 'null': as a question written on its own
        db.session.remove()
        assert sorted(get_index().search("отгружать", DateRange(), 10, 0).call_ids) == sorted(l.call_id for l in logs)


def test_the_pieces_of_many_answers_in_one_batch_are_one_update(app):
    """Issue #16: a batch's turn UPDATEs (the answers' later pieces) go out as one executemany per
    set of changed columns, not one statement per turn; what a later piece brings is in the log,
    its words in the transcript index, and a turn whose row is gone is written anew."""
    from metrotest_bot.search import DateRange, get_index

    writer = writer_for(app)
    logs = [start(app, f"vox-u{i}") for i in range(6)]
    turns = []
    for log in logs:
        turn = BotTurn(kind="answer", answer_id="a", seq=log.next_seq(), text="Доставка бесплатная.", answered=True)
        log.save_bot_turn(turn)
        turns.append(turn)
    assert logs[0].flush()
    with app.app_context():
        engine = db.engine
        gone = db.session.scalar(db.select(Turn.id).where(Turn.call_id == logs[-1].call_id))
        db.session.execute(db.delete(Turn).where(Turn.id == gone))  # the log was cleared under the writer
        db.session.commit()
        db.session.remove()
    updates = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE TURNS"):
            updates.append(len(parameters) if executemany else 1)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with writer._busy:  # every later piece lands in one batch
            for log, turn in zip(logs, turns):
                turn.text = "Доставка бесплатная. Отгружаем за пять рабочих дней."
                log.save_bot_turn(turn)
        assert logs[0].flush()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # One executemany of six; then, its row count short by the row that is gone, one by one.
    assert updates == [6, 1, 1, 1, 1, 1, 1], updates
    for log in logs:
        call, rows = read_call(app, log.call_id)
        assert [t.text for t in rows] == ["Доставка бесплатная. Отгружаем за пять рабочих дней."]
        assert call.n_turns == 1
    with app.app_context():
        assert sorted(get_index().search("отгружать", DateRange(), 10, 0).call_ids) == sorted(l.call_id for l in logs)

    updates.clear()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with writer._busy:
            for log, turn in zip(logs, turns):
                turn.total_ms = 700.0
                log.save_bot_turn(turn)
        assert logs[0].flush()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert updates == [6], updates  # all rows there: one statement
    for log in logs:
        assert read_call(app, log.call_id)[1][0].total_ms == 700.0


def test_a_call_never_waits_for_the_database(app, monkeypatch):
    real_commit = Session.commit

    def slow_commit(session):
        time.sleep(0.5)  # a database that takes its time
        return real_commit(session)

    monkeypatch.setattr(Session, "commit", slow_commit)
    log = start(app)
    started = time.monotonic()
    for i in range(20):
        log.caller_turn(f"реплика {i}", seq=log.next_seq())
    assert time.monotonic() - started < 0.1
    assert log.flush()
    assert len(read_call(app, log.call_id)[1]) == 20


def test_an_outage_loses_nothing_and_keeps_the_order(fast, monkeypatch):
    app = fast
    before = start(app, "vox-before")
    before.caller_turn("Алло", seq=before.next_seq())
    assert before.flush()
    outage = Outage(monkeypatch)
    before.caller_turn("Вы меня слышите?", seq=before.next_seq())
    during = start(app, "vox-during")  # a call that starts while the database is away
    during.caller_turn("Сколько стоит доставка?", seq=during.next_seq())
    bot = BotTurn(kind="answer", answer_id="a1", seq=during.next_seq(), text="Доставка бесплатная.", answered=True,
                  question="Сколько стоит доставка?",
                  first_piece_ms=100.0)
    during.save_bot_turn(bot)
    assert during.flush() is False  # spooled, not committed
    assert outage.failed >= 1
    spool = writer_for(app).spool
    assert spool.pending and spool.path.parent == app.config["DATA_DIR"] / "calllog-spool"
    bot.text = "Доставка бесплатная. По всей России."  # more said: behind the spooled records
    during.save_bot_turn(bot)
    during.finish("completed")
    before.caller_turn("Спасибо", seq=before.next_seq())
    writer_for(app).flush(1)
    outage.end()
    deadline = time.monotonic() + 10
    while not during.flush(1) and time.monotonic() < deadline:
        pass
    call, turns = call_by_vox(app, "vox-before")
    assert [t.text for t in turns] == ["Алло", "Вы меня слышите?", "Спасибо"] and call.n_turns == 3
    call, turns = call_by_vox(app, "vox-during")
    assert [t.text for t in turns] == ["Сколько стоит доставка?", "Доставка бесплатная. По всей России."]
    assert call.outcome == "completed" and call.n_turns == 2 and call.first_piece_n == 1
    assert "доставка" in call.summary.lower()
    assert spool.size == 0 and spool.path.stat().st_size == 0  # replayed records are removed
    with app.app_context():
        assert db.session.query(Turn).count() == 5 and db.session.query(Call).count() == 2


def test_a_call_row_is_written_by_core_not_by_an_orm_flush(app):
    """Issue #16: a call's row is a Core INSERT (an ORM flush and its hooks cost the writer as much as
    the call's answers): no ORM flush while calls start; the row as the ORM wrote it (defaults, CRM
    columns, JSON), and the caller found by name, company and number in the same commit."""
    from sqlalchemy.orm import Session as OrmSession

    from metrotest_bot.models import OUTCOME_IN_PROGRESS
    from metrotest_bot.search import DateRange, get_index

    flushed = []

    def seen(session, flush_context):
        flushed.extend(type(o).__name__ for o in session.new)

    event.listen(OrmSession, "after_flush", seen)
    try:
        logs = []
        for i in range(3):
            log = CallLog(app)
            log.start(vox_call_id=f"vox-core-{i}", vox_session_id="s-1", caller=f"7912345678{i}",
                      dialled="+73430000000", crm_data={"name": f"Сидоров {i}"} if i else None,
                      caller_name="Иван Сидоров" if i else None, caller_company="Бетонлаб" if i else None)
            log.caller_turn("Какие сроки поставки?", seq=log.next_seq())
            logs.append(log)
        assert logs[0].flush()
    finally:
        event.remove(OrmSession, "after_flush", seen)
    assert "Call" not in flushed, flushed
    ids = [log.call_id for log in logs]
    assert None not in ids and len(set(ids)) == 3
    call, turns = read_call(app, ids[1])
    assert (call.outcome, call.n_turns, call.first_piece_ms_sum, call.vox_session_id) == (OUTCOME_IN_PROGRESS, 1, 0.0, "s-1")
    assert call.crm_data == {"name": "Сидоров 1"} and call.caller_company == "Бетонлаб" and call.worker
    assert call.started_at is not None and [t.text for t in turns] == ["Какие сроки поставки?"]
    assert read_call(app, ids[0])[0].crm_data is None
    with app.app_context():
        index = get_index()
        assert sorted(index.search("бетонлаб", DateRange(), 10, 0).call_ids) == sorted(ids[1:])
        assert index.search("+7 912 345-67-80", DateRange(), 10, 0).call_ids == [ids[0]]
        db.session.remove()


def test_turns_written_with_core_statements_are_in_the_transcript_index(app):
    from metrotest_bot.search import DateRange, get_index

    log = start(app)
    log.caller_turn("Сколько стоит доставка в Казань?", seq=log.next_seq())
    turn = BotTurn(kind="answer", answer_id="a1", seq=log.next_seq(), text="Доставка бесплатная.", answered=True)
    log.save_bot_turn(turn)
    assert log.flush()
    turn.text = "Доставка бесплатная. Отгружаем за пять рабочих дней."  # words only the update brings
    log.save_bot_turn(turn)
    assert log.flush()
    with app.app_context():
        index = get_index()
        for query in ("казани", "доставку", "отгружать", "рабочий"):
            assert index.search(query, DateRange(), 10, 0).call_ids == [log.call_id], query
        assert index.search("погода", DateRange(), 10, 0).call_ids == []


def test_puts_from_many_threads_keep_each_calls_order(app):
    logs = [start(app, f"vox-t{i}") for i in range(4)]

    def talk(log):
        for i in range(25):
            log.caller_turn(f"фраза {i}", seq=log.next_seq())

    threads = [threading.Thread(target=talk, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert logs[0].flush()
    for log in logs:
        call, turns = read_call(app, log.call_id)
        assert [t.text for t in turns] == [f"фраза {i}" for i in range(25)] and call.n_turns == 25


def test_an_answer_saved_at_every_piece_queues_one_record_read_when_written(fast):
    """Each piece is logged as it is sent; while the writer has not taken the turn's record, a later save
    adds no copy of the text (a long answer would queue all its text so far once per piece)."""
    log = start(fast, "vox-pieces")
    assert log.flush()
    writer = writer_for(fast)
    bot = BotTurn(kind="answer", answer_id="a-long", seq=log.next_seq(), question="Расскажите подробно")
    with writer._busy:  # the writer is between batches
        for i in range(200):
            bot.pieces.append(f"Предложение {i}.")
            bot.text = " ".join(bot.pieces)
            log.save_bot_turn(bot)
        queued = [r for r in writer.queue if r.get("call") == log.key and r.get("seq") == bot.seq]
        assert len(queued) == 1
    assert log.flush()
    bot.pieces.append("Последнее.")
    bot.text = " ".join(bot.pieces)
    log.save_bot_turn(bot)  # after the writer took it: a new record
    assert log.flush()
    _, turns = call_by_vox(fast, "vox-pieces")
    assert [t.text for t in turns if t.role == "bot"] == [bot.text]
