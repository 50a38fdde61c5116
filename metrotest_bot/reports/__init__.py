"""What leaves a call when it ends: a summary stored with the call (extractive at once; worded
by the LLM afterwards when one is configured, llm_summary.py), and the end-of-call webhook (a
signed JSON POST from a durable outbox).

    finalize_call(session, call_id, config)   # in the call log's finishing transaction
    wake(app)                                 # after that commit: summarize and deliver now
"""
from __future__ import annotations

from sqlalchemy import and_, bindparam, select, update

from ..models import ROLE_BOT, Call, Turn
from . import crm_note, llm_summary, webhook
from .summary import call_summary

CALLS = Call.__table__
TURNS = Turn.__table__
# Built once. The outcome and only the turns the summary lists (call_summary filters them again):
# one outer-joined row with NULL turn columns for a call without them, none for a missing call.
SUMMARY_INPUT = (
    select(CALLS.c.outcome, TURNS.c.role, TURNS.c.kind, TURNS.c.question, TURNS.c.answered, TURNS.c.interrupted)
    .select_from(CALLS.outerjoin(TURNS, and_(TURNS.c.call_id == CALLS.c.id, TURNS.c.role == ROLE_BOT,
                                             TURNS.c.kind == "answer")))
    .where(CALLS.c.id == bindparam("cid_"))
    .order_by(TURNS.c.seq, TURNS.c.id))
STORE_SUMMARY = update(CALLS).where(CALLS.c.id == bindparam("cid_"))  # SET from the parameters' keys


def finalize_call(session, call_id: int, config, outbox: bool = True) -> bool:
    """Store the call's summary and queue its webhook and CRM note (when configured), in the caller's transaction.

    Returns True when there is work after the commit (a webhook queued, a summary for the model):
    the caller then calls wake(app). `outbox` False: no search outbox watches the session's writes
    (the call log's writer knows), so the summary's UPDATE may bypass the session.
    """
    llm = llm_summary.enabled(config)
    if llm or not (config.get("CALL_WEBHOOK_URL") or crm_note.enabled(config)):
        # Only the summary is written: a Core select and update, no ORM objects loaded (issue #16:
        # they cost more than the rest of the call's end).
        rows = session.connection().execute(SUMMARY_INPUT, {"cid_": call_id}).all()
        if not rows:
            return False
        source = llm_summary.PENDING if llm else llm_summary.EXTRACTIVE  # pending: the model words it after the commit
        summary = call_summary(rows[0].outcome, rows)
        if outbox:  # session.execute with the values in the statement: with Elasticsearch the call's
            # change gets its outbox row as an ORM write would (search/hooks.py, do_orm_execute reuses the WHERE)
            session.execute(update(CALLS).where(CALLS.c.id == call_id).values(summary=summary, summary_source=source))
        else:
            session.connection().execute(STORE_SUMMARY, {"cid_": call_id, "summary": summary, "summary_source": source})
        return llm
    call = session.get(Call, call_id)
    if call is None:
        return False
    turns = session.scalars(select(Turn).where(Turn.call_id == call_id).order_by(Turn.seq, Turn.id)).all()
    call.summary = call_summary(call.outcome, turns)
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
