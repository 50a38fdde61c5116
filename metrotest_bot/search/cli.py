"""Rebuilding the transcript index from the call log: `flask reindex-transcripts`, and the
transcript half of `flask reindex` (metrotest_bot/cli.py)."""
from __future__ import annotations

import time

import click
from flask.cli import with_appcontext

from ..database import needs_schema
from .backend import get_index


def reindex_transcripts(progress=None, if_needed: bool = False) -> int | None:
    """Rebuild the transcript index of the current app from the SQL call log.

    Returns the number of calls indexed, or None when `if_needed` found
    nothing to do: the SQL index is kept up to date on every write, and the
    Elasticsearch one needs a rebuild only when its indexes are missing
    (the outbox would rebuild them at its next drain anyway).
    progress(done, total) follows the Elasticsearch rebuild.
    """
    index = get_index()
    if index.name != "elasticsearch":
        return None if if_needed else index.reindex_all()
    if if_needed and index.store.ready():
        return None
    return index.reindex_all(progress=progress)


def reindex_transcripts_step(if_needed: bool = False, progress=None, finish=None) -> None:
    """The transcript half of `flask reindex`: rebuild, then say what was done (in Russian).

    With --if-needed (`make run`), an unreachable Elasticsearch only warns:
    the service starts, and the outbox rebuilds the index once it answers.
    """
    from .documents import ES_ERRORS  # the client library only when it is needed

    started = time.monotonic()
    try:
        n = reindex_transcripts(progress=progress, if_needed=if_needed)
    except ES_ERRORS as exc:
        if if_needed:
            click.echo(f"Индекс разговоров: Elasticsearch недоступен ({exc}); "
                       "он будет построен, когда Elasticsearch ответит.", err=True)
            return
        raise click.ClickException(f"Индекс разговоров не перестроен: Elasticsearch недоступен ({exc}).") from exc
    finally:
        if finish:
            finish()
    if n is not None:  # nothing to say when nothing was needed (`make run` at every start)
        seconds = time.monotonic() - started
        click.echo(f"Индекс разговоров ({get_index().name}) перестроен: {n} звонков за {seconds:.2f} с.")


@click.command("reindex-transcripts")
@with_appcontext
@needs_schema
def reindex_transcripts_command():
    """Rebuild the call-transcript search index from the SQL call log."""
    started = time.monotonic()
    index = get_index()
    n = index.reindex_all()
    click.echo(f"Индекс разговоров ({index.name}) перестроен: {n} звонков за {time.monotonic() - started:.1f} с.")
