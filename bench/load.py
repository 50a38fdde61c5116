"""Load: many concurrent calls on ONE gunicorn gevent worker, against a streaming LLM (issue #16).

Three processes besides this one:
- a local OpenAI-compatible server (gevent) streaming like a hosted model: the first word after
  FIRST_TOKEN_DELAY, then one word every TOKEN_DELAY, a ~40-word answer whose first sentence is
  four words long; it times itself: request received -> the word after the first sentence written
  (the word that tells a splitter the sentence is over);
- gunicorn with ONE gevent worker (the real service: gunicorn.conf.py, wsgi:app, GUNICORN_WORKERS=1),
  SQLite call log, the offline KB index of the demo site;
- call clients (gevent + websocket-client, in CLIENT_PROCS processes so they are not the
  bottleneck): each call connects, sends `setup`, asks QUESTIONS_PER_CALL questions at
  random moments, waits for each answer's `last`, then holds the call open until told.

For each step (100, 300, 500 concurrent calls) it reports prompt -> first `text` frame as the
client sees it, as a ratio of the ideal: the model's own first sentence confirmed by the next
word — in theory (first token + 4 words), or as the LLM server itself delivered it in the same
step, whichever is longer —, the milliseconds the server adds over that ideal, errors, and the
worker's CPU per answer (utime + stime of the worker process from /proc, over the whole step,
divided by the answers). A last, separate step runs py-spy on the worker (when installed) and
summarises where the worker's CPU goes.

`python -m bench load`. BENCH_STEPS ("100,300,500") sets the steps, BENCH_PAUSE ("1,6") the
caller's pause before each question in seconds, BENCH_PROFILE_CALLS (100; 0: no profile) the
profiled step, BENCH_GUNICORN_CONF another gunicorn config, BENCH_IDLE_S (0: not measured) how long
the worker's CPU is also measured with every call open and silent (left out of CPU per answer),
BENCH_REPEAT (3) how many times the 100- and 300-call steps run (the run with the median CPU per
answer is reported, every run's CPU listed).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

TITLE = "Voice: concurrent calls on one gevent worker"

ROOT = Path(__file__).resolve().parents[1]
SHARED_KB = ROOT.parent / "shared" / "kb" / "Метротест_САЙТ.txt"
SHARED_QUESTIONS = ROOT.parent / "shared" / "kb" / "eval_dev.jsonl"
SAMPLE_KB = ROOT / "metrotest_bot" / "rag" / "sample_kb" / "metrotest_sample.txt"
SAMPLE_QUESTIONS = ["во сколько вы открываетесь", "сколько стоит доставка", "какая гарантия на оборудование",
                    "сколько стоит поверка пресса", "какой у вас адрес", "сколько стоит пресс ПИ-2000"]

# A hosted model as the caller would meet it (issue #16): 300 ms to the first token, then a word
# every 15 ms. The answer: ~40 words, the first sentence four words long.
FIRST_TOKEN_DELAY = 0.3
TOKEN_DELAY = 0.015
ANSWER = ("Доставка по Екатеринбургу бесплатная. В другие города мы отправляем оборудование транспортной "
          "компанией. Отгружаем обычно в течение пяти рабочих дней после поступления оплаты на счёт. Если "
          "нужно, наш менеджер подберёт надёжного перевозчика и заранее рассчитает стоимость доставки до "
          "вашего склада.")
# The post-call summary the worker asks the model for (non-streamed): counted apart from the answers.
SUMMARY = "Клиент спросил о доставке; бот ответил."
QUESTIONS_PER_CALL = 3
PAUSE_S = tuple(float(x) for x in os.environ.get("BENCH_PAUSE", "1,6").split(","))  # before each question
CLIENT_PROCS = 2
STEPS = [int(x) for x in os.environ.get("BENCH_STEPS", "100,300,500").split(",") if x.strip()]
PROFILE_CALLS = int(os.environ.get("BENCH_PROFILE_CALLS", "100"))
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "0"))  # > 0: also the worker's CPU with every call open and silent
# Targets of issue #16, one worker, at 100 and 300 calls (500 is reported).
TARGET_STEPS = (100, 300)
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))  # runs of each target step
TARGET_P50, TARGET_P99 = 1.10, 1.25
TARGET_CPU_MS = 8.0
TOKEN = "bench-token"

# The same harness run on the code before the issue #16 work in bench/, voice/calllog.py,
# rag/speakable.py and rag/generate.py (see BEFORE_NOTE), kept for comparison.
BEFORE_NOTE = ("commit 1a8b096 (this harness on the code before the issue #16 changes), 2026-11-30 08:08 UTC, load average 2.2 on the shared 2-CPU machine.")
BEFORE: dict = {'rows': [{'n': 100,
           'calls': 100,
           'answers': 300,
           'errors': 0,
           'client': {50: 388.6, 95: 425.1, 99: 444.2},
           'ideal': {50: 363.6, 95: 366.8, 99: 368.4},
           'added': {50: 25.0, 95: 58.3, 99: 75.8},
           'ratio': {50: 1.069, 95: 1.159, 99: 1.206},
           'cpu_ms_per_answer': 27.4,
           'worker_cpu': 0.4,
           'llm_cpu': 0.04,
           'clients_cpu': 0.043,
           'rss_idle': 182.227,
           'rss_open': 194.504,
           'ok': False},
          {'n': 300,
           'calls': 300,
           'answers': 900,
           'errors': 0,
           'client': {50: 3557.0, 95: 6586.1, 99: 6721.9},
           'ideal': {50: 364.9, 95: 377.9, 99: 385.5},
           'added': {50: 3192.1, 95: 6208.3, 99: 6336.3},
           'ratio': {50: 9.748, 95: 17.429, 99: 17.435},
           'cpu_ms_per_answer': 21.333,
           'worker_cpu': 0.584,
           'llm_cpu': 0.041,
           'clients_cpu': 0.043,
           'rss_idle': 192.555,
           'rss_open': 217.992,
           'ok': False},
          {'n': 500,
           'calls': 500,
           'answers': 1500,
           'errors': 0,
           'client': {50: 6151.9, 95: 10068.9, 99: 10730.1},
           'ideal': {50: 364.2, 95: 371.7, 99: 375.8},
           'added': {50: 5787.7, 95: 9697.2, 99: 10354.3},
           'ratio': {50: 16.893, 95: 27.09, 99: 28.552},
           'cpu_ms_per_answer': 19.48,
           'worker_cpu': 0.723,
           'llm_cpu': 0.05,
           'clients_cpu': 0.052,
           'rss_idle': 212.133,
           'rss_open': 241.453,
           'ok': False}]}
BEFORE_PROFILE = '945 samples at 100 Hz over 300 answers (≈31.5 ms sampled per answer).\n\n| component (first match in the stack) | share of samples | ms per answer |\n|---|---:|---:|\n| LLM client (openai, httpx, httpcore, h11) | 35% | 11.0 |\n| call log (voice/calllog.py, SQLAlchemy) | 30% | 9.3 |\n| retrieval (engine.search: analysis, Haystack pipeline, scoring) | 13% | 4.0 |\n| call socket (simple_websocket, wsproto, sender, frames) | 9% | 2.9 |\n| gevent hub, HTTP server, other | 7% | 2.3 |\n| speech form (rag/speech.py) | 2% | 0.7 |\n| answer plumbing (rag/answer.py) | 2% | 0.6 |\n| sentence splitter (rag/speakable.py) | 1% | 0.4 |\n| call session (voice/session.py, the rest) | 1% | 0.2 |\n| other SQL (settings, KB version, reports) | 1% | 0.2 |\n\n| own frame (where the CPU is spent) | share |\n|---|---:|\n| `SocketMixin.send (gevent/_socketcommon.py)` | 7.6% |\n| `Hub.run (gevent/hub.py)` | 5.3% |\n| `DefaultDialect.do_execute (sqlalchemy/engine/default.py)` | 2.0% |\n| `DefaultDialect.do_commit (sqlalchemy/engine/default.py)` | 1.8% |\n| `get_origin (typing.py)` | 1.8% |\n| `SocketMixin._internal_connect (gevent/_socketcommon.py)` | 1.6% |\n| `_transform_recursive (openai/_utils/_transform.py)` | 1.5% |\n| `SQLCompiler.construct_params (sqlalchemy/sql/compiler.py)` | 1.5% |\n| `_speech_form (metrotest_bot/rag/speech.py)` | 1.5% |\n| `SocketMixin.recv (gevent/_socketcommon.py)` | 1.4% |\n| `_Condition.notify_one (gevent/_threading.py)` | 1.4% |\n| `_get_protocol_attrs (typing.py)` | 1.3% |'


# -- the LLM server (its own process) --------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Words, each with its leading space and trailing punctuation: one streamed chunk each."""
    import re

    return re.findall(r"\s*\S+", text)


