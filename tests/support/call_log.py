"""Reading the call log of a live server from the test process."""
from __future__ import annotations

import time
from types import SimpleNamespace

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from metrotest_bot.extensions import db
from metrotest_bot.models import Call


def _columns(row) -> dict:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


def call_snapshot(server, vox_call_id: str) -> SimpleNamespace | None:
    """The call with that Voximplant id and its turns (plain attributes), or None."""
    with server.app.app_context():
        try:
            # The call and its turns in one statement: read apart, a writer's commit between the two reads
            # showed a turn already interrupted beside the call's counter not yet recomputed.
            call = db.session.execute(select(Call).options(joinedload(Call.turns))
                                      .where(Call.vox_call_id == vox_call_id)).unique().scalar_one_or_none()
            if call is None:
                return None
            snap = SimpleNamespace(**_columns(call))
            snap.turns = [SimpleNamespace(**_columns(t)) for t in sorted(call.turns, key=lambda t: t.seq)]
            return snap
        finally:
            db.session.remove()


def call_count(server) -> int:
    with server.app.app_context():
        try:
            return db.session.execute(select(func.count(Call.id))).scalar_one()
        finally:
            db.session.remove()


def eventually(fn, timeout: float = 10.0, interval: float = 0.05):
    """fn()'s first truthy value within timeout; AssertionError with the last value otherwise."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout} s; last value: {value!r}")


def finished_call(server, vox_call_id: str, timeout: float = 10.0) -> SimpleNamespace:
    """The call once the server has finalized it (outcome no longer in progress)."""
    def done():
        snap = call_snapshot(server, vox_call_id)
        return snap if snap is not None and snap.outcome != "in_progress" else None

    return eventually(done, timeout)
