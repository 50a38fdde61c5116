"""Index turns as they are written: a flush hook, so code that writes turns needs no change."""
from __future__ import annotations

import logging

from flask import has_app_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from ..models import Turn
from .base import TurnText
from .sql import turn_search_text

log = logging.getLogger(__name__)
_installed = False


def _changed(turn: Turn) -> bool:
    state = inspect(turn)
    return state.attrs.text.history.has_changes() or state.attrs.spoken_text.history.has_changes()


def _after_flush(session, flush_context):
    if not has_app_context():
        return
    turns = [o for o in session.new if isinstance(o, Turn)]
    turns += [o for o in session.dirty if isinstance(o, Turn) and _changed(o)]
    turns = [t for t in turns if t.call_id is not None and (t.text or t.spoken_text)]
    if not turns:
        return
    from . import get_index

    try:
        get_index().index_turns(session, [
            TurnText(call_id=t.call_id, turn_id=t.id, text=turn_search_text(t.text, t.spoken_text)) for t in turns
        ])
    except Exception:  # the call log matters more than its index, which can be rebuilt
        log.exception("transcript index: turns not indexed")


def install() -> None:
    """Listen on every ORM session, once per process."""
    global _installed
    if not _installed:
        event.listen(Session, "after_flush", _after_flush)
        _installed = True
