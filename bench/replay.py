"""Replay before publishing: 200 distinct callers' questions asked offline of the KB in force and
of a candidate version (the same KB uploaded), as the panel's replay does (admin/replay.py).

`python -m bench replay` runs it as a section; `replay_timing(app, n)` is what the test calls.
"""
from __future__ import annotations

import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

TITLE = "Replay before publishing"
BENCH = Path(__file__).resolve().parent
SHARED_KB = BENCH.parents[1] / "shared" / "kb" / "Метротест_САЙТ.txt"


def bench_questions(n: int) -> list[str]:
    """`n` distinct questions from the benchmark sets (their phrasing is a caller's)."""
    from metrotest_bot.admin.replay import question_key

    seen, out = set(), []
    for path in sorted(BENCH.glob("retrieval_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            q = json.loads(line)["question"]
            key = question_key(q)
            if key and key not in seen:
                seen.add(key)
                out.append(q)
                if len(out) == n:
                    return out
    return out


def replay_timing(app, n: int = 200) -> tuple[float, int]:
    """Log `n` questions as calls, upload the KB in force again as a version, and time the replay
    (reading the questions, opening the candidate's index, asking both KBs). Returns (seconds, questions)."""
    from metrotest_bot.admin import replay
    from metrotest_bot.bot_settings import get_bot_settings
    from metrotest_bot.extensions import db
    from metrotest_bot.models import KB_STATUS_READY, Call, KBVersion, Turn
    from metrotest_bot.rag import get_engine
    from metrotest_bot.rag.versions import build_version
    from metrotest_bot.timeutil import utcnow

    with app.app_context():
        now = utcnow()
        for i, q in enumerate(bench_questions(n)):
            call = Call(started_at=now - timedelta(minutes=i + 1), outcome="completed")
            db.session.add(call)
            db.session.flush()
            db.session.add(Turn(call_id=call.id, seq=1, role="bot", kind="answer", text="…", question=q,
                                answered=True, created_at=now - timedelta(minutes=i)))
        kb_path = str(app.config["KB_PATH"])
        row = KBVersion(filename=Path(kb_path).name, stored_path=kb_path, status=KB_STATUS_READY)
        db.session.add(row)
        db.session.commit()
        build_version(row.id, kb_path)
        engine = get_engine()
        engine.current()  # the KB in force is loaded when calls are being answered

        started = time.monotonic()
        questions = replay.replay_questions(n)
        candidate = replay.open_index(app.config, row.id)
        result = replay.compare(engine.current(), candidate, questions, get_bot_settings(), app.config)
        seconds = time.monotonic() - started
        assert result["counts"]["same"] == len(questions), result["counts"]  # the same KB: no differences
        return seconds, len(questions)


def run() -> str:
    from config import TestConfig
    from metrotest_bot import create_app

    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"KB_PATH": SHARED_KB} if SHARED_KB.exists() else {}
        app = create_app(TestConfig(DATA_DIR=Path(tmp), SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp}/bench.db", **overrides))
        from metrotest_bot.extensions import db

        with app.app_context():
            db.create_all()
            passages = None
        seconds, n = replay_timing(app, 200)
        with app.app_context():
            from metrotest_bot.rag import get_engine

            passages = get_engine().passage_count()
            db.engine.dispose()
    return (f"{n} distinct questions asked offline of two KBs of {passages} passages each "
            f"(the KB in force and a candidate version): **{seconds:.2f} s** "
            f"({seconds / max(n, 1) * 1000:.1f} ms a question, both KBs).\n")


if __name__ == "__main__":
    print(run())
