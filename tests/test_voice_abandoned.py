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

NOW = datetime.now(timezone.utc)


def call_row(app, call_id):
    with app.app_context():
        try:
            return db.session.execute(select(Call).where(Call.id == call_id)).scalar_one()
        finally:
            db.session.remove()


def test_an_abandoned_call_is_closed_and_a_live_one_is_not(app):
    # The worker died 40 minutes ago, mid-call: two turns were written, then nothing.
    dead = make_call(app, NOW - timedelta(minutes=45), [
        ("caller", "сколько стоит доставка"),
        {"role": "bot", "text": "Доставка по Екатеринбургу бесплатная.", "question": "сколько стоит доставка",
         "answered": True}], outcome="in_progress")
    # Started long ago, still talking a minute ago: alive on some worker.
    live = make_call(app, NOW - timedelta(minutes=45), [
        {"role": "caller", "text": "а в Казань", "created_at": NOW - timedelta(minutes=1)}], outcome="in_progress")
    fresh = make_call(app, NOW - timedelta(seconds=30), outcome="in_progress")
    finished = make_call(app, NOW - timedelta(hours=2), [("caller", "алло")], outcome="completed")

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
        dead = make_call(server.app, NOW - timedelta(hours=3), [("caller", "у вас есть пресс на двести тонн")],
                         outcome="in_progress")
        urllib.request.urlopen(server.url + "/healthz").read()  # a request starts the sweep if none ran yet
        deadline = time.monotonic() + 10
        while call_row(server.app, dead).outcome == "in_progress" and time.monotonic() < deadline:
            time.sleep(0.1)
        row = call_row(server.app, dead)
        assert row.outcome == "lost" and row.end_reason == REASON
