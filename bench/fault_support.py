"""Pieces of the fault bench (bench/faults.py): the server under test, scripted calls, and the count
of what was said against what the call log holds.

The server is the real one (gunicorn, one gevent worker: tests/support/live_server.py), its LLM the
local OpenAI-compatible streaming server of the tests (tests/support/openai_server.py, run in this
process), its database SQLite or a throwaway PostgreSQL (tests/support/pg_cluster.py). Calls are
real WebSockets (tests/support/ws_client.py), one thread each.
"""
from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.support.apps import dispose, make_app
from tests.support.live_server import LiveServer, start_live_server
from tests.support.openai_server import FakeOpenAI
from tests.support.ws_client import CallClient

from .load import SAMPLE_KB, SAMPLE_QUESTIONS, _questions, _rss_mb, _worker_pid

IN_PROGRESS = "in_progress"  # models.OUTCOME_IN_PROGRESS


# -- the server ------------------------------------------------------------------------------------


@contextlib.contextmanager
def llm_server():
    fake = FakeOpenAI().start()
    try:
        yield fake
    finally:
        fake.stop()


def pick_questions(data_dir: Path, database_url: str) -> list[str]:
    """Questions of the sample KB that reach the LLM; builds the KB index, so the worker only loads it."""
    app = make_app(data_dir, database_url, KB_PATH=SAMPLE_KB)
    try:
        return _questions(SAMPLE_KB, None, app)
    finally:
        dispose(app)


@contextlib.contextmanager
def worker(data_dir: Path, database_url: str, llm: FakeOpenAI, **env):
    """One gunicorn gevent worker with the LLM configured; yields (server, questions)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    questions = pick_questions(data_dir, database_url) or SAMPLE_QUESTIONS
    settings = dict(OPENAI_API_KEY="bench-key", OPENAI_BASE_URL=llm.base_url, LLM_MODEL="bench-model",
                    KB_PATH=str(SAMPLE_KB), LOG_LEVEL="warning")
    srv = start_live_server(data_dir, database_url, **{**settings, **env})
    try:
        yield srv, questions
    finally:
        srv.stop()


def worker_pid(srv: LiveServer) -> int:
    return _worker_pid(srv.proc.pid)


def rss_mb(pid: int) -> float:
    return _rss_mb(pid)


def wait_for_new_worker(srv: LiveServer, old_pid: int, timeout: float = 60.0) -> int:
    """After a worker died: the master's next worker, answering /healthz (its start-up work done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = _worker_pid(srv.proc.pid)
        except (RuntimeError, OSError):
            pid = old_pid
        if pid != old_pid:
            try:
                urllib.request.urlopen(srv.url + "/healthz", timeout=5)
                return pid
            except urllib.error.HTTPError:
                return pid  # it answers (503 when degraded)
            except OSError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"no new worker within {timeout:g} s:\n{srv.log()[-2000:]}")


# -- scripted calls -------------------------------------------------------------------------------------


@dataclass
class Said:
    """What one call said and heard, as its client saw it."""

    vox_id: str
    prompts: list[str] = field(default_factory=list)  # final prompts sent: caller turns
    answers: dict = field(default_factory=dict)  # answerId -> [(piece in speech form, arrival time)]
    errors: list[str] = field(default_factory=list)

    def heard(self, frames, times) -> None:
        for frame, at in zip(frames, times):
            if frame.get("type") == "text" and frame.get("text"):
                self.answers.setdefault(frame["answerId"], []).append((frame["text"], at))


def run_call(srv: LiveServer, said: Said, script, timeout: float = 20.0) -> None:
    """Connect, then script(call, said); every frame received is kept in `said`, whatever happens."""
    call = None
    try:
        call = CallClient.connect(srv, timeout=timeout)
        script(call, said)
    except Exception as exc:  # a fault is expected to break some calls: counted, not raised
        said.errors.append(f"{type(exc).__name__}: {exc}"[:200])
    finally:
        if call is not None:
            said.heard(call.received, call.times)
            call.close()


