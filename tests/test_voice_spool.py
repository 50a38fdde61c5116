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
        time.sleep(1.0)  # the hangup's records are spooled by now (CALLLOG_FLUSH_MS=100)
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


def spool_a_call(app, monkeypatch) -> tuple[CallLog, Path]:
    """A call logged while every commit fails: its records are in this writer's spool file."""
    from flask_sqlalchemy.session import Session
    from sqlalchemy.exc import OperationalError

    real = Session.commit

    def down(session):
        session.rollback()
        raise OperationalError("COMMIT", {}, Exception("connection refused"))

    monkeypatch.setattr(Session, "commit", down)
    monkeypatch.setattr(logapply, "database_answers", lambda app: False)  # away: a probe gets no answer either
    log = CallLog(app)
    log.start(vox_call_id="vox-spooled", vox_session_id=None, caller="+79120000000", dialled="+73430000000")
    log.caller_turn("Сколько стоит доставка?", seq=log.next_seq())
    turn = BotTurn(kind="answer", answer_id="a1", question="Сколько стоит доставка?", seq=log.next_seq(),
                   text="Доставка бесплатная.", answered=True, first_piece_ms=150.0)
    log.save_bot_turn(turn)
    turn.text = "Доставка бесплатная. По всей России."
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
