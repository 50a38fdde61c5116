"""Which transcript index an app uses: the SQL lemma table, or Elasticsearch when ELASTICSEARCH_URL is set."""
from __future__ import annotations

from flask import current_app

from .base import TranscriptIndex
from .sql import SqlTranscriptIndex


def _build(app) -> TranscriptIndex:
    if app.config.get("ELASTICSEARCH_URL"):
        from .elastic import ElasticTranscriptIndex  # the client library only where it is used

        return ElasticTranscriptIndex(app)
    return SqlTranscriptIndex(app)


def get_index(app=None) -> TranscriptIndex:
    """The app's index (the current app's when None), built once per app."""
    app = app or current_app._get_current_object()
    index = app.extensions.get("transcript_index")
    if index is None:
        index = app.extensions["transcript_index"] = _build(app)
    return index
