"""bench/faults.py in small: a few calls, a short outage, one slow mode, a kill of a worker with three
answers streaming. These check that the harness runs and counts what it should, and that an outage
loses no turn once the spool is replayed; not timings (the bench reports those)."""
import pytest

from bench import faults
from bench.fault_support import pieces_logged, worker
from tests.support import pg_cluster


def test_pieces_logged_is_the_prefix_of_the_pieces_that_the_log_holds():
    pieces = ["Первое предложение.", "Второе,", "и третье."]
    assert pieces_logged(pieces, "Первое предложение. Второе, и третье.") == 3
    assert pieces_logged(pieces, "Первое  предложение.\nВторое,") == 2
    assert pieces_logged(pieces, "Первое предложение. Второе, и третье. Четвёртое.") == 3
    assert pieces_logged(pieces, "Первое предложение") == 0  # a piece cut in the middle is not logged
    assert pieces_logged(pieces, None) == 0
    assert pieces_logged(pieces, "Второе, и третье.") == 0  # out of order


@pytest.mark.skipif(pg_cluster.binaries() is None, reason="no PostgreSQL server installed")
def test_outage_counts_what_was_said_and_what_the_log_holds(tmp_path, fake_openai):
    with pg_cluster.PgCluster() as pg, worker(tmp_path / "pg", pg.url, fake_openai) as (srv, qs):
        r = faults.outage(srv, pg, fake_openai, qs, calls=3, questions=2, outage_at=2.5, outage_s=3.0,
                          settle_quiet=6.0, settle_max=20.0)  # quiet: past a replay's backoff (CALLLOG_RETRY_MAX_S)
    assert r["window"] is not None and r["window"][1] - r["window"][0] >= 3.0
    assert r["errors"] == 0, "every call is answered through the outage"
    assert r["caller_said"] == 3 * 2
    assert r["bot_said"] == 3 + 3 * 2  # each call's greeting and its answers
    assert r["pieces_said"] >= r["bot_said"]
    # Once settled, the spool is merged: every turn said through the outage is in the log.
    assert r["caller_logged"] == r["caller_said"]
    assert r["bot_logged"] == r["bot_said"]
    assert r["bot_logged"] <= r["pieces_logged"] <= r["pieces_said"]
    assert r["calls_with_row"] <= 3
    md = faults.report({"outage": r, "kill": {}}, 0.0)
    assert "### 1. Database outage" in md and f"| caller turns | 6 | {r['caller_logged']} |" in md


def test_slow_model_and_kill_run_against_a_real_worker(tmp_path, database_url, fake_openai):
    with worker(tmp_path / "live", database_url, fake_openai, ABANDONED_SWEEP_S="300") as (srv, qs):
        stall = [m for m in faults.MODES if m[0] == "stall"]
        [slow] = faults.slow_models(srv, fake_openai, qs, modes=stall)
        killed = faults.kill(srv, fake_openai, qs, calls=3, kill_at=1.5, settle_quiet=1.0, settle_max=10.0)
    assert slow["errors"] == []
    assert 0 < slow["first_s"] < 30
    assert slow["ending"] == "closing phrase"  # the model's first sentence, then the cut-short phrase
    assert slow["source"] == "llm"
    assert killed["streaming"] >= 1
    assert killed["calls_with_row"] == 3 and killed["caller_said"] == 3
    assert killed["bot_said"] >= 3  # the greetings at least
    assert killed["pieces_logged"] <= killed["pieces_said"]
    md = faults.report({"slow": [slow], "kill": {"SQLite": killed}}, 0.0)
    assert "### 2. kill -9" in md and "### 3. Slow models" in md
