"""The call log survives a database outage and a kill -9 (issue #13), over the real call WebSocket of a
gunicorn gevent server: records wait in the spool under DATA_DIR and are replayed in order; a dead
worker's spool is replayed by the next one; a torn last line is skipped.

The outages are played on a throwaway PostgreSQL cluster (tests/support/pg_cluster.py) stopped and
started inside the test; the shared server behind TEST_DATABASE_URL serves the other tests.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from metrotest_bot.extensions import db
from metrotest_bot.models import Call, Turn
from metrotest_bot.voice.calllog import BotTurn, CallLog
from metrotest_bot.voice import logapply
from metrotest_bot.voice.logwriter import writer_for
from tests.support.apps import dispose, make_app
from tests.support.call_log import call_snapshot, eventually, finished_call
from tests.support.live_server import start_live_server
from tests.support.pg_cluster import PgCluster, binaries
from tests.support.ws_client import CallClient, text_of

QUESTIONS = ["Сколько стоит доставка?", "До скольки вы работаете?", "Какой у вас адрес?"]
needs_postgres = pytest.mark.skipif(binaries() is None, reason="no PostgreSQL server installed (pg_ctl)")
FAST = dict(CALLLOG_FLUSH_MS=100, CALLLOG_RETRY_MAX_S=0.5, DB_CONNECT_TIMEOUT=1)


def worker_pids(server) -> list[int]:
    pid = server.proc.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def kill_server(server) -> None:
    """kill -9 of the master, then of its workers: nothing is flushed, nothing restarted."""
    workers = worker_pids(server)
    server.proc.kill()
    server.proc.wait()
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def spooled_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "calllog-spool").glob("*.jsonl"))


def spooled(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (data_dir / "calllog-spool").glob("*.jsonl"))


def said(call: CallClient, frames: list[dict]) -> str:
    return text_of(frames)  # the pieces as sent (speech form), as the turn's `spoken` keeps them


@pytest.fixture
def pg():
    if binaries() is None:
        pytest.skip("no PostgreSQL server installed (pg_ctl)")
    with PgCluster() as cluster:
        yield cluster


# -- (a) an outage during live calls -----------------------------------------------------------


@needs_postgres
def test_an_outage_during_live_calls_loses_no_turn(tmp_path, pg):
    server = start_live_server(tmp_path / "data", pg.url, **FAST)
    calls = []
    try:
        heard: dict[str, list[tuple[str, str]]] = {}
        for _ in range(3):
            call = CallClient.connect(server, timeout=15)
            call.setup()
            heard[call.call_id] = [(QUESTIONS[0], said(call, call.ask(QUESTIONS[0])))]
            calls.append(call)
        pg.stop()  # the database goes away while the calls go on
        for call in calls:
            for q in QUESTIONS[1:]:
                answer = call.ask(q)
                assert answer[-1]["last"] is True  # the caller hears no outage
                heard[call.call_id].append((q, said(call, answer)))
        late = CallClient.connect(server, timeout=15)  # a call that starts during the outage
        late.setup()
        heard[late.call_id] = [(q, said(late, late.ask(q))) for q in QUESTIONS[:2]]
        late.hangup()
        late.expect_closed()
        time.sleep(0.5)
        pg.start()
        for call in calls:
            call.hangup()
            call.expect_closed()
        for vox, exchanges in heard.items():
            snap = finished_call(server, vox, timeout=30)
            # In order: the greeting, then each question and its answer, every word heard.
            assert [t.kind for t in snap.turns] == ["greeting"] + ["speech", "answer"] * len(exchanges), vox
            assert [(t.text, u.spoken) for t, u in zip(snap.turns[1::2], snap.turns[2::2])] == exchanges, vox
            assert [t.seq for t in snap.turns] == sorted(t.seq for t in snap.turns)
            assert snap.n_turns == len(snap.turns) == 1 + 2 * len(exchanges) and snap.outcome == "hangup"
            assert snap.summary
        eventually(lambda: spooled_bytes(server.data_dir) == 0)
    finally:
        for call in calls:
            call.close()
        server.stop()


# -- (b) kill -9 of the worker mid-answer -----------------------------------------------------


LONG_ANSWER = " ".join(
    f"Это предложение номер {i} длинного ответа про доставку и оплату оборудования." for i in range(1, 16))


def test_kill_9_mid_answer_keeps_every_piece_sent_before(tmp_path, database_url, fake_openai):
    fake_openai.answer = LONG_ANSWER
    fake_openai.token_delay = 0.03  # a sentence every ~0.4 s
    server = start_live_server(tmp_path / "data", database_url, OPENAI_API_KEY="test-key",
                               OPENAI_BASE_URL=fake_openai.base_url, LLM_TOTAL_TIMEOUT=60)
    call = CallClient.connect(server, timeout=15)
    try:
        call.setup()
        call.prompt(QUESTIONS[0])
        pieces, times = [], []
        while len(pieces) < 5:
            frame = call.recv()
            pieces.append(frame["text"])
            times.append(time.monotonic())
        killed_at = time.monotonic()
        for pid in worker_pids(server):
            os.kill(pid, signal.SIGKILL)  # mid-answer: more pieces were on their way
        must = [p for p, t in zip(pieces, times) if t < killed_at - 0.3]
        assert len(must) >= 3

        def logged():
            snap = call_snapshot(server, call.call_id)
            bots = [t for t in (snap.turns if snap else []) if t.kind == "answer"]
            return bots[0] if bots else None

        turn = eventually(logged)
        assert turn.spoken.startswith(" ".join(must)), (turn.spoken, must)
        assert turn.question == QUESTIONS[0]
    finally:
        call.close()
        server.stop()


# -- (c) the spool outlives its process --------------------------------------------------------


@needs_postgres
def test_a_dead_workers_spool_is_replayed_by_the_next_server(tmp_path, pg):
    data_dir = tmp_path / "data"
    server = start_live_server(data_dir, pg.url, **FAST)
    call = CallClient.connect(server, timeout=15)
    try:
        call.setup()
        pg.stop()
        answers = [said(call, call.ask(q)) for q in QUESTIONS]
        call.hangup()
        call.expect_closed()
        eventually(lambda: b'"op":"finish"' in spooled(data_dir), timeout=15)  # the hangup's records are spooled
        kill_server(server)
    finally:
        call.close()
    pg.start()
    again = start_live_server(data_dir, pg.url, **FAST)  # its worker replays the dead one's spool at start
    try:
        snap = finished_call(again, call.call_id, timeout=30)
        assert [t.text for t in snap.turns if t.role == "caller"] == QUESTIONS
        assert [t.spoken for t in snap.turns if t.kind == "answer"] == answers
        assert snap.outcome == "hangup" and snap.n_turns == 1 + 2 * len(QUESTIONS)
        eventually(lambda: not list((data_dir / "calllog-spool").glob("*.jsonl")))  # replayed, then removed
    finally:
        again.stop()


# -- (d) a torn last line, and a replay that is done twice --------------------------------------


def spool_a_call(app, monkeypatch, saves: int = 2) -> tuple[CallLog, Path]:
    """A call logged while every commit fails: its records are in this writer's spool file."""
    from flask_sqlalchemy.session import Session
    from sqlalchemy.exc import OperationalError

    real = Session.commit

    def down(session):
        session.rollback()
        raise OperationalError("COMMIT", {}, Exception("connection refused"))

    monkeypatch.setattr(Session, "commit", down)
    monkeypatch.setattr(logapply, "database_answers", lambda app: False, raising=False)  # away: a probe gets no answer either
    log = CallLog(app)
    log.start(vox_call_id="vox-spooled", vox_session_id=None, caller="+79120000000", dialled="+73430000000")
    log.caller_turn("Сколько стоит доставка?", seq=log.next_seq())
    turn = BotTurn(kind="answer", answer_id="a1", question="Сколько стоит доставка?", seq=log.next_seq(),
                   text="Доставка бесплатная.", answered=True, first_piece_ms=150.0)
    log.save_bot_turn(turn)
    turn.text = "Доставка бесплатная. По всей России."
    log.save_bot_turn(turn)
    for i in range(2, saves):  # more pieces of the answer, each saved as it is sent
        turn.text += f" Ещё {i}."
        log.save_bot_turn(turn)
    log.finish("completed")
    assert log.flush() is False
    writer = writer_for(app)
    writer.stop()  # before the database is back: the records stay in the spool
    writer.spool._locks.close()  # as if the process died: its lock is gone
    monkeypatch.setattr(Session, "commit", real)
    monkeypatch.undo()
    return log, writer.spool.path


