"""The Call row as the call log's writer (logapply.py) writes it: Core statements, built once.

A call's row is inserted by a Core INSERT, not through the ORM: a unit-of-work flush and its hooks
cost about as much as all of the call's answers' turns together (issue #16: the writer's CPU per call
went mostly to its start and end). What the flush hooks did for a new Call is done here: the
caller's name, company and number go to the transcript index (with the batch's words), and with
Elasticsearch an outbox row for the call's document (search/hooks.py). Its counters are recomputed
from its turns by one UPDATE for every call of a batch.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, case, func, insert, select, text, update

from ..models import Call, Turn

CALLS = Call.__table__
TURNS = Turn.__table__
INSERT_CALL = insert(CALLS)

_COUNTERS = []
# SQLite and PostgreSQL set the five counters from one pass over the call's turns (a row value),
# not five correlated subqueries; the same values (`interrupted IS true` counts as WHEN interrupted,
# `answered IS false` as WHEN NOT answered: NULL counts in neither).
ROW_COUNTERS = text(
    "UPDATE calls SET (n_turns, n_interrupted, n_unanswered, first_piece_ms_sum, first_piece_n) = ("
    "SELECT count(turns.id), coalesce(sum(CASE WHEN turns.interrupted THEN 1 ELSE 0 END), 0), "
    "coalesce(sum(CASE WHEN NOT turns.answered THEN 1 ELSE 0 END), 0), "
    "coalesce(sum(turns.first_piece_ms), 0.0), count(turns.first_piece_ms) "
    "FROM turns WHERE turns.call_id = calls.id) WHERE calls.id IN :cids_"
).bindparams(bindparam("cids_", expanding=True))
ROW_VALUE_DIALECTS = ("sqlite", "postgresql")


def insert_call(session, fields: dict):
    """Insert the call's row; returns (its id, what the transcript index gets for it, or None)."""
    from ..search import TurnText
    from ..search.hooks import CALL_ONLY, record_inserted_turn
    from ..search.sql import call_search_text

    values = dict(fields)
    if isinstance(values.get("started_at"), str):
        values["started_at"] = datetime.fromisoformat(values["started_at"])
    cid = session.connection().execute(INSERT_CALL, values).inserted_primary_key[0]
    record_inserted_turn(session, cid, CALL_ONLY)  # Elasticsearch: the call's document (a no-op otherwise)
    said = call_search_text(values.get("caller"), values.get("caller_name"), values.get("caller_company"))
    return cid, (TurnText(call_id=cid, turn_id=None, text=said) if said else None)


def counters_statement(dialect: str = ""):
    """The Call counters recomputed from the turns of the calls `cids_` (built once)."""
    if dialect in ROW_VALUE_DIALECTS:
        return ROW_COUNTERS
    if not _COUNTERS:
        t = TURNS

        def of_call(expr):
            return select(expr).where(t.c.call_id == CALLS.c.id).scalar_subquery()

        _COUNTERS.append(update(CALLS).where(CALLS.c.id.in_(bindparam("cids_", expanding=True))).values(
            n_turns=of_call(func.count(t.c.id)),
            n_interrupted=of_call(func.coalesce(func.sum(case((t.c.interrupted.is_(True), 1), else_=0)), 0)),
            n_unanswered=of_call(func.coalesce(func.sum(case((t.c.answered.is_(False), 1), else_=0)), 0)),
            first_piece_ms_sum=of_call(func.coalesce(func.sum(t.c.first_piece_ms), 0.0)),
            first_piece_n=of_call(func.count(t.c.first_piece_ms)),
        ))
    return _COUNTERS[0]
