"""The transcript index follows the call log through SQLAlchemy session events, installed once.

Code that writes calls and turns needs no change; every ORM session of the
process is watched (the listeners do nothing outside an app context):

- after_flush: what was said (turns) and who called (name, company and number,
  which the voice session sets at setup from the CRM) go to the app's index in
  the same transaction (the SQL lemma table); with Elasticsearch, the changed
  calls and turns are also recorded as outbox rows (outbox.py), for after commit;
- do_orm_execute: ORM bulk UPDATE/DELETE of calls or turns (e.g. the call log's
  counter updates) are recorded as outbox rows before they run;
- after_commit / after_soft_rollback: wake the outbox, or forget it.

Rows written by Core statements are indexed by `flask reindex-transcripts`.
"""
from __future__ import annotations

import logging

from flask import current_app, has_app_context
from sqlalchemy import DateTime, Integer, event, insert, inspect, literal, select
from sqlalchemy.orm import Session

from ..models import Call, SearchOutbox, Turn
from ..timeutil import utcnow
from .base import TurnText
from .sql import call_search_text, turn_search_text

log = logging.getLogger(__name__)
_installed = False

CALLER_FIELDS = ("caller", "caller_name", "caller_company")

# Outbox rows: (call_id, turn_id); turn_id None is "every turn document of the call",
# CALL_ONLY "only the call document".
OUTBOX = SearchOutbox.__table__
CALL_ONLY = 0
# session.info keys: the outbox to wake after commit; a clear() recorded every call it removes.
PENDING_KEY = "search_outbox"
CLEARED_KEY = "search_outbox_cleared"


def install() -> None:
    """Listen on every ORM session, once per process."""
    global _installed
    if not _installed:
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "do_orm_execute", _do_orm_execute)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", lambda session, previous: _forget(session))
        _installed = True


def _index_of_app():
    """The current app's transcript index (search.init_app builds it), or None."""
    return current_app.extensions.get("transcript_index") if has_app_context() else None


def _after_flush(session, flush_context):
    index = _index_of_app()
    if index is None:
        return
    _index_texts(session, index)
    outbox = getattr(index, "outbox", None)  # Elasticsearch only
    if outbox is not None:
        _record_outbox_rows(session, outbox)


# -- the index's own table, in the transaction ----------------------------------------------

def _text_changed(turn: Turn) -> bool:
    state = inspect(turn)
    return state.attrs.text.history.has_changes() or state.attrs.spoken_text.history.has_changes()


def _caller_changed(call: Call) -> bool:
    state = inspect(call)
    return any(getattr(state.attrs, key).history.has_changes() for key in CALLER_FIELDS)


def _index_texts(session, index) -> None:
    turns = [o for o in session.new if isinstance(o, Turn)]
    turns += [o for o in session.dirty if isinstance(o, Turn) and _text_changed(o)]
    turns = [t for t in turns if t.call_id is not None and (t.text or t.spoken_text)]
    calls = [o for o in session.new if isinstance(o, Call)]
    calls += [o for o in session.dirty if isinstance(o, Call) and _caller_changed(o)]
    texts = [TurnText(call_id=c.id, turn_id=None, text=call_search_text(c.caller, c.caller_name, c.caller_company))
             for c in calls if c.id is not None]
    texts = [t for t in texts if t.text]
    texts += [TurnText(call_id=t.call_id, turn_id=t.id, text=turn_search_text(t.text, t.spoken_text)) for t in turns]
    if not texts:
        return
    try:
        index.index_turns(session, texts)
    except Exception:  # the call log matters more than its index, which can be rebuilt
        log.exception("transcript index: turns not indexed")


# -- the Elasticsearch outbox -----------------------------------------------------------------

def remember(session, outbox) -> None:
    """Wake `outbox` once `session` commits."""
    session.info[PENDING_KEY] = outbox


def mark_cleared(session, outbox) -> None:
    """The log is being cleared in this transaction and every removed call is recorded already."""
    session.info[CLEARED_KEY] = True
    remember(session, outbox)


def turn_row_for_call_change(changed_keys) -> int | None:
    """The outbox row's turn_id for a change of these Call columns (None: every turn document)."""
    from .documents import CALL_COLUMNS_IN_TURNS  # Elasticsearch's side: imported only when it is used

    return None if (not changed_keys or set(changed_keys) & CALL_COLUMNS_IN_TURNS) else CALL_ONLY


def _outbox_of_app():
    index = _index_of_app()
    return getattr(index, "outbox", None)


def _record_outbox_rows(session, outbox) -> None:
    rows = []
    for obj in session.new:
        if isinstance(obj, Turn):
            rows.append((obj.call_id, obj.id))
        elif isinstance(obj, Call):
            rows.append((obj.id, CALL_ONLY))
    for obj in session.dirty:
        if isinstance(obj, Turn) and session.is_modified(obj, include_collections=False):
            rows.append((obj.call_id, obj.id))
        elif isinstance(obj, Call) and session.is_modified(obj, include_collections=False):
            changed = [a.key for a in inspect(obj).attrs if a.history.has_changes()]
            rows.append((obj.id, turn_row_for_call_change(changed)))
    for obj in session.deleted:
        if isinstance(obj, Turn):
            rows.append((obj.call_id, obj.id))
        elif isinstance(obj, Call):
            rows.append((obj.id, None))
    rows = [r for r in dict.fromkeys(rows) if r[0] is not None]
    if rows:
        now = utcnow()
        session.connection().execute(
            insert(OUTBOX), [{"call_id": c, "turn_id": t, "created_at": now} for c, t in rows])
        remember(session, outbox)


def _do_orm_execute(state):
    """Bulk UPDATE/DELETE of calls or turns: record the rows they touch, before they run."""
    if not (state.is_update or state.is_delete):
        return
    stmt = state.statement
    table = getattr(stmt, "table", None)
    if getattr(table, "name", None) not in (Call.__tablename__, Turn.__tablename__):
        return
    outbox = _outbox_of_app()
    if outbox is None:
        return
    session = state.session
    if state.is_delete and session.info.get(CLEARED_KEY):
        return  # clear() already recorded every call it removes
    now = literal(utcnow(), DateTime(timezone=True))
    if table.name == Call.__tablename__:
        keys = [getattr(k, "key", k) for k in (getattr(stmt, "_values", None) or {})] if state.is_update else []
        turn_id = literal(turn_row_for_call_change(keys), Integer)
        sel = select(Call.id, turn_id, now)
    else:
        sel = select(Turn.call_id, Turn.id, now)
    if stmt.whereclause is not None:
        sel = sel.where(stmt.whereclause)
    session.connection().execute(insert(OUTBOX).from_select(["call_id", "turn_id", "created_at"], sel))
    remember(session, outbox)


def _after_commit(session):
    session.info.pop(CLEARED_KEY, None)
    outbox = session.info.pop(PENDING_KEY, None)
    if outbox is not None:
        outbox.wake()


def _forget(session):
    session.info.pop(CLEARED_KEY, None)
    session.info.pop(PENDING_KEY, None)


def record_inserted_turn(session, call_id: int, turn_id: int) -> None:
    """A turn written by a Core INSERT (the call log's fast path, which no flush hook sees): with
    Elasticsearch, its outbox row in the same transaction, and the drainer woken after commit."""
    outbox = _outbox_of_app()
    if outbox is None:
        return
    session.connection().execute(insert(OUTBOX).values(call_id=call_id, turn_id=turn_id, created_at=utcnow()))
    remember(session, outbox)