def replay(data_dir, database_url):
    app = make_app(data_dir, database_url)
    try:
        writer = writer_for(app)
        writer.ensure_running()
        assert writer.orphans_done.wait(10)
        with app.app_context():
            calls = db.session.query(Call).all()
            return [(c.vox_call_id, c.outcome, c.n_turns, c.first_piece_n, [t.text for t in c.turns]) for c in calls], \
                db.session.query(Turn).count()
    finally:
        writer.stop()
        dispose(app)


def test_a_torn_last_line_is_skipped_and_a_second_replay_adds_nothing(tmp_path, database_url, monkeypatch, caplog):
    data_dir = tmp_path / "data"
    app = make_app(data_dir, database_url, CALLLOG_FLUSH_MS=20)
    try:
        _, path = spool_a_call(app, monkeypatch)
    finally:
        dispose(app)
    copy = path.with_name("99999-copy.jsonl")
    shutil.copy(path, copy)  # the same records again, as after a crash between a commit and the offset
    with open(path, "ab") as f:
        f.write('{"op":"turn","call":"x","seq":9,"cols":{"text":"оборв'.encode())  # a crash mid-write
    expected = [("vox-spooled", "completed", 2, 1, ["Сколько стоит доставка?", "Доставка бесплатная. По всей России."])]
    calls, n_turns = replay(data_dir, database_url)
    assert calls == expected and n_turns == 2
    assert any("torn last line" in r.getMessage() for r in caplog.records)
    assert not path.exists() and not copy.exists()  # both replayed (idempotently) and removed


