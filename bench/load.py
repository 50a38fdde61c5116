"""Load: many concurrent calls on ONE gunicorn gevent worker, against a streaming LLM.

Three processes besides this one:
- a local OpenAI-compatible server (gevent) streaming a fixed answer at a fixed delay per
  token; it times itself: request received -> last token of the first sentence written;
- gunicorn with one gevent worker (the real service: gunicorn.conf.py, wsgi:app);
- call clients (gevent + websocket-client, in CLIENT_PROCS processes so they are not the
  bottleneck): each call connects, sends `setup`, asks QUESTIONS_PER_CALL questions at
  random moments, waits for each answer's `last`, then holds the call open until told.

For each N it reports prompt -> first `text` frame as the client sees it, next to the LLM
server's own time to its first sentence in the same run, and their ratio; the worker's RSS
with N calls open against its RSS idle just before. N steps up (100, 200, 400, ...) while
the targets hold and the time budget lasts. `python -m bench load`; BENCH_CALLS sets the
first step (100), BENCH_MAX_SECONDS the budget (150), BENCH_GUNICORN_CONF another
gunicorn config (e.g. one that adds a profiler).
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TITLE = "Voice: concurrent calls on one gevent worker"

ROOT = Path(__file__).resolve().parents[1]
SHARED_KB = ROOT.parent / "shared" / "kb" / "Метротест_САЙТ.txt"
SHARED_QUESTIONS = ROOT.parent / "shared" / "kb" / "eval_dev.jsonl"
SAMPLE_KB = ROOT / "metrotest_bot" / "rag" / "sample_kb" / "metrotest_sample.txt"
SAMPLE_QUESTIONS = ["во сколько вы открываетесь", "сколько стоит доставка", "какая гарантия на оборудование",
                    "сколько стоит поверка пресса", "какой у вас адрес", "сколько стоит пресс ПИ-2000"]

# The LLM as the caller would meet it: ~0.5 s to the first token, then ~50 tokens a second.
FIRST_TOKEN_DELAY = 0.5
TOKEN_DELAY = 0.02
ANSWER = ("Доставка по Екатеринбургу бесплатная, а в другие города мы отправляем оборудование транспортной "
          "компанией. Отгружаем обычно в течение пяти рабочих дней после оплаты. Если нужно, менеджер подберёт "
          "перевозчика и заранее рассчитает стоимость.")
QUESTIONS_PER_CALL = 3
PAUSE_S = (1.0, 6.0)  # a caller's pause (listening, thinking) before each question
CLIENT_PROCS = 2
TARGET_P50, TARGET_P99 = 1.10, 1.25
TOKEN = "bench-token"


# -- the LLM server (its own process) --------------------------------------------------------


def tokenize(text: str) -> list[str]:
    import re

    return re.findall(r"\s*[\w-]+|\s*[^\w\s]", text)


def llm_server_main(port_file: str) -> None:
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from gevent.pywsgi import WSGIServer

    tokens = tokenize(ANSWER)
    first_end = next(i for i, t in enumerate(tokens) if t.strip() == ".")  # last token of sentence one
    stats = {"first_sentence_ms": [], "requests": 0, "completed": 0, "closed": 0}

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
                stats.update(first_sentence_ms=[], requests=0, completed=0, closed=0)
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        started = time.monotonic()
        environ["wsgi.input"].read()
        stats["requests"] += 1
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])

        def stream():
            try:
                gevent.sleep(FIRST_TOKEN_DELAY)
                yield first_chunk
                for i, chunk_bytes in enumerate(token_chunks):
                    yield chunk_bytes
                    if i == first_end:  # written: the first sentence is out
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
                gevent.sleep(rng.uniform(*PAUSE_S))
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


def _run_step(n, ws_url, llm_url, questions, first_piece, worker_pid, llm_pid, seed):
    _get_json(llm_url + "/stats?reset=1")
    rss_idle = _rss_mb(worker_pid)
    cpu_worker, cpu_llm = _cpu_s(worker_pid), _cpu_s(llm_pid)
    per_proc = [n // CLIENT_PROCS + (1 if i < n % CLIENT_PROCS else 0) for i in range(CLIENT_PROCS)]
    procs = []
    started = time.monotonic()
    for i, calls in enumerate(per_proc):
        spec = {"url": ws_url, "calls": calls, "questions": questions, "first_piece": first_piece,
                "seed": seed * 100 + i, "ramp_s": min(5.0, max(1.0, n / 100))}
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.load", "--clients", json.dumps(spec)],
                                      cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for p in procs:  # every call has asked its questions and is still open
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("a client process died")
    asking_s = time.monotonic() - started
    cpu_worker, cpu_llm = _cpu_s(worker_pid) - cpu_worker, _cpu_s(llm_pid) - cpu_llm
    cpu_clients = sum(_cpu_s(p.pid) for p in procs)
    time.sleep(0.5)
    rss_open = _rss_mb(worker_pid)
    for p in procs:
        p.stdin.write("release\n")
        p.stdin.flush()
    results = [json.loads(p.stdout.readline() or "{}") for p in procs]
    for p in procs:
        p.wait(timeout=60)
    elapsed = time.monotonic() - started
    llm = _get_json(llm_url + "/stats")
    client_ms = [x for r in results for x in r.get("first_piece_ms", [])]
    errors = [e for r in results for e in r.get("errors", [])]
    answers = sum(r.get("answers", 0) for r in results)
    calls = sum(r.get("calls", 0) for r in results)
    llm_ms = llm["first_sentence_ms"]
    row = {
        "n": n, "calls": calls, "answers": answers, "errors": errors, "elapsed": elapsed,
        "client": {p: _pct(client_ms, p) for p in (50, 95, 99)},
        "llm": {p: _pct(llm_ms, p) for p in (50, 95, 99)},
        "rss_idle": rss_idle, "rss_open": rss_open, "llm_requests": llm["requests"],
        "worker_cpu": cpu_worker / asking_s, "llm_cpu": cpu_llm / asking_s, "clients_cpu": cpu_clients / asking_s,
    }
    row["ratio"] = {p: row["client"][p] / row["llm"][p] for p in (50, 95, 99)} if llm_ms and client_ms else {}
    row["ok"] = (not errors and answers == n * QUESTIONS_PER_CALL and bool(row["ratio"])
                 and row["ratio"][50] <= TARGET_P50 and row["ratio"][99] <= TARGET_P99)
    return row


def run() -> str:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets; children inherit

    first_n = int(os.environ.get("BENCH_CALLS", "100"))
    load_before = os.getloadavg()[0]
    budget = float(os.environ.get("BENCH_MAX_SECONDS", "150"))
    kb = SHARED_KB if SHARED_KB.exists() else SAMPLE_KB
    questions_file = SHARED_QUESTIONS if kb == SHARED_KB else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    data_dir = tmp / "data"
    data_dir.mkdir()
    env = {**os.environ, "DATA_DIR": str(data_dir), "KB_PATH": str(kb), "VOICE_TOKEN": TOKEN,
           "SECRET_KEY": "bench", "HAYSTACK_TELEMETRY_ENABLED": "False"}
    os.environ.update({k: env[k] for k in ("DATA_DIR", "KB_PATH", "VOICE_TOKEN", "SECRET_KEY")})

    from config import Config
    from metrotest_bot import create_app
    from metrotest_bot.extensions import db
    from metrotest_bot.rag.speakable import split_text

    app = create_app(Config())
    with app.app_context():
        db.create_all()
    questions = _questions(kb, questions_file, app)
    first_piece = split_text(ANSWER)[0]
    db_kind = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]

    port_file = tmp / "llm.port"
    llm = subprocess.Popen([sys.executable, "-m", "bench.load", "--llm-server", str(port_file)], cwd=ROOT)
    gunicorn = None
    rows = []
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
                   LLM_FIRST_TOKEN_TIMEOUT="10", LLM_TOTAL_TIMEOUT="60", VOICE_IDLE_TIMEOUT="300")
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

        _run_step(4, ws_url, llm_url, questions, first_piece, worker, llm.pid, seed=0)  # warm-up: imports, pools
        started = time.monotonic()
        n, seed = first_n, 1
        while True:
            step_started = time.monotonic()
            row = _run_step(n, ws_url, llm_url, questions, first_piece, worker, llm.pid, seed)
            rows.append(row)
            print(f"[bench load] N={n}: p50 {row['client'][50]:.0f} ms vs LLM {row['llm'][50]:.0f} ms, "
                  f"ratio p50 {row['ratio'].get(50, float('nan')):.3f} p99 {row['ratio'].get(99, float('nan')):.3f}, "
                  f"errors {len(row['errors'])}, CPU: worker {row['worker_cpu']:.0%}, LLM server {row['llm_cpu']:.0%}, "
                  f"clients {row['clients_cpu']:.0%}, "
                  f"{time.monotonic() - step_started:.0f} s", flush=True)
            left = budget - (time.monotonic() - started)
            if left < 1.5 * (time.monotonic() - step_started):  # the next step takes a little longer
                break
            passed = [r["n"] for r in rows if r["ok"]]
            failed = [r["n"] for r in rows if not r["ok"]]
            if not failed:
                n = n * 2
            elif passed and min(failed) - max(passed) > max(passed) // 4:
                n = (max(passed) + min(failed)) // 2  # narrow the largest N down once or twice
            else:
                break
            seed += 1
    finally:
        for proc in (gunicorn, llm):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return _report(rows, kb, db_kind, len(questions), load_before)


def _report(rows, kb, db_kind, n_questions, load_before) -> str:
    if not rows:
        return "No step ran."
    first = rows[0]
    ok_rows = [r for r in rows if r["ok"]]
    best = max((r["n"] for r in ok_rows), default=None)
    missed = [r["n"] for r in rows if not r["ok"] and (best is None or r["n"] > best)]
    lines = [
        f"One gunicorn gevent worker (gunicorn.conf.py), {db_kind} call log, KB `{kb.name}` "
        f"({n_questions} answerable questions, asked in turn). The LLM is a local OpenAI-compatible server "
        f"(gevent, its own process) streaming a fixed {len(tokenize(ANSWER))}-token answer: first token after "
        f"{FIRST_TOKEN_DELAY * 1000:.0f} ms, then one every {TOKEN_DELAY * 1000:.0f} ms. Clients: "
        f"{CLIENT_PROCS} gevent processes with websocket-client; each call sends `setup`, then asks "
        f"{QUESTIONS_PER_CALL} questions, each after a random pause of {PAUSE_S[0]}–{PAUSE_S[1]} s, and waits "
        f"for the answer's `last`. The machine's load average when the run began: {load_before:.1f} "
        f"(on {os.cpu_count()} CPUs; other work on the machine shows in the tails).",
        "",
        "*Client* = prompt sent → first `text` frame received, as the client sees it. *LLM* = the LLM "
        "server's own time from request received to the last token of the first sentence written. The "
        "first piece cannot leave before the first token of the next sentence arrives (the splitter needs "
        "it to know the sentence is over), so one token delay is part of the ratio.",
        "",
        "| calls | answers | errors | client p50 / p95 / p99, ms | LLM p50 / p95 / p99, ms | ratio p50 / p95 / p99 "
        "| CPU: worker / LLM server / clients | worker RSS idle → N calls open, MB | per open call, KB | targets |",
        "|---:|---:|---:|---|---|---|---|---|---:|:---:|",
    ]
    for r in sorted(rows, key=lambda r: r["n"]):
        c, l_, q = r["client"], r["llm"], r["ratio"]
        per_call = (r["rss_open"] - r["rss_idle"]) * 1024 / r["n"]
        lines.append(
            f"| {r['n']} | {r['answers']} | {len(r['errors'])} | {c[50]:.0f} / {c[95]:.0f} / {c[99]:.0f} "
            f"| {l_[50]:.0f} / {l_[95]:.0f} / {l_[99]:.0f} "
            f"| {q.get(50, float('nan')):.3f} / {q.get(95, float('nan')):.3f} / {q.get(99, float('nan')):.3f} "
            f"| {r['worker_cpu']:.0%} / {r['llm_cpu']:.0%} / {r['clients_cpu']:.0%} | {r['rss_idle']:.0f} → {r['rss_open']:.0f} | {per_call:.0f} "
            f"| {'met' if r['ok'] else 'missed'} |")
    lines += [
        "",
        f"- Targets: p50 ≤ {TARGET_P50:.2f}×, p99 ≤ {TARGET_P99:.2f}× of the LLM server's own figure, no errors.",
        f"- At {first['n']} calls: ratio p50 {first['ratio'].get(50, float('nan')):.3f}, "
        f"p99 {first['ratio'].get(99, float('nan')):.3f}, {len(first['errors'])} errors — "
        f"{'targets met' if first['ok'] else 'targets MISSED'}.",
        f"- Largest number of concurrent calls one worker held with the targets met: "
        f"{best if best is not None else 'none of those tried'}"
        + (f" ({min(missed)} missed them)" if missed else " (the time budget ended the search first)") + ".",
        f"- Memory per open call (RSS growth / calls, each call having asked {QUESTIONS_PER_CALL} questions): "
        f"{(first['rss_open'] - first['rss_idle']) * 1024 / first['n']:.0f} KB at {first['n']} calls.",
    ]
    errors = [e for r in rows for e in r["errors"]]
    if errors:
        lines.append(f"- First errors: {'; '.join(errors[:3])}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--llm-server"]:
        llm_server_main(sys.argv[2])
    elif sys.argv[1:2] == ["--clients"]:
        clients_main(sys.argv[2])
    else:
        print(run())
