"""Schema migrations: they build exactly the schema the models describe.

Runs on the per-test database (SQLite, or PostgreSQL with TEST_DATABASE_URL),
so CI checks both. A model change without a migration fails here: run
`.venv/bin/flask db migrate -m "..."` and commit the generated file.
"""
import io
from contextlib import redirect_stdout

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

import config
from metrotest_bot import create_app
from metrotest_bot.extensions import db

from .support.apps import dispose


@pytest.fixture
def bare_app(tmp_path, database_url):
    """An app on an empty database: no create_all, migrations only."""
    app = create_app(config.TestConfig(DATA_DIR=tmp_path / "data", SQLALCHEMY_DATABASE_URI=database_url))
    yield app
    dispose(app)


def _script(app) -> ScriptDirectory:
    with app.app_context():
        return ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())


def _schema_diff(app) -> list:
    with app.app_context(), db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        return compare_metadata(ctx, db.metadata)


def _tables(app) -> set[str]:
    with app.app_context():
        return set(inspect(db.engine).get_table_names())


def test_one_head(bare_app):
    heads = _script(bare_app).get_heads()
    assert len(heads) == 1, f"migration branches diverge, merge them: flask db merge {' '.join(heads)}"


def test_flask_db_upgrade_builds_the_models_schema(bare_app):
    # The command `make run` uses.
    result = bare_app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output + repr(result.exception)

    diff = _schema_diff(bare_app)
    assert diff == [], (
        "metrotest_bot/models.py and the migrations disagree; run "
        "`.venv/bin/flask db migrate -m \"...\"` and commit the new file in metrotest_bot/migrations/versions/.\n"
        + "\n".join(map(repr, diff))
    )
    assert {t.name for t in db.metadata.sorted_tables} <= _tables(bare_app)


def test_every_revision_upgrades_and_downgrades_one_step_at_a_time(bare_app):
    revisions = list(reversed(list(_script(bare_app).walk_revisions())))  # oldest first
    with bare_app.app_context():
        for rev in revisions:
            flask_migrate.upgrade(revision=rev.revision)
        for rev in reversed(revisions):
            flask_migrate.downgrade(revision=rev.down_revision or "base")
    assert _tables(bare_app) <= {"alembic_version"}

    with bare_app.app_context():
        flask_migrate.upgrade()
    assert _schema_diff(bare_app) == []


def test_upgrade_keeps_rows(bare_app):
    from metrotest_bot.models import Call, Turn

    with bare_app.app_context():
        flask_migrate.upgrade()
        call = Call(vox_call_id="v-1", caller="+73430000000")
        call.turns.append(Turn(role="caller", text="Здравствуйте, доставка в Казань есть?"))
        db.session.add(call)
        db.session.commit()
        flask_migrate.upgrade()  # a second upgrade is a no-op, not an error
        assert db.session.scalar(db.select(Turn.text)) == "Здравствуйте, доставка в Казань есть?"


@pytest.mark.parametrize("url", ["postgresql+psycopg://u:p@127.0.0.1:1/x", "sqlite:///unused.db"])
def test_migrations_render_as_sql_for_each_dialect(tmp_path, url):
    """`flask db upgrade --sql` renders for PostgreSQL even where no server runs."""
    app = create_app(config.TestConfig(DATA_DIR=tmp_path / "data", SQLALCHEMY_DATABASE_URI=url))
    out = io.StringIO()
    with app.app_context(), redirect_stdout(out):
        flask_migrate.upgrade(sql=True)
    sql = out.getvalue()
    for table in db.metadata.tables:
        assert f"CREATE TABLE {table}" in sql
    if url.startswith("postgresql"):
        assert "TIMESTAMP WITH TIME ZONE" in sql
        assert "_alembic_tmp" not in sql  # batch mode copies tables on SQLite only; PostgreSQL can ALTER
