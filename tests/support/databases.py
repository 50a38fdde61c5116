"""A fresh database per test: a SQLite file, or a new PostgreSQL database
when TEST_DATABASE_URL is set (the CI runs the suite both ways)."""
import contextlib
import os
import re
import time
import uuid
import warnings

import pytest

from config import normalize_db_url


def _pg_admin_conn(url: str):
    import psycopg

    # Connect to the server's maintenance DB to create/drop per-test databases.
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    base, _, _ = plain.rpartition("/")
    return psycopg.connect(base + "/postgres", autocommit=True)


@contextlib.contextmanager
def fresh_database(tmp_dir):
    """A new empty database for any fixture scope: SQLite in tmp_dir, or PostgreSQL."""
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        yield f"sqlite:///{tmp_dir / 'test.db'}"
        return
    # The creation time in the name lets a later run drop what a killed run left behind.
    name = f"mt_test_{int(time.time())}_{uuid.uuid4().hex[:8]}"
    with _pg_admin_conn(server) as conn:
        # UTF-8 whatever locale the cluster was created with (a bare CI image may have none: SQL_ASCII).
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\' '
                     "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    base = normalize_db_url(server).rpartition("/")[0]
    try:
        yield f"{base}/{name}"
    finally:
        _drop_database(server, name)


def _drop_database(server: str, name: str, attempts: int = 20) -> None:
    """DROP … WITH (FORCE); an autovacuum worker on the database (not ours to terminate without
    pg_signal_backend) ends within moments, so try again; a database left behind is dropped by a later run."""
    import psycopg

    for attempt in range(attempts):
        try:
            with _pg_admin_conn(server) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
            if attempt == attempts - 1:
                warnings.warn(f"could not drop test database {name}: left for the next run to drop")
                return
            time.sleep(0.5)


@pytest.fixture
def database_url(tmp_path):
    with fresh_database(tmp_path) as url:
        yield url


STALE_AFTER_S = 6 * 3600


def pytest_sessionstart(session):
    """Drop per-test PostgreSQL databases of runs killed hours ago (never those of a run in progress)."""
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        return
    with _pg_admin_conn(server) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'mt\\_test\\_%'")]
    for name in names:
        match = re.fullmatch(r"mt_test_(\d+)_[0-9a-f]+", name)
        if match and time.time() - int(match.group(1)) > STALE_AFTER_S:
            _drop_database(server, name, attempts=2)
