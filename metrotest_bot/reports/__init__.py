"""What leaves a call when it ends: an extractive summary stored with the call, and the
end-of-call webhook (a signed JSON POST from a durable outbox).

    finalize_call(session, call_id, config)   # in the call log's finishing transaction
    wake(app)                                 # after that commit: deliver now
"""
from __future__ import annotations

from sqlalchemy import select

from ..models import Call, Turn
from .summary import call_summary
from .webhook import enqueue, init_app, wake  # noqa: F401


def finalize_call(session, call_id: int, config) -> bool:
    """Store the call's summary and queue its webhook (when configured), in the caller's transaction.

    Returns True when a webhook was queued: the caller wakes the sender after commit.
    """
    call = session.get(Call, call_id)
    if call is None:
        return False
    turns = session.scalars(select(Turn).where(Turn.call_id == call_id).order_by(Turn.seq, Turn.id)).all()
    call.summary = call_summary(call.outcome, turns)
    if not config.get("CALL_WEBHOOK_URL"):
        return False
    enqueue(session, call, turns)
    return True