# -- the abandoned-call sweep waits for a dead worker's spool ------------------------------------


def test_the_sweep_replays_a_dead_workers_spool_before_judging_its_calls(app):
    """A call whose newest turns wait in a dead worker's spool is alive, not abandoned."""
    import json
    from datetime import datetime, timedelta, timezone

    from metrotest_bot.voice.abandoned import close_abandoned_calls
    from tests.support.admin_data import make_call

    now = datetime.now(timezone.utc)
    started = now - timedelta(minutes=45)
    cid = make_call(app, started, [("caller", "сколько стоит доставка")], outcome="in_progress",
                    vox_call_id="vox-alive")
    record = {"op": "turn", "call": "k-alive", "vox": "vox-alive", "t0": started.isoformat(), "seq": 1,
              "at": (now - timedelta(seconds=30)).isoformat(),
              "cols": {"role": "caller", "kind": "speech", "text": "а в Казань доставляете?", "confidence": None}}
    folder = app.config["DATA_DIR"] / "calllog-spool"
    folder.mkdir(parents=True)
    (folder / "4242-dead.jsonl").write_text(json.dumps(record, ensure_ascii=False) + "\n")

    assert close_abandoned_calls(app) == 0
    with app.app_context():
        call = db.session.get(Call, cid)
        assert call.outcome == "in_progress" and [t.text for t in call.turns][-1] == "а в Казань доставляете?"
        assert call.n_turns == 2
    assert not (folder / "4242-dead.jsonl").exists()


# -- issue #13: a refused record, the writer's count, the spool file itself ------------------------


def refuse_text(app, text: str) -> None:
    """The database refuses a turn with this text with an OperationalError, as for a full disk or a limit."""
    from sqlalchemy import text as sql

    with app.app_context():
        if db.engine.dialect.name == "sqlite":  # sqlite3: every error but a constraint is an OperationalError
            statements = [f"CREATE TRIGGER refuse BEFORE INSERT ON turns WHEN NEW.text = '{text}' "
                          "BEGIN SELECT abs(-9223372036854775808); END"]  # integer overflow, at run time
        else:  # psycopg's ProgramLimitExceeded, an OperationalError to SQLAlchemy
            statements = [
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.text = '" + text + "' THEN "
                "RAISE EXCEPTION 'row too big' USING ERRCODE = 'program_limit_exceeded'; END IF; RETURN NEW; END "
                "$$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse BEFORE INSERT ON turns FOR EACH ROW EXECUTE FUNCTION refuse()"]
        for statement in statements:
            db.session.execute(sql(statement))
        db.session.commit()
        db.session.remove()


def test_a_record_the_database_refuses_is_dropped_not_spooled_forever(app, caplog):
    refuse_text(app, "ЯД")
    log = CallLog(app)
    log.start(vox_call_id="vox-refused", vox_session_id=None, caller="+79120000000", dialled="+73430000000")
    log.caller_turn("ЯД", seq=log.next_seq())
    log.caller_turn("Сколько стоит доставка?", seq=log.next_seq())
    log.finish("hangup")
    assert log.flush(timeout=10) is True  # nothing waits in the spool
    with app.app_context():
        call = db.session.query(Call).filter_by(vox_call_id="vox-refused").one()
        assert call.outcome == "hangup" and [t.text for t in call.turns] == ["Сколько стоит доставка?"]
    assert any("DROPPED" in r.getMessage() and "ЯД" in r.getMessage() for r in caplog.records)
    writer_for(app).stop()


