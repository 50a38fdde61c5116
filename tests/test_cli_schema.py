"""A newcomer's first commands: on a fresh DATA_DIR (no database yet) every CLI command that
needs the tables creates them (the migrations), and a database behind its migrations gets one
line saying what to run, never a traceback. Real `flask` processes, as a newcomer runs them."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLASK = [sys.executable, "-m", "flask"]


def flask(data_dir, database_url, *args, input=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ELASTICSEARCH_", "CRM_", "CALL_WEBHOOK_", "KB_"))}
    env.update(FLASK_APP="wsgi:app", DATA_DIR=str(data_dir), DATABASE_URL=database_url,
               HAYSTACK_TELEMETRY_ENABLED="False")
    return subprocess.run(FLASK + list(args), cwd=ROOT, env=env, input=input, capture_output=True,
                          text=True, timeout=120)


def test_reindex_on_a_fresh_data_dir_creates_the_schema(tmp_path, database_url):
    result = flask(tmp_path / "data", database_url, "reindex")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "flask db upgrade" in result.stderr  # it says what it did
    assert "Проиндексировано" in result.stdout
    again = flask(tmp_path / "data", database_url, "reindex", "--if-needed")
    assert again.returncode == 0, again.stderr
    assert "создаю схему" not in again.stderr and "Индекс уже готов" in again.stdout


def test_create_admin_first_then_the_usual_start(tmp_path, database_url):
    data = tmp_path / "data"
    result = flask(data, database_url, "create-admin", "newcomer", "--password", "Mt-first-start-2026!")
    assert result.returncode == 0, result.stderr
    # The schema it made is the migrations' own: `make run`'s `flask db upgrade` has nothing left to do.
    upgrade = flask(data, database_url, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert "Running upgrade" not in upgrade.stderr


def test_a_database_behind_its_migrations_gets_one_line(tmp_path, database_url):
    data = tmp_path / "data"
    assert flask(data, database_url, "db", "upgrade").returncode == 0
    assert flask(data, database_url, "db", "downgrade").returncode == 0
    for args in (["reindex"], ["reindex-transcripts"], ["ask", "до скольки вы работаете"]):
        result = flask(data, database_url, *args)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "flask db upgrade" in lines[0], result.stderr
