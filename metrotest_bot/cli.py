"""The app's CLI: `flask reindex`, `flask init-db`, `flask voice-url`, and each package's commands.

Commands that need the tables are decorated with database.needs_schema: on a fresh
DATA_DIR they create the schema first (the migrations), and a database behind its
migrations gets one line saying what to run instead of a traceback.
"""
import sys

import click
from flask.cli import with_appcontext

from .database import needs_schema


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or upgrade the schema: the same migrations as `flask db upgrade`."""
    from flask_migrate import upgrade

    upgrade()
    click.echo("База данных готова.")


@click.command("voice-url")
@click.option("--host", default="HOST", help="The public host name the scenario connects to.")
@with_appcontext
def voice_url_command(host):
    """Print the call WebSocket URL with its token (for Voximplant's application storage)."""
    from flask import current_app

    click.echo(f"Call WebSocket: wss://{host}/voice/ws?token={current_app.config['VOICE_TOKEN']}")


def _progress_bar():
    """A click progress bar on a terminal; nothing when output is piped."""
    if not sys.stdout.isatty():
        return None, None
    state = {"bar": None, "done": 0}

    def progress(done, total):
        if state["bar"] is None:
            state["bar"] = click.progressbar(length=total, label="Индексация", show_pos=True)
            state["bar"].__enter__()
        state["bar"].update(done - state["done"])
        state["done"] = done

    def finish():
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)

    return progress, finish


@click.command("reindex")
@click.option("--if-needed", is_flag=True, help="Only build when no persisted index of the KB in force exists.")
@with_appcontext
@needs_schema
def reindex_command(if_needed):
    """Rebuild the KB index (from KB_PATH, or the KB version in force) and the call-transcript index."""
    from .rag.cli import reindex_kb_step
    from .search.cli import reindex_transcripts_step

    # The other derived index first: call transcripts (SQL lemma table or Elasticsearch).
    reindex_transcripts_step(if_needed, *_progress_bar())
    reindex_kb_step(if_needed, *_progress_bar())


def init_app(app):
    from .admin.cli import create_admin_command
    from .crm.cli import crm_lookup_command
    from .rag.cli import ask_command

    app.cli.add_command(init_db_command)
    app.cli.add_command(voice_url_command)
    app.cli.add_command(reindex_command)
    app.cli.add_command(ask_command)
    app.cli.add_command(create_admin_command)
    app.cli.add_command(crm_lookup_command)
