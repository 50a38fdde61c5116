"""The SQL database: SQLite in WAL mode with synchronous=NORMAL (metrotest_bot.database), the schema check of CLI commands."""
from sqlalchemy import text

from metrotest_bot.extensions import db
from tests.support.apps import dispose, make_app


def pragmas(app) -> tuple[str, int]:
    with app.app_context():
        try:
            with db.engine.connect() as conn:
                return (conn.execute(text("PRAGMA journal_mode")).scalar(),
                        conn.execute(text("PRAGMA synchronous")).scalar())
        finally:
            db.session.remove()


def test_sqlite_file_database_is_in_wal_mode_with_normal_sync(tmp_path):
    app = make_app(tmp_path / "data", f"sqlite:///{tmp_path / 'tuned.db'}")
    try:
        assert pragmas(app) == ("wal", 1)  # 1: NORMAL (the default is FULL, 2)
        with app.app_context():  # every new pooled connection gets it, not just the first
            db.engine.dispose()
        assert pragmas(app) == ("wal", 1)
    finally:
        dispose(app)