def ideal_ms() -> float:
    """The model's first sentence confirmed by the next word: first token + one delay per later word."""
    first_end = next(i for i, t in enumerate(tokenize(ANSWER)) if t.rstrip().endswith("."))
    return (FIRST_TOKEN_DELAY + (first_end + 1) * TOKEN_DELAY) * 1000


def llm_server_main(port_file: str) -> None:
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from gevent.pywsgi import WSGIServer

    tokens = tokenize(ANSWER)
    first_end = next(i for i, t in enumerate(tokens) if t.rstrip().endswith("."))  # last word of sentence one
    stats = {"first_sentence_ms": [], "requests": 0, "completed": 0, "closed": 0, "summaries": 0}

    def chunk(content=None, finish=None, role=None):
        delta = {}
        if role:
            delta["role"] = role
        if content is not None:
            delta["content"] = content
        obj = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": int(time.time()),
               "model": "bench", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()

    # Built once: the server's own CPU must not be what is measured.
    first_chunk = chunk(content="", role="assistant")
    token_chunks = [chunk(content=t) for t in tokens]
    last_chunks = chunk(finish="stop") + b"data: [DONE]\n\n"

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/stats":
            body = json.dumps(stats).encode()
            if "reset" in environ.get("QUERY_STRING", ""):
                stats.update(first_sentence_ms=[], requests=0, completed=0, closed=0, summaries=0)
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        started = time.monotonic()
        try:
            streamed = json.loads(environ["wsgi.input"].read() or b"{}").get("stream", False)
        except ValueError:
            streamed = True
        if not streamed:  # the post-call summary (reports/llm_summary.py): one JSON completion, not an answer
            stats["summaries"] += 1
            body = json.dumps({"id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
                               "model": "bench", "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                   "role": "assistant", "content": SUMMARY}}]}, ensure_ascii=False).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        stats["requests"] += 1
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])

        def stream():
            try:
                gevent.sleep(FIRST_TOKEN_DELAY)
                yield first_chunk
                for i, chunk_bytes in enumerate(token_chunks):
                    yield chunk_bytes
                    if i == first_end + 1:  # written: the first sentence and the word confirming it
                        stats["first_sentence_ms"].append((time.monotonic() - started) * 1000)
                    gevent.sleep(TOKEN_DELAY)
                yield last_chunks
                stats["completed"] += 1
            except GeneratorExit:
                stats["closed"] += 1
                raise

        return stream()

    server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
    server.init_socket()
    Path(port_file).write_text(str(server.server_port))
    server.serve_forever()