def test_a_failure_after_the_commit_does_not_stall_flush(app, monkeypatch):
    from metrotest_bot.voice import logwriter

    def fails(app):
        raise RuntimeError("webhook thread could not start")

    app.config["CALL_WEBHOOK_URL"] = "http://127.0.0.1:9/hook"  # a finish then wakes the webhook sender
    monkeypatch.setattr(logwriter, "wake_webhook", fails)
    log = CallLog(app)
    log.start(vox_call_id="vox-wake", vox_session_id=None, caller="+79120000000", dialled="+73430000000")
    log.finish("hangup")
    started = time.monotonic()
    assert log.flush(timeout=5) is True and time.monotonic() - started < 3
    log.caller_turn("алло", seq=log.next_seq())
    assert log.flush(timeout=5) is True  # and the next records are counted too
    writer_for(app).stop()


def test_turn_snapshots_are_coalesced_before_they_are_spooled(tmp_path, database_url, monkeypatch):
    import json

    app = make_app(tmp_path / "data", database_url, CALLLOG_FLUSH_MS=1000)
    try:
        _, path = spool_a_call(app, monkeypatch, saves=6)
    finally:
        dispose(app)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    answers = [r for r in records if r["op"] == "turn" and r["cols"]["role"] == "bot"]
    assert len(answers) == 1 and answers[0]["cols"]["text"].endswith("Ещё 5.")


def test_a_short_write_is_completed_and_a_failed_one_undone(tmp_path, monkeypatch):
    import errno
    import json

    from metrotest_bot.voice import spool

    box = spool.Spool(tmp_path)
    box.append([{"op": "turn", "n": 0}])
    real, calls = os.write, []

    def short_then_full(fd, data):  # the disk takes half, then is full
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data[: len(data) // 2]))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(spool.os, "write", short_then_full)
    with pytest.raises(OSError):
        box.append([{"op": "turn", "n": 1, "text": "x" * 100}])
    assert box.path.stat().st_size == box.size  # no half line left behind
    box.append([{"op": "turn", "n": 2}])  # a write of part of it, then the rest
    calls.clear()
    monkeypatch.setattr(spool.os, "write", lambda fd, data: real(fd, bytes(data[:7])))
    box.append([{"op": "turn", "n": 3}])
    records, _ = spool.read_records(box.path, 0)
    assert [r["n"] for r in records] == [0, 2, 3]
    assert box.path.stat().st_size == box.size
    assert json.loads(box.path.read_text().splitlines()[-1]) == {"op": "turn", "n": 3}


def test_the_offset_is_reset_on_disk_before_the_spool_is_truncated(tmp_path, monkeypatch):
    """A crash between the two must not leave an offset beyond the truncated file's regrown records."""
    from metrotest_bot.voice import spool

    box = spool.Spool(tmp_path)
    box.append([{"op": "turn", "n": 0}])
    box.committed(box.size // 2)  # a partial commit: the offset file holds a mid-file value
    monkeypatch.setattr(spool.os, "ftruncate", lambda fd, size: (_ for _ in ()).throw(OSError("power lost")))
    with pytest.raises(OSError):
        box.committed(box.size)
    assert box.path.with_suffix(".done").read_text() == "0"


def test_no_lock_file_is_left_of_a_spool_another_worker_discarded(tmp_path):
    from metrotest_bot.voice import spool

    for name in ("1-a", "2-b"):
        (tmp_path / f"{name}.jsonl").write_text('{"op":"turn"}\n')
    scan = spool.orphans(tmp_path, None)
    path, _ = next(scan)
    spool.discard(path)
    spool.discard(tmp_path / "2-b.jsonl")  # another worker replayed it meanwhile
    assert list(scan) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_spool_is_capped_with_a_loud_line(tmp_path, database_url, monkeypatch, caplog):
    from metrotest_bot.voice import spool

    box = spool.Spool(tmp_path, max_bytes=100)
    box.append([{"op": "turn", "text": "x" * 40}])
    with pytest.raises(spool.SpoolFull):
        box.append([{"op": "turn", "text": "y" * 40}])
    assert box.path.stat().st_size == box.size <= 100
    # The writer: what the spool cannot take is lost with an error line naming the setting.
    app = make_app(tmp_path / "data", database_url, CALLLOG_FLUSH_MS=20, CALLLOG_SPOOL_MAX_MB=0.0001)
    try:
        with pytest.raises(AssertionError):
            spool_a_call(app, monkeypatch)  # nothing could be spooled: flush() finds nothing pending
        writer_for(app).stop()
    finally:
        dispose(app)
    assert any("LOST" in r.getMessage() and "CALLLOG_SPOOL_MAX_MB" in r.getMessage() for r in caplog.records)
    assert spooled_bytes(tmp_path / "data") == 0
