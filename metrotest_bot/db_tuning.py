"""Database engine tuning that concerns the whole app, applied in create_app()."""
from sqlalchemy import event

from .extensions import db


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
