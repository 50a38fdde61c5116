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
        "thread (0x1);Hub.run (gevent/hub.py) 1\n", encoding="utf-8")
    prof = load.profile_summary(raw, answers=2)
    shares = dict(prof["components"])
    assert prof["samples"] == 10
    assert shares["call log (voice/calllog.py, SQLAlchemy)"] == 0.6
    assert shares["LLM client (openai, httpx, httpcore, h11)"] == 0.3
    assert shares["gevent hub, HTTP server, other"] == 0.1
    assert dict(prof["own"])["Session.commit (sqlalchemy/orm/session.py)"] == 0.6
    assert "| call log (voice/calllog.py, SQLAlchemy) | 60% | 30.0 |" in load.profile_markdown(prof)