# -- call clients (their own processes) --------------------------------------------------------


def clients_main(spec_json: str) -> None:
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import gevent.event
    import websocket

    spec = json.loads(spec_json)
    rng = random.Random(spec["seed"])
    release = gevent.event.Event()
    results = {"first_piece_ms": [], "errors": [], "answers": 0, "calls": 0}
    asked = gevent.event.Event()
    pending = [spec["calls"]]

    def recv(ws):
        frame = json.loads(ws.recv())
        if frame.get("type") == "error":
            raise RuntimeError(f"error frame: {frame}")
        return frame

    def one_call(i):
        ws = None
        try:
            gevent.sleep(rng.uniform(0, spec["ramp_s"]))
            ws = websocket.create_connection(f"{spec['url']}?token={TOKEN}", subprotocols=["chat"], timeout=60)
            ws.send(json.dumps({"type": "setup", "callId": f"bench-{spec['seed']}-{i}", "from": f"+7912{i:07d}",
                                "to": "+73430000000"}))
            greeting = recv(ws)
            assert greeting["answerId"] == "greeting", greeting
            while not greeting.get("last"):  # the greeting comes a sentence a frame
                greeting = recv(ws)
            results["calls"] += 1
            for q in range(QUESTIONS_PER_CALL):
                gevent.sleep(rng.uniform(*spec["pause"]))
                question = spec["questions"][(i + q) % len(spec["questions"])]
                sent = time.monotonic()
                ws.send(json.dumps({"type": "prompt", "text": question, "last": True, "confidence": 0.9}))
                first = recv(ws)
                got = time.monotonic()
                if first.get("type") != "text" or first.get("text") != spec["first_piece"]:
                    raise RuntimeError(f"unexpected first piece: {first}")
                results["first_piece_ms"].append((got - sent) * 1000)
                frame = first
                while not frame.get("last"):
                    frame = recv(ws)
                results["answers"] += 1
        except Exception as exc:
            results["errors"].append(f"{type(exc).__name__}: {exc}"[:200])
        finally:
            pending[0] -= 1
            if pending[0] == 0:
                asked.set()
        release.wait()  # hold the call open while the worker's memory is measured
        if ws is not None:
            try:
                ws.send(json.dumps({"type": "hangup", "reason": "bench"}))
                ws.close(timeout=2)
            except Exception:
                pass

    greenlets = [gevent.spawn(one_call, i) for i in range(spec["calls"])]
    asked.wait()
    print(json.dumps({"held": True}), flush=True)
    gevent.get_hub().threadpool.spawn(sys.stdin.readline).get()  # the orchestrator says: release
    release.set()
    gevent.joinall(greenlets, timeout=30)
    print(json.dumps(results), flush=True)


