"""Index calls as they are written: a flush hook, so code that writes calls needs no change.

Turns are indexed by what was said; calls by who called (name, company and
number, which the voice session sets at setup from the CRM). ORM flushes only:
rows written by bulk statements are indexed by `flask reindex-transcripts`.
"""
from __future__ import annotations

import logging

from flask import has_app_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from ..models import Call, Turn
from .base import TurnText
from .sql import call_search_text, turn_search_text

log = logging.getLogger(__name__)
_installed = False


def _changed(turn: Turn) -> bool:
    state = inspect(turn)
    return state.attrs.text.history.has_changes() or state.attrs.spoken_text.history.has_changes()


CALLER_FIELDS = ("caller", "caller_name", "caller_company")


def _caller_changed(call: Call) -> bool:
    state = inspect(call)
    return any(getattr(state.attrs, key).history.has_changes() for key in CALLER_FIELDS)


def _after_flush(session, flush_context):
    if not has_app_context():
        return
    turns = [o for o in session.new if isinstance(o, Turn)]
    turns += [o for o in session.dirty if isinstance(o, Turn) and _changed(o)]
    turns = [t for t in turns if t.call_id is not None and (t.text or t.spoken_text)]
    calls = [o for o in session.new if isinstance(o, Call)]
    calls += [o for o in session.dirty if isinstance(o, Call) and _caller_changed(o)]
    texts = [TurnText(call_id=c.id, turn_id=None, text=call_search_text(c.caller, c.caller_name, c.caller_company))
             for c in calls if c.id is not None]
    texts = [t for t in texts if t.text]
    texts += [TurnText(call_id=t.call_id, turn_id=t.id, text=turn_search_text(t.text, t.spoken_text)) for t in turns]
    if not texts:
        return
    from . import get_index

    try:
        get_index().index_turns(session, texts)
    except Exception:  # the call log matters more than its index, which can be rebuilt
        log.exception("transcript index: turns not indexed")


def install() -> None:
    """Listen on every ORM session, once per process."""
    global _installed
    if not _installed:
        event.listen(Session, "after_flush", _after_flush)
        _installed = True
