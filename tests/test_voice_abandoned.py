"""Calls a crashed worker left «в процессе» are closed as lost, with what was said, by any worker's sweep."""
import time
import urllib.request
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from metrotest_bot.extensions import db
from metrotest_bot.models import Call
from metrotest_bot.voice.abandoned import REASON, close_abandoned_calls
from tests.support.admin_data import make_call
from tests.support.live_server import serving


def now() -> datetime:
    # Read when a test runs, not at import: the suite collects this module minutes before.
    return datetime.now(timezone.utc)


def call_row(app, call_id):
    with app.app_context():
        try:
            return db.session.execute(select(Call).where(Call.id == call_id)).scalar_one()
        finally:
            db.session.remove()


def test_an_abandoned_call_is_closed_and_a_live_one_is_not(app):
    # The worker died 40 minutes ago, mid-call: two turns were written, then nothing.
    dead = make_call(app, now() - timedelta(minutes=45), [
        ("caller", "сколько стоит доставка"),
        {"role": "bot", "text": "Доставка по Екатеринбургу бесплатная.", "question": "сколько стоит доставка",
         "answered": True}], outcome="in_progress")
    # Started long ago, still talking a minute ago: alive on some worker.
    live = make_call(app, now() - timedelta(minutes=45), [
        {"role": "caller", "text": "а в Казань", "created_at": now() - timedelta(minutes=1)}], outcome="in_progress")
    fresh = make_call(app, now() - timedelta(seconds=30), outcome="in_progress")
    finished = make_call(app, now() - timedelta(hours=2), [("caller", "алло")], outcome="completed")

    assert close_abandoned_calls(app) == 1
    row = call_row(app, dead)
    assert row.outcome == "lost" and row.end_reason == REASON
    assert row.ended_at is not None and row.duration_s == 6.0  # until its last turn (+6 s), not until now
    assert "доставка" in (row.summary or "")  # the report is made as for any finished call
    assert [call_row(app, c).outcome for c in (live, fresh, finished)] == ["in_progress", "in_progress", "completed"]
    assert close_abandoned_calls(app) == 0  # once


def test_a_running_server_sweeps(tmp_path):
    """Every worker sweeps, from its first request on and then every ABANDONED_SWEEP_S (1 s here)."""
    with serving(tmp_path, ABANDONED_SWEEP_S=1) as server:
        dead = make_call(server.app, now() - timedelta(hours=3), [("caller", "у вас есть пресс на двести тонн")],
                         outcome="in_progress")
        urllib.request.urlopen(server.url + "/healthz").read()  # a request starts the sweep if none ran yet
        deadline = time.monotonic() + 10
        while call_row(server.app, dead).outcome == "in_progress" and time.monotonic() < deadline:
            time.sleep(0.1)
        row = call_row(server.app, dead)
        assert row.outcome == "lost" and row.end_reason == REASON


def _gone_process() -> str:
    """The identity of a process of this host that has exited (as voice/owner.py writes it)."""
    import subprocess
    import sys

    from metrotest_bot.voice import owner

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    ticks = owner._start_ticks(proc.pid)
    proc.wait()
    return f"{owner.host_key()}/{proc.pid}/{ticks}"


def test_a_call_whose_process_is_gone_is_closed_at_once(app):
    """kill -9 of a worker: its calls are not silent long enough to look abandoned, but the process
    that served them is gone from this host; a call of a live process, or of another host, is not."""
    from metrotest_bot.voice import owner

    said = [("caller", "сколько стоит доставка"),
            {"role": "bot", "text": "Доставка по Екатеринбургу бесплатная.", "answered": True}]
    dead = make_call(app, now() - timedelta(seconds=20), said, outcome="in_progress", worker=_gone_process())
    mine = make_call(app, now() - timedelta(seconds=20), said, outcome="in_progress", worker=owner.this_process())
    elsewhere = make_call(app, now() - timedelta(seconds=20), said, outcome="in_progress",
                          worker="another-host/0123abcd/4242/777")
    unknown = make_call(app, now() - timedelta(seconds=20), said, outcome="in_progress")

    assert close_abandoned_calls(app) == 1
    row = call_row(app, dead)
    assert row.outcome == "lost" and row.end_reason == REASON and row.duration_s == 6.0
    assert [call_row(app, c).outcome for c in (mine, elsewhere, unknown)] == ["in_progress"] * 3