# -- the orchestrator --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _worker_pid(master: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("no gunicorn worker")


def _questions(kb: Path, questions_file: Path | None, app) -> list[str]:
    """Questions the KB answers (so the LLM is asked) that are not transfer/goodbye requests."""
    from metrotest_bot.rag import get_engine
    from metrotest_bot.voice import intents

    if questions_file and questions_file.exists():
        candidates = [json.loads(line)["question"] for line in questions_file.read_text().splitlines() if line.strip()]
    else:
        candidates = SAMPLE_QUESTIONS
    with app.app_context():
        engine = get_engine()
        engine.passage_count()  # builds the index into DATA_DIR, so the worker only loads it
        picked = [q for q in candidates if engine.retrieve(q)[1] and intents.detect(q) is None]
    if not picked:
        raise RuntimeError(f"no answerable questions for {kb}")
    return picked


def _get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _run_step(n, ws_url, llm_url, questions, first_piece, worker_pid, llm_pid, seed, profile_to=None):
    _get_json(llm_url + "/stats?reset=1")
    rss_idle = _rss_mb(worker_pid)
    cpu_worker, cpu_llm = _cpu_s(worker_pid), _cpu_s(llm_pid)
    per_proc = [n // CLIENT_PROCS + (1 if i < n % CLIENT_PROCS else 0) for i in range(CLIENT_PROCS)]
    procs = []
    spy = None
    if profile_to is not None:
        # Sampling without pausing the worker; idle (the hub waiting in epoll) is left out.
        spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record",
                                "--pid", str(worker_pid), "--format", "raw", "--nolineno", "--nonblocking",
                                "--rate", os.environ.get("BENCH_SPY_RATE", "100"), "-o", str(profile_to)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    started = time.monotonic()
    for i, calls in enumerate(per_proc):
        spec = {"url": ws_url, "calls": calls, "questions": questions, "first_piece": first_piece,
                "seed": seed * 100 + i, "ramp_s": min(5.0, max(1.0, n / 100)), "pause": PAUSE_S}
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.load", "--clients", json.dumps(spec)],
                                      cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for p in procs:  # every call has asked its questions and is still open
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("a client process died")
    asking_s = time.monotonic() - started
    cpu_asking = _cpu_s(worker_pid) - cpu_worker
    cpu_llm = _cpu_s(llm_pid) - cpu_llm
    cpu_clients = sum(_cpu_s(p.pid) for p in procs)
    time.sleep(0.5)
    rss_open = _rss_mb(worker_pid)
    idle_cpu, idle_s = None, 0.0
    if IDLE_S > 0:  # every call open and silent: what the worker spends on calls that say nothing
        idle_started, idle_before = time.monotonic(), _cpu_s(worker_pid)
        time.sleep(IDLE_S)
        idle_s = time.monotonic() - idle_started
        idle_cpu = _cpu_s(worker_pid) - idle_before
    for p in procs:
        p.stdin.write("release\n")
        p.stdin.flush()
    results = [json.loads(p.stdout.readline() or "{}") for p in procs]
    for p in procs:
        p.wait(timeout=60)
    time.sleep(1.0)  # the worker finalizes the calls hung up last
    # setup, greeting, three answers and hangup of every call (the silent spell measured apart)
    cpu_step = _cpu_s(worker_pid) - cpu_worker - (idle_cpu or 0.0)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
    elapsed = time.monotonic() - started
    llm = _get_json(llm_url + "/stats")
    client_ms = [x for r in results for x in r.get("first_piece_ms", [])]
    errors = [e for r in results for e in r.get("errors", [])]
    answers = sum(r.get("answers", 0) for r in results)
    calls = sum(r.get("calls", 0) for r in results)
    llm_ms = llm["first_sentence_ms"]
    theory = ideal_ms()
    row = {
        "n": n, "calls": calls, "answers": answers, "errors": errors, "elapsed": elapsed,
        "client": {p: _pct(client_ms, p) for p in (50, 95, 99)},
        "llm": {p: _pct(llm_ms, p) for p in (50, 95, 99)},
        "rss_idle": rss_idle, "rss_open": rss_open, "llm_requests": llm["requests"],
        "worker_cpu": cpu_asking / asking_s, "llm_cpu": cpu_llm / asking_s, "clients_cpu": cpu_clients / asking_s,
        "cpu_ms_per_answer": cpu_step * 1000 / answers if answers else float("nan"),
        "idle_cpu": idle_cpu / idle_s if idle_cpu is not None else None,  # share of a core, all calls silent
    }
    if llm["requests"] != answers:
        errors.append(f"the LLM was asked {llm['requests']} times for {answers} answers")
    row["ideal"] = {p: max(theory, row["llm"][p]) if llm_ms else theory for p in (50, 95, 99)}
    row["added"] = {p: row["client"][p] - row["ideal"][p] for p in (50, 95, 99)}
    row["ratio"] = {p: row["client"][p] / row["ideal"][p] for p in (50, 95, 99)} if client_ms else {}
    row["ok"] = (not errors and answers == n * QUESTIONS_PER_CALL and bool(row["ratio"])
                 and row["ratio"][50] <= TARGET_P50 and row["ratio"][99] <= TARGET_P99
                 and row["cpu_ms_per_answer"] <= TARGET_CPU_MS)
    return row


# -- the profile -------------------------------------------------------------------------------

# Where a sample's CPU belongs: the first of these found anywhere in its stack (outermost frames
# checked first within one rule's list, rules in this order).
COMPONENTS = [
    # The writer's greenlet (logwriter.py) commits every call's records: before this entry its samples fell
    # to "other SQL" below, which read as settings and KB-version reads (issue #16, third round).
    ("call log (voice/calllog.py, its writer, SQLAlchemy)", ("voice/calllog.py", "voice/logwriter.py",
                                                             "voice/logapply.py", "voice/logcalls.py")),
    ("retrieval (engine.search: analysis, Haystack pipeline, scoring)", ("rag/engine.py", "haystack/")),
    ("other SQL (settings, KB version, reports)", ("sqlalchemy/",)),
    ("sentence splitter (rag/speakable.py)", ("rag/speakable.py", "razdel/")),
    ("speech form (rag/speech.py)", ("rag/speech.py", "rag/speech_numbers.py")),
    ("LLM client (openai, httpx, httpcore, h11)", ("openai/", "httpx", "httpcore", "h11/", "rag/generate.py")),
    ("answer plumbing (rag/answer.py)", ("rag/answer.py",)),
    ("call socket (simple_websocket, wsproto, sender, frames)", ("simple_websocket/", "wsproto/", "voice/sender.py",
                                                                  "voice/frames.py", "flask_sock/")),
    ("call session (voice/session.py, the rest)", ("voice/session.py", "voice/answer_task.py", "voice/recorder.py",
                                                   "voice/phrases.py")),
    ("gevent hub, HTTP server, other", ("",)),
]


def _frames(stack: str) -> list[str]:
    return [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]


def profile_summary(raw_path: Path, answers: int, top: int = 12) -> dict:
    """py-spy's raw (collapsed) stacks → shares of CPU samples by component and by own frame."""
    comp: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        if not frames:
            continue
        total += n
        for name, needles in COMPONENTS:
            if any(needle in f for f in frames for needle in needles):
                comp[name] += n
                break
        own[_short(frames[-1])] += n
    return {"samples": total, "answers": answers,
            "components": [(k, v / total) for k, v in comp.most_common()] if total else [],
            "own": [(k, v / total) for k, v in own.most_common(top)] if total else []}


def _short(frame: str) -> str:
    """"fn (/x/site-packages/pkg/mod.py)" → "fn (pkg/mod.py)"."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "metrotest_bot/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            if marker == "metrotest_bot/":
                where = "metrotest_bot/" + where
            break
    return f"{name} ({where})" if where else name


def profile_markdown(prof: dict) -> str:
    if not prof or not prof.get("samples"):
        return "(no profile)"
    lines = [f"{prof['samples']} samples at 100 Hz over {prof['answers']} answers "
             f"(≈{prof['samples'] * 10 / max(prof['answers'], 1):.1f} ms sampled per answer).", "",
             "| component (first match in the stack) | share of samples | ms per answer |", "|---|---:|---:|"]
    per_answer = prof["samples"] * 10 / max(prof["answers"], 1)  # 100 Hz: a sample is 10 ms
    lines += [f"| {k} | {v:.0%} | {v * per_answer:.1f} |" for k, v in prof["components"]]
    lines += ["", "| own frame (where the CPU is spent) | share |", "|---|---:|"]
    lines += [f"| `{k}` | {v:.1%} |" for k, v in prof["own"]]
    return "\n".join(lines)


def run() -> str:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets; children inherit

    load_before = os.getloadavg()[0]
    kb = SHARED_KB if SHARED_KB.exists() else SAMPLE_KB
    questions_file = SHARED_QUESTIONS if kb == SHARED_KB else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    data_dir = tmp / "data"
    data_dir.mkdir()
    env = {**os.environ, "DATA_DIR": str(data_dir), "KB_PATH": str(kb), "VOICE_TOKEN": TOKEN,
           "SECRET_KEY": "bench", "HAYSTACK_TELEMETRY_ENABLED": "False"}
    env.pop("DATABASE_URL", None)  # SQLite in DATA_DIR, whatever the shell has
    env.pop("ELASTICSEARCH_URL", None)
    for k in ("DATABASE_URL", "ELASTICSEARCH_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        os.environ.pop(k, None)  # the engine that picks the questions: offline, embedded, SQLite
    os.environ.update({k: env[k] for k in ("DATA_DIR", "KB_PATH", "VOICE_TOKEN", "SECRET_KEY")})

    from config import Config
    from metrotest_bot import create_app
    from metrotest_bot.extensions import db
    from metrotest_bot.rag.speakable import split_text
    from metrotest_bot.rag.speech import speech_form

    app = create_app(Config())
    with app.app_context():
        db.create_all()
    questions = _questions(kb, questions_file, app)
    first_piece = speech_form(split_text(ANSWER)[0])
    db_kind = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
    have_spy = bool(shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists())

    port_file = tmp / "llm.port"
    llm = subprocess.Popen([sys.executable, "-m", "bench.load", "--llm-server", str(port_file)], cwd=ROOT)
    gunicorn = None
    rows = []
    prof = None
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or llm.poll() is not None:
                raise RuntimeError("the LLM server did not start")
            time.sleep(0.05)
        llm_url = f"http://127.0.0.1:{port_file.read_text()}"
        port = _free_port()
        env.update(OPENAI_API_KEY="bench-key", OPENAI_BASE_URL=llm_url + "/v1", GUNICORN_BIND=f"127.0.0.1:{port}",
                   GUNICORN_WORKERS="1", GUNICORN_WORKER_CONNECTIONS="10000", LOG_LEVEL="warning",
                   LLM_FIRST_TOKEN_TIMEOUT="10", LLM_TOTAL_TIMEOUT="60", FIRST_SPEECH_DEADLINE="30",
                   VOICE_IDLE_TIMEOUT="300",
                   # The post-call summary is one model request per call, not part of an answer: off unless
                   # BENCH_SUMMARY_LLM=true (then the worker's CPU includes it, spread over the answers).
                   CALL_SUMMARY_LLM=os.environ.get("BENCH_SUMMARY_LLM", "false"))
        log = open(tmp / "gunicorn.log", "wb")
        gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", os.environ.get("BENCH_GUNICORN_CONF", str(ROOT / "gunicorn.conf.py")),
                                     "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or gunicorn.poll() is not None:
                    raise RuntimeError((tmp / "gunicorn.log").read_text()[-3000:])
                time.sleep(0.2)
        worker = _worker_pid(gunicorn.pid)
        ws_url = f"ws://127.0.0.1:{port}/voice/ws"

        _run_step(8, ws_url, llm_url, questions, first_piece, worker, llm.pid, seed=0)  # warm-up: imports, pools
        for seed, n in enumerate(STEPS, start=1):
            step_started = time.monotonic()
            # A target step runs REPEAT times (fresh calls each time): the worker's CPU per answer drifts by
            # a tenth between runs on this shared host; the run with the median CPU is reported, all listed.
            runs = [_run_step(n, ws_url, llm_url, questions, first_piece, worker, llm.pid, seed * 10 + k)
                    for k in range(REPEAT if n in TARGET_STEPS else 1)]
            row = sorted(runs, key=lambda x: x["cpu_ms_per_answer"])[len(runs) // 2]
            row["cpu_runs"] = [x["cpu_ms_per_answer"] for x in runs]
            row["ok"] = row["ok"] and not any(x["errors"] for x in runs)  # an error in any run fails the step
            rows.append(row)
            print(f"[bench load] N={n}: first piece p50 {row['client'][50]:.0f} ms / p99 {row['client'][99]:.0f} ms "
                  f"(ideal {row['ideal'][50]:.0f} / {row['ideal'][99]:.0f}), ratio p50 "
                  f"{row['ratio'].get(50, float('nan')):.2f} p99 {row['ratio'].get(99, float('nan')):.2f}, "
                  f"errors {len(row['errors'])}, CPU per answer {row['cpu_ms_per_answer']:.1f} ms, "
                  f"CPU: worker {row['worker_cpu']:.0%}, LLM server {row['llm_cpu']:.0%}, "
                  f"clients {row['clients_cpu']:.0%}, {time.monotonic() - step_started:.0f} s"
                  + (f", idle calls: worker {row['idle_cpu']:.1%}" if row.get("idle_cpu") is not None else ""), flush=True)
        if PROFILE_CALLS and have_spy:
            raw = tmp / "profile.txt"
            prow = _run_step(PROFILE_CALLS, ws_url, llm_url, questions, first_piece, worker, llm.pid,
                             seed=len(STEPS) + 1, profile_to=raw)
            if raw.exists():
                prof = profile_summary(raw, prow["answers"])
                prof["n"] = PROFILE_CALLS
                print("[bench load] profile:\n" + profile_markdown(prof), flush=True)
    finally:
        for proc in (gunicorn, llm):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    if os.environ.get("BENCH_LOAD_JSON"):  # the raw figures, for keeping a "before"
        Path(os.environ["BENCH_LOAD_JSON"]).write_text(json.dumps(
            {"rows": [{k: v for k, v in r.items() if k != "errors"} | {"errors": len(r["errors"])} for r in rows],
             "profile": prof}, ensure_ascii=False, indent=1, default=str))
    return _report(rows, kb, db_kind, len(questions), load_before, prof)


def _fmt_row(r) -> str:
    c, i, a, q = r["client"], r["ideal"], r["added"], r["ratio"]
    errors = r["errors"] if isinstance(r["errors"], int) else len(r["errors"])
    per_call = (r["rss_open"] - r["rss_idle"]) * 1024 / r["n"]
    return (f"| {r['n']} | {r['answers']} | {errors} | {c[50]:.0f} / {c[99]:.0f} | {i[50]:.0f} / {i[99]:.0f} "
            f"| **{q.get(50, float('nan')):.2f} / {q.get(99, float('nan')):.2f}** | +{a[50]:.0f} / +{a[99]:.0f} "
            f"| **{r['cpu_ms_per_answer']:.1f}**{_runs(r)} | {r['worker_cpu']:.0%} / {r['llm_cpu']:.0%} / {r['clients_cpu']:.0%} "
            f"| {per_call:.0f} | {_verdict(r)} |")


def _runs(r) -> str:
    runs = r.get("cpu_runs") or []
    return f" ({' / '.join(f'{x:.1f}' for x in runs)})" if len(runs) > 1 else ""


def _verdict(r) -> str:
    if r["n"] not in TARGET_STEPS:
        return "reported"
    return "met" if r["ok"] else "missed"


TABLE_HEAD = [
    "| calls | answers | errors | first piece p50 / p99, ms | ideal p50 / p99, ms | ratio p50 / p99 "
    "| server adds p50 / p99, ms | worker CPU per answer, ms | CPU: worker / LLM server / clients "
    "| RSS per open call, KB | targets |",
    "|---:|---:|---:|---|---|---|---|---:|---|---:|:---:|",
]


def _report(rows, kb, db_kind, n_questions, load_before, prof=None) -> str:
    if not rows:
        return "No step ran."
    n_words = len(tokenize(ANSWER))
    lines = [
        f"One gunicorn gevent worker (`GUNICORN_WORKERS=1`, gunicorn.conf.py), {db_kind} call log, the offline "
        f"KB index of `{kb.name}`; {n_questions} questions of `eval_dev.jsonl` that the offline gate answers "
        f"(so the LLM is asked: the LLM server counts its requests), asked in turn. The LLM is a local "
        f"OpenAI-compatible server (gevent, its own process) streaming a {n_words}-word answer a word a chunk: "
        f"first word after {FIRST_TOKEN_DELAY * 1000:.0f} ms, then one every {TOKEN_DELAY * 1000:.0f} ms; its "
        f"first sentence has four words. Clients: {CLIENT_PROCS} gevent processes with websocket-client; each call "
        f"sends `setup`, then asks {QUESTIONS_PER_CALL} questions, each after a random pause of "
        f"{PAUSE_S[0]:g}–{PAUSE_S[1]:g} s, and waits for the answer's `last`; calls start within 1–5 s. The LLM "
        f"deadlines are raised (FIRST_SPEECH_DEADLINE 30 s) so a late first piece is measured, not replaced. "
        f"Load average when the run began: {load_before:.1f} on {os.cpu_count()} CPUs (the machine is shared: "
        f"other work shows in the tails).",
        "",
        f"*First piece* = prompt sent → first `text` frame received, at the client. *Ideal* = the model's own "
        f"first sentence confirmed by the next word: {ideal_ms():.0f} ms in theory (first token + 4 words), or "
        f"the LLM server's own time from request to that word written in the same step, whichever is longer "
        f"(on 2 cores the LLM server and the clients slow down at a few hundred streams). *Server adds* = first "
        f"piece − ideal. *Worker CPU per answer* = utime + stime of the worker process (/proc/PID/stat) over the "
        f"whole step (each call's setup, greeting, three answers, hangup) ÷ answers; the post-call summary by the "
        f"model (one request per call) is off here (`BENCH_SUMMARY_LLM=true` includes it). The 100- and 300-call "
        f"steps run {REPEAT} times each with fresh calls (the host drifts by a tenth between runs): the row is the run "
        f"with the median CPU per answer, every run's CPU in brackets; an error in any run fails the step.",
        "",
        *TABLE_HEAD,
    ]
    lines += [_fmt_row(r) for r in sorted(rows, key=lambda r: r["n"])]
    lines += [
        "",
        f"- Targets (issue #16), one worker, at {' and '.join(map(str, TARGET_STEPS))} calls: p50 ≤ {TARGET_P50:.2f}, "
        f"p99 ≤ {TARGET_P99:.2f} of the ideal, worker CPU per answer ≤ {TARGET_CPU_MS:.0f} ms, no errors; "
        f"{max(STEPS)} calls reported.",
    ]
    errors = [e for r in rows for e in (r["errors"] if isinstance(r["errors"], list) else [])]
    if errors:
        lines.append(f"- First errors: {'; '.join(errors[:3])}")
    if BEFORE:
        lines += ["", f"Before: {BEFORE_NOTE}", "", *TABLE_HEAD]
        lines += [_fmt_row(r) for r in sorted(BEFORE["rows"], key=lambda r: r["n"])]
    lines += ["", "### Profile", "",
              f"py-spy on the worker (`py-spy record --format raw --nonblocking --rate 100`, idle left out) during a "
              f"separate step of {PROFILE_CALLS} calls after the measured ones. Each sample is given to the first "
              f"component whose file appears anywhere in its stack, in the order of the table.", ""]
    if BEFORE_PROFILE:
        lines += ["Before:", "", BEFORE_PROFILE, "", "Now:", ""]
    lines.append(profile_markdown(prof) if prof else "(not run: py-spy not installed, or BENCH_PROFILE_CALLS=0)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--llm-server"]:
        llm_server_main(sys.argv[2])
    elif sys.argv[1:2] == ["--clients"]:
        clients_main(sys.argv[2])
    else:
        print(run())
