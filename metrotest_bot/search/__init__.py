"""Search over what was said in calls (the transcript index).

The admin panel uses only this interface:

    index = get_index()                       # per app, built once
    page = index.search(q, DateRange(...), limit, offset)   # -> SearchPage(call_ids, total, has_more)
    for ids in index.iter_call_ids(q, dates): ...           # every match, newest first (export)
    index.clear(); index.reindex_all()
    snippets(q, call_ids) / highlight(text, query_terms(q))  # highlighting by lemma

`init_app(app)` (create_app) installs the session hooks (hooks.py): turns are
indexed as they are flushed, so the code that writes calls needs no change,
with or without the admin panel. SQL models do not import this package.
The default backend is the SQL lemma table (sql.py); with ELASTICSEARCH_URL
set, Elasticsearch (elastic.py, fed after commit by outbox.py), with the SQL
table kept as its fallback. Modules here never import this facade.
"""
from __future__ import annotations

from .backend import get_index  # noqa: F401  (the interface)
from .base import DateRange, SearchPage, TranscriptIndex, TurnText  # noqa: F401
from .lemmas import query_terms  # noqa: F401
from .snippets import highlight, snippets  # noqa: F401


def init_app(app) -> None:
    from . import hooks
    from .cli import reindex_transcripts_command

    hooks.install()
    app.cli.add_command(reindex_transcripts_command)
    get_index(app)  # now, not lazily: the hooks index the very first write (and feed its outbox)
