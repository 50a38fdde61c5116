"""An app per test with its own DATA_DIR and database."""
from contextlib import contextmanager
from pathlib import Path

import pytest

from config import TestConfig
from metrotest_bot import create_app
from metrotest_bot.extensions import db

SHARED_DIR = Path(__file__).resolve().parents[2].parent / "shared"
SHARED_KB = SHARED_DIR / "kb" / "Метротест_САЙТ.txt"
SHARED_EVAL = SHARED_DIR / "kb" / "eval_dev.jsonl"


def make_app(data_dir, database_url, **overrides):
    """An app on DATA_DIR and a database URL, tables created."""
    app = create_app(TestConfig(DATA_DIR=data_dir, SQLALCHEMY_DATABASE_URI=database_url, **overrides))
    with app.app_context():
        db.create_all()
    return app


def dispose(app):
    # A summarizer a test's call woke would go on polling a database the test is about to drop, and log
    # "call summary: round failed" after the suite. Only it is stopped: a second worker's webhook sender may
    # still be delivering the reports its summaries queued (test_two_workers_summarize_a_call_once).
    summarizer = app.extensions.get("call_summarizer")
    if summarizer is not None:
        summarizer.stop()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(tmp_path, database_url):
    app = make_app(tmp_path / "data", database_url)
    yield app
    dispose(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def shared_kb():
    if not SHARED_KB.exists():
        pytest.skip(f"{SHARED_KB} is not here (the demo KB lives in ../shared)")
    return SHARED_KB


@contextmanager
def llm_app_context(data_dir, database_url, fake_openai, **overrides):
    """An app whose LLM is the local OpenAI-compatible server, inside its app context."""
    settings = dict(OPENAI_API_KEY="sk-local", OPENAI_BASE_URL=fake_openai.base_url, LLM_MODEL="local-model",
                    LLM_FIRST_TOKEN_TIMEOUT=0.5, LLM_TOTAL_TIMEOUT=10)
    app = make_app(data_dir, database_url, **{**settings, **overrides})
    try:
        with app.app_context():
            yield app
    finally:
        dispose(app)
