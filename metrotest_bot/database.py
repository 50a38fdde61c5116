"""The app's SQL database, for every package: engine tuning, the one-writer lock, the schema check.

- `init_app(app)` (create_app): SQLite in write-ahead-log mode.
- `write_lock()`: SQLite allows one writer; the worker's own writers (the call log,
  the search outbox, the webhook sender) take turns here.
- `needs_schema`: a CLI command that reads or writes tables makes sure they exist
  first (a fresh DATA_DIR gets the migrations) or says in one line what to run.
"""
from __future__ import annotations

import functools
import threading
from contextlib import nullcontext

import click
from sqlalchemy import event, inspect
from sqlalchemy.exc import OperationalError

from .extensions import db

# SQLite allows one writer. Its busy wait is a C loop that would stall every
# greenlet of the worker, so the worker's own writers take turns here instead.
SQLITE_WRITE_LOCK = threading.Lock()


def write_lock():
    """The SQLite writer lock of this process (a no-op context elsewhere); needs an app context."""
    return SQLITE_WRITE_LOCK if db.engine.dialect.name == "sqlite" else nullcontext()


def init_app(app) -> None:
    """On SQLite, write-ahead log and synchronous=NORMAL for the app's engine.

    A default (rollback-journal) commit waits for an fsync: 2 ms on an idle disk, over
    50 ms on a busy one, and under gevent every request and call of the worker waits
    with it (measured in bench/load.py: p50 of the first piece 1.1-2.3x the LLM's own
    time, against 1.06-1.09x with WAL). In WAL mode a commit appends to the log; a power
    cut may lose the last commits, an application crash loses nothing. PostgreSQL is
    untouched. One listener per engine.
    """
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


# -- the schema, for CLI commands ----------------------------------------------------------

UPGRADE_HINT = ("Схема базы данных не создана или устарела: выполните `flask db upgrade` "
                "(the database schema is missing or out of date: run `flask db upgrade`).")


def _migration_heads() -> tuple[set[str], set[str]]:
    """(revisions the database is at, head revisions of the migrations)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from flask import current_app

    config = current_app.extensions["migrate"].migrate.get_config()
    heads = set(ScriptDirectory.from_config(config).get_heads())
    with db.engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current, heads


def ensure_schema() -> None:
    """Needs an app context. An empty database gets the migrations (as `flask db upgrade`);
    one with tables missing, or behind the migrations, raises a ClickException of one line."""
    try:
        tables = set(inspect(db.engine).get_table_names())
    except OperationalError as exc:  # no server, wrong password, no such database
        raise click.ClickException(f"База данных недоступна (the database is unreachable): "
                                   f"{db.engine.url.render_as_string(hide_password=True)}: "
                                   f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}") from exc
    missing = set(db.metadata.tables) - tables
    if not tables:
        from flask_migrate import upgrade

        click.echo("База данных пуста: создаю схему (flask db upgrade)…", err=True)
        upgrade()
        db.session.remove()
        return
    if "alembic_version" in tables:
        current, heads = _migration_heads()
        if current != heads:
            raise click.ClickException(UPGRADE_HINT)
    elif missing:
        raise click.ClickException(UPGRADE_HINT)


def needs_schema(command):
    """Decorate a CLI command (inside `with_appcontext`) whose work needs the tables."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        ensure_schema()
        return command(*args, **kwargs)

    return wrapper