def test_calls_of_a_killed_worker_are_closed_when_its_successor_starts(tmp_path):
    """A live call, kill -9 of its worker: gunicorn starts another, whose first sweep closes the call."""
    import os
    import signal
    from pathlib import Path

    from tests.support.call_log import call_snapshot, eventually
    from tests.support.ws_client import CallClient

    with serving(tmp_path, ABANDONED_SWEEP_S=300) as server:
        call = CallClient.connect(server, timeout=15)
        call.setup()
        call.ask("До скольки вы работаете?")
        snap = eventually(lambda: (s := call_snapshot(server, call.call_id)) and len(s.turns) >= 3 and s)
        pid = server.proc.pid
        [worker] = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        os.kill(worker, signal.SIGKILL)
        call.close()

        def closed():
            try:
                urllib.request.urlopen(server.url + "/healthz", timeout=2).read()  # the new worker's first request
            except OSError:
                return None
            row = call_row(server.app, snap.id)
            return row if row.outcome != "in_progress" else None

        row = eventually(closed, timeout=20)
        assert row.outcome == "lost" and row.end_reason == REASON
        assert len(call_snapshot(server, call.call_id).turns) == len(snap.turns)  # what was said is kept


# -- issue #13: turns waiting in a spool --------------------------------------------------------


def test_no_call_is_judged_by_silence_while_a_spool_holds_records(app):
    """Its newest turns may wait in this worker's spool, or a live neighbour's, while the database was away."""
    from metrotest_bot.filelock import file_lock
    from metrotest_bot.voice.logwriter import writer_for

    quiet = make_call(app, now() - timedelta(minutes=45), [("caller", "сколько стоит доставка")], outcome="in_progress")
    record = {"op": "turn", "call": "k", "vox": "vox-quiet", "t0": now().isoformat(), "seq": 1, "cols": {}}
    writer = writer_for(app)  # not started: what it spools stays there
    writer.spool.append([record])
    assert close_abandoned_calls(app) == 0
    writer.spool.committed(writer.spool.size)  # ours is empty; a live neighbour's is not
    folder = writer.spool.dir
    with file_lock(folder / "777-live.lock") as held:
        assert held
        (folder / "777-live.jsonl").write_text('{"op":"turn"}\n')
        assert close_abandoned_calls(app) == 0
        assert call_row(app, quiet).outcome == "in_progress"
        (folder / "777-live.done").write_text(str((folder / "777-live.jsonl").stat().st_size))  # replayed
        assert close_abandoned_calls(app) == 1
    assert call_row(app, quiet).outcome == "lost"


def test_a_spooled_real_end_replaces_the_sweeps_lost(app):
    """The sweep closed a call whose real end waited in a spool: replayed, the real end wins."""
    from metrotest_bot.voice import logapply

    started = now() - timedelta(minutes=45)
    cid = make_call(app, started, [("caller", "сколько стоит доставка")], outcome="in_progress", vox_call_id="vox-late")
    assert close_abandoned_calls(app) == 1
    ended = started + timedelta(minutes=3)
    finish = {"op": "finish", "call": "k-late", "vox": "vox-late", "t0": started.isoformat(),
              "values": {"outcome": "hangup", "ended_at": ended.isoformat(), "duration_s": 180.0}}
    logapply.commit(app, {}, [finish], replay=True)
    row = call_row(app, cid)
    assert (row.outcome, row.end_reason, row.duration_s) == ("hangup", None, 180.0)
    done = make_call(app, started, outcome="completed", vox_call_id="vox-done")
    logapply.commit(app, {}, [{**finish, "call": "k-done", "vox": "vox-done"}], replay=True)
    assert call_row(app, done).outcome == "completed"  # a call that really ended is never reopened
