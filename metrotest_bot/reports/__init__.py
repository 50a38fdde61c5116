"""What leaves a call when it ends: a summary stored with the call (extractive at once; worded
by the LLM afterwards when one is configured, llm_summary.py), and the end-of-call webhook (a
signed JSON POST from a durable outbox).

    finalize_call(session, call_id, config)   # in the call log's finishing transaction
    wake(app)                                 # after that commit: summarize and deliver now
"""
from __future__ import annotations

from sqlalchemy import select

from ..models import Call, Turn
from . import llm_summary, webhook
from .summary import call_summary


def finalize_call(session, call_id: int, config) -> bool:
    """Store the call's summary and queue its webhook and CRM note (when configured), in the caller's transaction.

    Returns True when there is work after the commit (a webhook queued, a summary for the model):
    the caller then calls wake(app).
    """
    call = session.get(Call, call_id)
    if call is None:
        return False
    turns = session.scalars(select(Turn).where(Turn.call_id == call_id).order_by(Turn.seq, Turn.id)).all()
    call.summary = call_summary(call.outcome, turns)
    if llm_summary.enabled(config):
        # The model words it after the commit; the webhook waits for its words (or its failure).
        call.summary_source = llm_summary.PENDING
        return True
    call.summary_source = llm_summary.EXTRACTIVE
    return webhook.queue(session, call, turns, config)


def wake(app) -> None:
    """A call ended and was committed: summarize it now, deliver its report (this process's workers)."""
    if llm_summary.enabled(app.config):
        llm_summary.summarizer(app).wake()
    webhook.wake(app)


def init_app(app) -> None:
    webhook.init_app(app)
    llm_summary.init_app(app)
