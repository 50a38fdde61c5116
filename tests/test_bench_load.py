"""bench/load.py's own arithmetic: the ideal first sentence, and the profile summary of py-spy's raw stacks."""
from bench import load


def test_the_answer_streams_like_the_issue_says():
    words = load.tokenize(load.ANSWER)
    assert 35 <= len(words) <= 45
    # first token after 300 ms, the four-word first sentence confirmed by the fifth word 4 × 15 ms later
    assert load.ideal_ms() == 360.0
    assert words[3].rstrip().endswith(".") and not any(w.rstrip().endswith(".") for w in words[:3])


def test_profile_summary_gives_each_sample_to_its_first_component(tmp_path):
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "process 1:\"gunicorn\";thread (0x1);CallSession._answer_main (metrotest_bot/voice/session.py);"
        "CallLog.save_bot_turn (metrotest_bot/voice/calllog.py);Session.commit (sqlalchemy/orm/session.py) 6\n"
        "thread (0x1);_Reader._run (metrotest_bot/rag/answer.py);ChunkStream.__iter__ (metrotest_bot/rag/generate.py);"
        "read (httpcore2/_sync/http11.py) 3\n"
        "thread (0x1);Hub.run (gevent/hub.py) 1\n"
        "thread (0x2);CallLogWriter._run (metrotest_bot/voice/logwriter.py);commit (metrotest_bot/voice/logapply.py);"
        "Session.commit (sqlalchemy/orm/session.py) 2\n", encoding="utf-8")
    prof = load.profile_summary(raw, answers=2)
    shares = dict(prof["components"])
    assert prof["samples"] == 12
    # The call log's writer is the call log, not "other SQL" (its greenlet's stacks name no calllog.py).
    assert shares["call log (voice/calllog.py, its writer, SQLAlchemy)"] == 8 / 12
    assert "other SQL (settings, KB version, reports)" not in shares
    assert shares["LLM client (openai, httpx, httpcore, h11)"] == 3 / 12
    assert shares["gevent hub, HTTP server, other"] == 1 / 12
    assert dict(prof["own"])["Session.commit (sqlalchemy/orm/session.py)"] == 8 / 12
    assert "| call log (voice/calllog.py, its writer, SQLAlchemy) | 67% | 40.0 |" in load.profile_markdown(prof)
