"""Calls left «в процессе» by a crash (kill -9, a lost machine) are closed as lost, with what was said.

A live call is never silent longer than VOICE_IDLE_TIMEOUT: its socket closes it first. So a call still in
progress whose last sign of life (its newest turn, or its start) is older than that plus a margin belongs to
no worker any more, on any machine, and can be closed safely by any of them. Each worker sweeps at start and
every ABANDONED_SWEEP_S seconds; the report (summary, webhook) follows as for any call. A call served
by a process of this host that is gone (voice/owner.py: a kill -9, a worker gunicorn restarted) is
closed at once, silent or not. The spools of
dead workers (voice/spool.py) are replayed first: their calls' last turns may be waiting there; and while
any spool of this DATA_DIR still holds records, no call is judged by silence.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select, update

from ..background import BackgroundWorker
from ..database import write_lock
from ..extensions import db
from ..models import OUTCOME_IN_PROGRESS, OUTCOME_LOST, Call, Turn
from ..reports import finalize_call
from ..reports import wake as wake_webhook
from ..timeutil import as_utc, utcnow
from . import logapply, owner
from .logwriter import replay_orphans, spooled

log = logging.getLogger(__name__)

REASON = logapply.SWEPT_REASON  # a spooled real end replaces it (logapply.Batch._finish)
MARGIN_S = 300.0  # beyond the idle timeout: clocks of other machines, a slow last write


def close_abandoned_calls(app) -> int:
    """Close every call abandoned by a dead worker; returns how many were closed."""
    if not replay_orphans(app):
        return 0  # a dead worker's spool could not be replayed yet: its calls may look silent but are not
    cfg = app.config
    quiet_for = timedelta(seconds=float(cfg["VOICE_IDLE_TIMEOUT"]) + MARGIN_S)
    # Records waiting in a spool (the database was away): silence in the database proves nothing.
    by_silence = not spooled(app)
    closed = queued = 0
    with app.app_context():
        cutoff = utcnow() - quiet_for
        last_turn = (select(Turn.call_id, func.max(Turn.created_at).label("last"))
                     .group_by(Turn.call_id).subquery())
        rows = db.session.execute(
            select(Call.id, Call.started_at, last_turn.c.last, Call.worker)
            .outerjoin(last_turn, last_turn.c.call_id == Call.id)
            .where(Call.outcome == OUTCOME_IN_PROGRESS)
        ).all()
        for call_id, started, last, worker in rows:
            last_seen = as_utc(last) if last is not None else as_utc(started)
            if (last_seen >= cutoff or not by_silence) and not owner.is_gone(worker):
                continue  # still speaking to a worker somewhere
            with write_lock():
                done = db.session.execute(
                    update(Call).where(Call.id == call_id, Call.outcome == OUTCOME_IN_PROGRESS).values(
                        outcome=OUTCOME_LOST, end_reason=REASON, ended_at=last_seen,
                        duration_s=round((last_seen - as_utc(started)).total_seconds(), 3))
                ).rowcount
                if done:  # another worker may have closed it a moment ago
                    queued += finalize_call(db.session, call_id, cfg)
                db.session.commit()
            closed += bool(done)
        db.session.remove()
    if closed:
        log.warning("closed %d call(s) abandoned by a stopped worker as lost", closed)
    if queued:
        wake_webhook(app)
    return closed


class AbandonedCallSweeper(BackgroundWorker):
    thread_name = "abandoned-calls"

    def __init__(self, app):
        super().__init__()
        self.app = app

    def _run(self) -> None:
        every = float(self.app.config["ABANDONED_SWEEP_S"])
        while not self._stopped.is_set():
            try:
                close_abandoned_calls(self.app)
            except Exception:  # the database may be away: the next round tries again
                log.exception("sweeping abandoned calls failed")
            self._wake.wait(every)
            self._wake.clear()


def init_app(app) -> None:
    """Sweep from this worker's first request on (a forked worker starts its own thread)."""
    sweeper = AbandonedCallSweeper(app)
    app.extensions["abandoned_calls"] = sweeper
    if app.config["ABANDONED_SWEEP_S"]:
        app.before_request(sweeper.ensure_running)