def at(moment: float) -> None:
    """Sleep until time.monotonic() == moment (a fixed schedule makes runs comparable)."""
    left = moment - time.monotonic()
    if left > 0:
        time.sleep(left)


def run_all(targets) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)


# -- what the log holds -------------------------------------------------------------------------------


def _norm(s: str) -> str:
    return " ".join((s or "").split())


def pieces_logged(pieces: list[str], spoken: str | None) -> int:
    """How many of the pieces sent, in order, the logged speech form holds (a prefix of it)."""
    logged = _norm(spoken)
    k = 0
    for j in range(1, len(pieces) + 1):
        head = _norm(" ".join(pieces[:j]))
        if logged == head or logged.startswith(head + " "):
            k = j
        else:
            break
    return k


def count(database_url: str, said: list[Said], before: float | None = None) -> dict:
    """Said vs logged over the calls: caller turns, bot turns, pieces, calls with a row, calls left open.

    `before`: only pieces that arrived before this moment count as said (a kill's last instant is
    allowed to be lost)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            vox = [s.vox_id for s in said]
            calls = conn.execute(text("SELECT id, vox_call_id, outcome FROM calls")).all()
            rows = [c for c in calls if c.vox_call_id in set(vox)]
            ids = [c.id for c in rows]
            turns = conn.execute(text("SELECT call_id, role, text, answer_id, spoken FROM turns")).all()
    finally:
        engine.dispose()
    by_id = {c.id: c.vox_call_id for c in rows}
    turns_of: dict[str, list] = {}
    for t in turns:
        if t.call_id in by_id:
            turns_of.setdefault(by_id[t.call_id], []).append(t)
    out = Counter()
    for s in said:
        logged = turns_of.get(s.vox_id, [])
        caller = Counter(t.text for t in logged if t.role == "caller")
        sent = Counter(s.prompts)
        out["caller_said"] += sum(sent.values())
        out["caller_logged"] += sum(min(n, caller[p]) for p, n in sent.items())
        bot = {t.answer_id: t.spoken for t in logged if t.role == "bot" and t.answer_id}
        for answer_id, got in s.answers.items():
            pieces = [p for p, when in got if before is None or when < before]
            if not pieces:
                continue
            out["bot_said"] += 1
            out["pieces_said"] += len(pieces)
            k = pieces_logged(pieces, bot.get(answer_id))
            out["pieces_logged"] += k
            out["bot_logged"] += bool(k)
        out["errors"] += bool(s.errors)
    out["calls"] = len(said)
    out["calls_with_row"] = len({c.vox_call_id for c in rows})
    out["extra_rows"] = len(rows) - out["calls_with_row"]
    out["calls_open"] = len({c.vox_call_id for c in rows if c.outcome == IN_PROGRESS})
    out["rows"] = len(ids)
    return dict(out)


def complete(c: dict) -> bool:
    return (c["caller_logged"] == c["caller_said"] and c["pieces_logged"] == c["pieces_said"]
            and c["calls_with_row"] == c["calls"])


def settle(database_url: str, said: list[Said], before: float | None = None, quiet_s: float = 6.0,
           max_s: float = 40.0) -> tuple[dict, float]:
    """Count until everything said is logged, or nothing changed for quiet_s, or max_s passed.
    Returns the last count and the seconds waited."""
    started = time.monotonic()
    last, changed_at = None, started
    while True:
        c = count(database_url, said, before)
        now = time.monotonic()
        if c != last:
            last, changed_at = c, now
        if complete(c) or now - changed_at >= quiet_s or now - started >= max_s:
            return c, now - started
        time.sleep(0.5)


def turn_source(database_url: str, answer_id: str | None) -> str | None:
    """The logged source of an answer's bot turn: llm | offline | refusal | phrase."""
    if not answer_id:
        return None
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT source FROM turns WHERE answer_id = :a"), {"a": answer_id}).scalar()
    finally:
        engine.dispose()
