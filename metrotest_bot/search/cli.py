"""`flask reindex-transcripts`: rebuild the transcript index from the call log."""
import time

import click
from flask.cli import with_appcontext


@click.command("reindex-transcripts")
@with_appcontext
def reindex_transcripts_command():
    """Rebuild the call-transcript search index from the SQL call log."""
    from . import get_index

    started = time.monotonic()
    index = get_index()
    n = index.reindex_all()
    click.echo(f"Индекс разговоров ({index.name}) перестроен: {n} звонков за {time.monotonic() - started:.1f} с.")
