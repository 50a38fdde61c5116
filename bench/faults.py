"""Fault injection (issue #13): does a caller ever hear silence, and is anything said ever lost?

Four parts, each on the real service (gunicorn, ONE gevent worker) with the local OpenAI-compatible
streaming server of the tests as its LLM and real WebSocket calls (bench/fault_support.py):

1. Database outage: 20 calls on a throwaway PostgreSQL; each asks a few questions on a fixed
   schedule; PostgreSQL is stopped for OUTAGE_S in the middle (some calls start during it), started
   again, the calls hang up, and the log is left to settle (bounded). Turns said (caller prompts sent,
   bot answers and their pieces received) vs turns in the log, and calls with a `calls` row.
2. kill -9: 20 answers streaming slowly on SQLite; the worker is killed with SIGKILL while they stream,
   gunicorn starts a new one (its start-up work: abandoned-call sweep, any replay); pieces the clients
   received more than KILL_GRACE_S before the kill vs the bot text logged for those answers.
3. Slow models: for each bad behaviour of the model, prompt -> first spoken piece, and how the
   answer ends (a whole sentence or the closing phrase, never a stray word). Default deadlines.
4. A client that never reads: the worker's RSS at idle vs while one socket sends prompts (and frames
   that each get an `error`) for NEVER_READ_S seconds without reading a byte.

`python -m bench faults` (about 2 minutes). The schedule is fixed (no randomness), so runs compare
across code changes. BENCH_FAULT_PARTS ("outage,kill,slow,never") picks parts, BENCH_FAULT_CALLS (20)
the calls of the outage and the kill. The log is counted until everything said is in it, or it has
not changed for some seconds (bounded): a spool that replays later is waited for, within reason.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import websocket

from .fault_support import Said, at, count, llm_server, rss_mb, run_all, run_call, settle, turn_source, wait_for_new_worker, \
    worker, worker_pid

TITLE = "Faults: database outage, kill -9, slow models, a client that never reads"

CALLS = int(os.environ.get("BENCH_FAULT_CALLS", "20"))
QUESTIONS = 4  # per call in the outage
OUTAGE_AT, OUTAGE_S = 3.0, 8.0  # seconds after the first call starts
KILL_AT = 2.5  # seconds after the first prompt of the kill part
KILL_GRACE_S = 0.25  # pieces heard this close to the kill may be lost (issue #13)
NEVER_READ_S = 10.0
TARGET_FIRST_SPEECH_S = 3.5
TARGET_RSS_MB = 50.0

FAST_ANSWER = "Мы работаем с понедельника по пятницу с 8:30 до 17:30. Суббота и воскресенье — выходные."
# Eight short sentences: a piece about every half second at SLOW_TOKEN_S.
SLOW_ANSWER = " ".join(f"Это предложение номер {w} из нашего длинного ответа." for w in
                       ("один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь"))
SLOW_TOKEN_S = 0.06
NO_END = " ".join(["очень длинный ответ без единой точки и без конца"] * 25)  # 250 words, no sentence end
HALF = "Доставка по Екатеринбургу бесплатная. В другие города мы отправляем оборудование транспортной компанией."
# For the client that never reads: a long answer (~110 KB as UTF-8), whole sentences a chunk.
LONG_SENTENCES = [f"Пункт {i}: доставка по Екатеринбургу бесплатная, в другие города транспортной компанией."
                  for i in range(600)]
LONG_KB = len(" ".join(LONG_SENTENCES).encode()) // 1024

# (name, caption, FakeOpenAI settings)
MODES = [
    ("ping", "keep-alive pings (`: ping`), never a token", dict(mode="ping", ping_every=0.5)),
    ("slow-words", "a word every 3 s", dict(answer=FAST_ANSWER, token_delay=3.0)),
    ("no-end", "fast tokens (20 a second), no sentence end", dict(answer=NO_END, token_delay=0.05)),
    ("stall", "half an answer, then a stall (keep-alives only)",
     dict(answer=HALF, stall_after=8, stall_seconds=60.0, ping_every=0.5)),
    ("late", "first token after 6 s, then fast", dict(answer=FAST_ANSWER, first_token_delay=6.0)),
    ("hang", "never answers (no byte)", dict(mode="hang")),
]


def _set(llm, **settings):
    llm.reset()
    for k, v in settings.items():
        setattr(llm, k, v)


# -- 1. database outage ------------------------------------------------------------------------------


def outage(srv, pg, llm, qs, calls: int = CALLS, questions: int = QUESTIONS, outage_at: float = OUTAGE_AT,
           outage_s: float = OUTAGE_S, settle_quiet: float = 10.0, settle_max: float = 60.0) -> dict:
    """`pg`: the PgCluster the worker `srv` writes to (stopped and started here)."""
    _set(llm, answer=FAST_ANSWER, token_delay=0.02)
    t0 = time.monotonic() + 1.0
    # A quarter of the calls start while the database is away: they must get a row too.
    late = max(1, calls // 4)
    starts = [t0 + i * 0.1 for i in range(calls - late)]
    starts += [t0 + outage_at + 1.0 + i * max(0.2, outage_s - 3.0) / late for i in range(late)]
    hangup_at = max(starts) + 1.5 + questions * 2.5 + 1.0
    said = [Said(f"outage-{i}-{int(time.time())}") for i in range(calls)]

    def script(i):
        def go(call, s):
            at(starts[i])
            call.setup(call_id=s.vox_id, caller=f"+7912{i:07d}")
            for q in range(questions):
                at(starts[i] + 1.5 + q * 2.5)
                question = qs[(i + q) % len(qs)]
                s.prompts.append(question)
                call.ask(question, timeout=15)
            at(hangup_at)
            call.hangup()
            time.sleep(0.5)  # the server finalizes the call before the socket goes
        return lambda: run_call(srv, said[i], go)

    def fault():
        at(t0 + outage_at)
        pg.stop()
        stopped = time.monotonic()
        at(stopped + outage_s)
        pg.start()
        window.append((stopped - t0, time.monotonic() - t0))

    window: list = []
    run_all([script(i) for i in range(calls)] + [fault])
    result, waited = settle(srv.database_url, said, quiet_s=settle_quiet, max_s=settle_max)
    result.update(waited_s=waited, window=window[0] if window else None, calls=calls, questions=questions,
                  quiet_s=settle_quiet)
    return result


# -- 2. kill -9 during answers ----------------------------------------------------------------------------


SWEEP_WAIT_S = 20.0


def kill(srv, llm, qs, calls: int = CALLS, kill_at: float = KILL_AT, settle_quiet: float = 8.0,
         settle_max: float = 40.0) -> dict:
    _set(llm, answer=SLOW_ANSWER, token_delay=SLOW_TOKEN_S)
    said = [Said(f"kill-{i}-{int(time.time())}") for i in range(calls)]
    ready = time.monotonic() + 2.0
    t0 = ready + 1.0  # every call has its greeting by then
    killed: list[float] = []

    def script(i):
        def go(call, s):
            at(ready - 1.5 + i * 0.05)
            call.setup(call_id=s.vox_id, caller=f"+7913{i:07d}")
            at(t0 + i * 0.1)  # spread over 2 s, so the kill meets answers at every stage
            s.prompts.append(qs[i % len(qs)])
            call.ask(qs[i % len(qs)], timeout=15)
        return lambda: run_call(srv, said[i], go)

    old = worker_pid(srv)

    def fault():
        at(t0 + kill_at)
        os.kill(old, signal.SIGKILL)
        killed.append(time.monotonic())

    run_all([script(i) for i in range(calls)] + [fault])
    restarted = time.monotonic()
    wait_for_new_worker(srv, old)
    restart_s = time.monotonic() - restarted
    before = killed[0] - KILL_GRACE_S
    result, waited = settle(srv.database_url, said, before=before, quiet_s=settle_quiet, max_s=settle_max)
    # The new worker's start-up sweep closes the killed worker's calls as lost, with what was said: the
    # calls are counted again until it has (bounded), and how long that took is reported.
    swept_from = time.monotonic()
    while result["calls_open"] and time.monotonic() - swept_from < SWEEP_WAIT_S:
        time.sleep(0.5)
        result = count(srv.database_url, said, before)
    result["swept_s"] = round(time.monotonic() - swept_from + waited, 1) if not result["calls_open"] else None
    streaming = sum(1 for s in said for a, got in s.answers.items()
                    if a != "greeting" and any(w < killed[0] for _, w in got))
    result.update(waited_s=waited, restart_s=restart_s, streaming=streaming, calls=calls, quiet_s=settle_quiet)
    return result


# -- 3. slow models ---------------------------------------------------------------------------------------


def slow_models(srv, llm, qs, modes=MODES) -> list[dict]:
    from metrotest_bot.bot_settings import BotSettings
    from metrotest_bot.rag.speakable import split_text
    from metrotest_bot.rag.speech import speech_form

    closing = [speech_form(p) for p in split_text(BotSettings().cut_short_phrase)]
    rows = []
    for name, caption, settings in modes:
        _set(llm, **settings)
        said = Said(f"slow-{name}-{int(time.time())}")
        row = {"mode": name, "caption": caption}

        def go(call, s):
            call.setup(call_id=s.vox_id)
            s.prompts.append(qs[0])
            sent = time.monotonic()
            frames = call.ask(qs[0], timeout=60)
            texts = [f for f in frames if f.get("type") == "text"]
            first = next((i for i, f in enumerate(call.received) if f.get("answerId") == texts[0]["answerId"]), None)
            row["first_s"] = call.times[first] - sent if first is not None else None
            row["total_s"] = time.monotonic() - sent
            pieces = [f["text"] for f in texts if f.get("text")]
            row["pieces"] = len(pieces)
            row["ending"] = _ending(pieces, closing, llm)
            row["last_piece"] = pieces[-1] if pieces else ""
            row["answer_id"] = texts[0]["answerId"]
            call.hangup()

        run_call(srv, said, go, timeout=60)
        row["errors"] = said.errors
        row["source"] = turn_source(srv.database_url, row.get("answer_id"))
        rows.append(row)
        print(f"[bench faults] slow model {name}: first speech {row.get('first_s')}, ending {row.get('ending')}",
              flush=True)
    llm.reset()
    return rows


def _ending(pieces: list[str], closing: list[str], llm) -> str:
    if not pieces:
        return "silence"
    if len(pieces) >= len(closing) and pieces[-len(closing):] == closing:
        return "closing phrase"
    last = pieces[-1].rstrip("»\"') ")
    if last.endswith((".", "!", "?", "…")):
        return "whole sentence"
    return "stray words"


# -- 4. a client that never reads -----------------------------------------------------------------------


def never_reader(srv, llm, qs, seconds: float = NEVER_READ_S, tail: float = 5.0) -> dict:
    # Whole sentences a chunk: a ~LONG_KB KB answer per prompt costs the model server little.
    _set(llm, chunks=[s + " " for s in LONG_SENTENCES])
    pid = worker_pid(srv)
    time.sleep(1.0)
    idle = rss_mb(pid)
    # A tiny receive buffer: the kernel holds little on our side, so the server meets the non-reader soon.
    ws = websocket.create_connection(f"{srv.ws_url}?token={srv.token}", subprotocols=["chat"], timeout=5,
                                     sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    sent = {"prompts": 0, "frames": 0}
    cut_at = None
    peak = idle
    started = time.monotonic()
    tick = 0
    ws.send(json.dumps({"type": "setup", "callId": f"never-reads-{int(time.time())}", "from": "+79120000009",
                        "to": "+73430000000"}))
    while time.monotonic() - started < seconds + tail:
        if cut_at is None:
            if time.monotonic() - started < seconds:
                # 2.5 final prompts a second (under the 3/s limit), 20 frames a second that each get an `error`.
                frames = [{"type": "prompt", "text": qs[tick % len(qs)], "last": True}] if tick % 4 == 0 else []
                frames += [{"type": "no-such-type", "n": tick}] * 2
            else:  # then a frame a second: the client learns of a cut only by writing
                frames = [{"type": "no-such-type"}] if tick % 10 == 0 else []
            try:
                for f in frames:
                    ws.send(json.dumps(f, ensure_ascii=False))
                    sent["frames"] += 1
                    sent["prompts"] += f["type"] == "prompt"
            except (OSError, websocket.WebSocketException):
                cut_at = time.monotonic() - started
        tick += 1
        peak = max(peak, rss_mb(pid))
        time.sleep(0.1)
    try:
        ws.close(timeout=1)
    except Exception:
        pass
    return {"idle": idle, "peak": peak, "growth": peak - idle, "after": rss_mb(pid), "cut_at": cut_at,
            "seconds": seconds, "tail": tail, **sent}


# -- the section --------------------------------------------------------------------------------------------

PARTS = [p for p in os.environ.get("BENCH_FAULT_PARTS", "outage,kill,slow,never").split(",") if p]


def run() -> str:
    load_before = os.getloadavg()[0]
    out: dict = {"kill": {}}
    base = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    try:
        with llm_server() as llm:
            _run_parts(out, base, llm)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return report(out, load_before)


def _run_parts(out: dict, base: Path, llm) -> None:
    from tests.support.pg_cluster import PgCluster

    # ABANDONED_SWEEP_S: the production default, so a worker sweeps at its start.
    env = dict(ABANDONED_SWEEP_S="300")
    if {"outage", "kill"} & set(PARTS):
        with PgCluster() as pg, worker(base / "pg", pg.url, llm, **env) as (srv, qs):
            if "outage" in PARTS:
                out["outage"] = _timed("outage", outage, srv, pg, llm, qs)
            if "kill" in PARTS:
                out["kill"]["PostgreSQL"] = _timed("kill (PostgreSQL)", kill, srv, llm, qs)
    if {"slow", "never", "kill"} & set(PARTS):
        with worker(base / "sqlite", f"sqlite:///{base / 'sqlite' / 'calls.db'}", llm, **env) as (srv, qs):
            if "slow" in PARTS:
                out["slow"] = _timed("slow models", slow_models, srv, llm, qs)
            if "never" in PARTS:
                out["never"] = _timed("never-reader", never_reader, srv, llm, qs)
            if "kill" in PARTS:
                out["kill"]["SQLite"] = _timed("kill (SQLite)", kill, srv, llm, qs)


def _timed(name, fn, *args):
    started = time.monotonic()
    result = fn(*args)
    print(f"[bench faults] {name}: {result} ({time.monotonic() - started:.0f} s)", flush=True)
    return result


def _lost(said: int, logged: int) -> str:
    lost = said - logged
    return f"**{lost}**" if lost else "0"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def report(out: dict, load_before: float) -> str:
    lines = [
        f"The real service: gunicorn with ONE gevent worker (gunicorn.conf.py, `wsgi:app`), the sample KB, the "
        f"LLM a local OpenAI-compatible streaming server (tests/support/openai_server.py) driven through the "
        f"real `openai` client, calls over real WebSockets (websocket-client, a thread each). The schedule is "
        f"fixed, so runs compare across code changes. Load average when the run began: {load_before:.1f} on "
        f"{os.cpu_count()} CPUs (shared machine). Targets (issue #13): nothing said is lost in either fault; "
        f"first speech ≤ {TARGET_FIRST_SPEECH_S} s in every slow-model mode; a worker with one never-reading "
        f"client within {TARGET_RSS_MB:.0f} MB of idle.", ""]
    if "outage" in out:
        o = out["outage"]
        w = o.get("window") or (float("nan"), float("nan"))
        lines += [
            "### 1. Database outage during calls", "",
            f"{o['calls']} calls on a throwaway PostgreSQL (tests/support/pg_cluster.py); {o['calls'] - max(1, o['calls'] // 4)} "
            f"start at once, {max(1, o['calls'] // 4)} while the database is away; each asks {o['questions']} "
            f"questions 2.5 s apart (a two-sentence answer, streamed fast), then hangs up. PostgreSQL is stopped "
            f"(`pg_ctl stop -m fast`) {w[0]:.1f} s after the first call and started again at {w[1]:.1f} s. Then the "
            f"log is counted until everything said is in it, or it stops changing for {o['quiet_s']:g} s (waited "
            f"{o['waited_s']:.0f} s). *Said* is what the clients sent (final prompts) and received (`text` frames); "
            f"a piece counts as logged when the bot turn's speech form (`turns.spoken`) holds it, in order.", "",
            "| | said | logged | lost |", "|---|---:|---:|---:|",
            f"| calls (a `calls` row) | {o['calls']} | {o['calls_with_row']} | {_lost(o['calls'], o['calls_with_row'])} |",
            f"| caller turns | {o['caller_said']} | {o['caller_logged']} | {_lost(o['caller_said'], o['caller_logged'])} |",
            f"| bot turns (greetings, answers) | {o['bot_said']} | {o['bot_logged']} | {_lost(o['bot_said'], o['bot_logged'])} |",
            f"| bot pieces | {o['pieces_said']} | {o['pieces_logged']} | {_lost(o['pieces_said'], o['pieces_logged'])} |",
            "",
            f"Calls left «идёт» after hang-up: {o['calls_open']}; duplicate `calls` rows: {o['extra_rows']}; calls "
            f"whose client saw an error: {o['errors']}. Target (nothing lost): "
            f"{_verdict(o['caller_logged'] == o['caller_said'] and o['pieces_logged'] == o['pieces_said'] and o['calls_with_row'] == o['calls'])}.",
            ""]
    if out.get("kill"):
        k0 = next(iter(out["kill"].values()))
        lines += [
            "### 2. kill -9 during answers", "",
            f"{k0['calls']} calls; each asks one question, 0.1 s apart; the answer (eight short sentences) streams "
            f"a word every {SLOW_TOKEN_S * 1000:.0f} ms, a piece about every half second. {KILL_AT:g} s after the "
            f"first question the worker gets SIGKILL while the answers stream; gunicorn starts a new worker (its "
            f"start-up work: abandoned-call sweep, any replay). *Spoken* = pieces the clients received more than "
            f"{KILL_GRACE_S} s before the kill; *logged* = those the bot turn's `spoken` holds, in order, once "
            f"the log settled (everything in it, or no change for {k0['quiet_s']:g} s).", "",
            "| database | answers streaming | new worker answers after, s | calls with a row | caller turns said / logged "
            "| bot turns said / logged | pieces spoken / logged / **lost** | calls still «идёт» (closed as lost after, s) "
            "| target |",
            "|---|---:|---:|---:|---|---|---|---:|:---:|"]
        for db_kind, k in out["kill"].items():
            ok = k["pieces_logged"] == k["pieces_said"] and k["caller_logged"] == k["caller_said"]
            lines.append(
                f"| {db_kind} | {k['streaming']} | {k['restart_s']:.1f} | {k['calls_with_row']} / {k['calls']} "
                f"| {k['caller_said']} / {k['caller_logged']} | {k['bot_said']} / {k['bot_logged']} "
                f"| {k['pieces_said']} / {k['pieces_logged']} / {_lost(k['pieces_said'], k['pieces_logged'])} "
                f"| {k['calls_open']} ({k.get('swept_s') if k.get('swept_s') is not None else '—'}) | {_verdict(ok)} |")
        lines.append("")
    if "slow" in out:
        lines += [
            "### 3. Slow models: time to first speech", "",
            "One call per mode; default deadlines (`FIRST_SPEECH_DEADLINE` 3 s, `LLM_STALL_TIMEOUT` 4 s, "
            "`LLM_TOTAL_TIMEOUT` 20 s). *First speech* = final prompt sent → first `text` frame of the answer; "
            "*ending*: the last pieces are the closing phrase, or the last piece is a whole sentence, or "
            "«stray words».", "",
            "| model behaviour | first speech, s | answer done, s | pieces | spoken (log's `source`) | ending | target |",
            "|---|---:|---:|---:|---|---|:---:|"]
        for r in out["slow"]:
            first = r.get("first_s")
            ok = first is not None and first <= TARGET_FIRST_SPEECH_S and r.get("ending") in (
                "closing phrase", "whole sentence") and not r["errors"]
            lines.append(f"| {r['caption']} | {first if first is None else f'{first:.2f}'} "
                         f"| {r.get('total_s', float('nan')):.1f} | {r.get('pieces', 0)} | {r.get('source') or '—'} "
                         f"| {r.get('ending', '—')} "
                         f"| {_verdict(ok)} |")
        errs = [f"{r['mode']}: {r['errors'][0]}" for r in out["slow"] if r["errors"]]
        if errs:
            lines.append(f"\nErrors: {'; '.join(errs)}")
        lines.append("")
    if "never" in out:
        n = out["never"]
        cut = f"cut off by the server after {n['cut_at']:.1f} s" if n["cut_at"] is not None else "not cut off"
        lines += [
            "### 4. A client that never reads", "",
            f"One socket (receive buffer 4 KB) sends `setup`, then for {n['seconds']:g} s 2.5 final prompts a "
            f"second (each answered by a ~{LONG_KB} KB answer, whole sentences a chunk; a new prompt cuts the answer "
            f"before) and 20 frames a second that each get an `error`, then a frame a second for {n['tail']:g} s, "
            f"and never reads: {n['prompts']} prompts, {n['frames']} frames sent; {cut}. Worker RSS (/proc VmRSS) "
            f"sampled every 0.1 s.", "",
            "| worker RSS idle, MB | peak, MB | growth, MB | at the end, MB | target |", "|---:|---:|---:|---:|:---:|",
            f"| {n['idle']:.0f} | {n['peak']:.0f} | {n['growth']:.1f} | {n['after']:.0f} "
            f"| {_verdict(n['growth'] <= TARGET_RSS_MB)} |",
            ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
