"""Search over what was said in calls (the transcript index).

The admin panel uses only this interface:

    index = get_index()                       # per app, built once
    page = index.search(q, DateRange(...), limit, offset)   # -> SearchPage(call_ids, total, has_more)
    for ids in index.iter_call_ids(q, dates): ...           # every match, newest first (export)
    index.clear(); index.reindex_all()
    snippets(q, call_ids) / highlight(text, query_terms(q))  # highlighting by lemma

Turns are indexed as they are flushed (events.py), so the code that writes
calls needs no change. SQL models do not import this package.
The default backend is the SQL lemma table (sql.py); with ELASTICSEARCH_URL
set, an `elastic.py` module providing `ElasticTranscriptIndex(app)` is used
when present.
"""
from __future__ import annotations

import logging

from flask import current_app

from .base import DateRange, SearchPage, TranscriptIndex, TurnText  # noqa: F401
from .lemmas import query_terms  # noqa: F401
from .snippets import highlight, snippets  # noqa: F401
from .sql import SqlTranscriptIndex

log = logging.getLogger(__name__)


def _build(app) -> TranscriptIndex:
    if app.config.get("ELASTICSEARCH_URL"):
        try:
            from .elastic import ElasticTranscriptIndex
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.elastic":
                raise
            log.warning("ELASTICSEARCH_URL is set but there is no Elasticsearch transcript index; using SQL")
        else:
            return ElasticTranscriptIndex(app)
    return SqlTranscriptIndex(app)


def get_index(app=None) -> TranscriptIndex:
    app = app or current_app._get_current_object()
    index = app.extensions.get("transcript_index")
    if index is None:
        index = app.extensions["transcript_index"] = _build(app)
    return index


def init_app(app) -> None:
    from . import events
    from .cli import reindex_transcripts_command

    events.install()
    app.cli.add_command(reindex_transcripts_command)
    if app.config.get("ELASTICSEARCH_URL"):
        get_index(app)  # now, not lazily: its outbox hooks must see the very first write
