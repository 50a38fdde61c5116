"""Bounded call sockets (issue #13), against the live gunicorn/gevent server with real clients:
JSON depth, per-socket rate limits, and the slow consumer that never reads.
"""
import json
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest
import websocket

from metrotest_bot.bot_settings import BotSettings, invalidate, save_bot_settings
from tests.support.call_log import call_snapshot, eventually, finished_call
from tests.support.live_server import serving
from tests.support.ws_client import CallClient, Closed, set_up_call, text_of

QUESTION = "Сколько стоит доставка?"
SEND_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # No operator number: key 0 makes the bot speak its (here long) no-operator phrase.
    with serving(tmp_path_factory.mktemp("voice-limits"), OPERATOR_PHONE=None, SHARED_STATE_TTL=0,
                 VOICE_SEND_TIMEOUT=SEND_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT=3) as srv:
        yield srv


@pytest.fixture
def call(server):
    with set_up_call(server) as client:
        yield client


def worker_rss_mb(server) -> float:
    """Resident memory of the gunicorn worker (the master's only child)."""
    pid = server.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    for line in Path(f"/proc/{children[0]}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS")


def round_trip(call, text=QUESTION) -> float:
    """Seconds from a final prompt to the answer's last frame; then a pause, as a caller would."""
    started = time.monotonic()
    frames = call.ask(text, timeout=30)
    assert frames[-1].get("last") is True and text_of(frames), frames
    took = time.monotonic() - started
    time.sleep(0.5)  # a person does not ask three questions a second
    return took


# -- JSON depth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    "[" * 5000,
    '{"a":' * 5000,
    "[" * 40 + "]" * 40,  # valid JSON, but deeper than any protocol frame
    json.dumps({"type": "prompt", "text": "да", "last": True, "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}),
])
def test_deeply_nested_json_gets_an_error_and_the_call_goes_on(server, call, raw):
    call.send_raw(raw)
    error = call.recv()
    assert error["type"] == "error" and error["code"] == "too_deep", error
    frames = call.ask(QUESTION)
    assert frames[-1]["last"] is True and "Доставка" in text_of(frames)
    snap = eventually(lambda: call_snapshot(server, call.call_id))  # logged within CALLLOG_FLUSH_MS
    assert snap.outcome == "in_progress"


def test_brackets_inside_strings_do_not_count_as_depth(server, call):
    frames = call.ask("[" * 100 + " " + QUESTION + " " + "{" * 100)
    assert all(f["type"] == "text" for f in frames)


# -- rate limits --------------------------------------------------------------------------------


def test_frames_over_the_rate_get_one_rate_limited_error_and_the_call_goes_on(server, call):
    for i in range(150):  # partial results, far faster than any recognizer sends them
        call.prompt(f"частичный результат {i}", last=False)
    errors = []
    try:
        while True:
            frame = call.recv(timeout=1.5)
            errors.append(frame)
    except TimeoutError:
        pass
    assert errors and {f["type"] for f in errors} == {"error"}
    assert {f["code"] for f in errors} == {"rate_limited"}
    assert len(errors) <= 3  # reported, not echoed frame by frame
    time.sleep(1.0)  # the bucket refills
    frames = call.ask(QUESTION)
    assert frames[-1]["last"] is True and "Доставка" in text_of(frames)
    assert eventually(lambda: call_snapshot(server, call.call_id)).outcome == "in_progress"


def test_final_prompts_over_the_rate_start_no_answer(server, call):
    for i in range(20):
        call.prompt(f"{QUESTION} {i}")
    frames = call.recv_until(lambda f: f["type"] == "error", timeout=10)
    assert frames[-1]["code"] == "rate_limited"
    time.sleep(2.0)
    snap = call_snapshot(server, call.call_id)
    assert len([t for t in snap.turns if t.kind == "speech"]) <= 8  # a burst of 6, then 3 a second
    assert snap.outcome == "in_progress"


def _flood(server, n, started: threading.Event, result: dict):
    flood = CallClient.connect(server, timeout=30)
    result["call_id"] = flood.setup()["answerId"] and flood.call_id
    frame = json.dumps({"type": "prompt", "text": QUESTION, "last": True}, ensure_ascii=False)
    started.set()
    sent = 0
    t0 = time.monotonic()
    try:
        for _ in range(n):
            flood.send_raw(frame)
            sent += 1
    except (OSError, websocket.WebSocketException):
        pass  # the server closed it
    result["sent"], result["send_s"] = sent, time.monotonic() - t0
    try:
        result["closed"] = flood.expect_closed(timeout=30)
    except (TimeoutError, OSError) as exc:
        result["closed"] = exc
    flood.close()


def test_a_flood_of_final_prompts_is_cut_short_and_does_not_slow_another_call(server):
    other = CallClient.connect(server, timeout=30)
    try:
        other.setup()
        baseline = statistics.median(round_trip(other) for _ in range(3))
        started, result = threading.Event(), {}
        flooder = threading.Thread(target=_flood, args=(server, 3000, started, result))
        flooder.start()
        started.wait(30)
        during = [round_trip(other) for _ in range(3)]
        flooder.join(60)
        assert not flooder.is_alive()
        after = round_trip(other)
    finally:
        other.close()
    closed = result["closed"]
    assert isinstance(closed, Closed) and closed.code in (1008, None), closed
    snap = finished_call(server, result["call_id"], timeout=15)
    assert snap.outcome == "lost" and snap.end_reason == "rate limit exceeded"
    n_turns = len(snap.turns)
    assert n_turns <= 30, n_turns  # not thousands: a few answers a second at most
    time.sleep(2.0)
    assert len(call_snapshot(server, result["call_id"]).turns) == n_turns  # nothing still being worked through
    print(f"flood: {result['sent']} frames in {result['send_s']:.2f} s -> {n_turns} turns; other call round trip "
          f"{baseline:.3f} s before, {max(during):.3f} s at most during, {after:.3f} s after")
    assert max(during) < baseline + 2.0, (baseline, during)


# -- the slow consumer ----------------------------------------------------------------------------


LONG_PHRASE = "Сейчас я не могу вас соединить, позвоните, пожалуйста, в офис в будни с восьми до пяти. " * 400


def set_no_operator_phrase(server, phrase: str | None) -> None:
    with server.app.app_context():
        save_bot_settings({**BotSettings().to_dict(), **({"no_operator_phrase": phrase} if phrase else {})}, "test")
        invalidate()


def never_reading_call(server) -> tuple:
    """A client that sends but never reads while the bot keeps speaking (~60 KB a key press).

    Returns (the finalized call or None, seconds until it was finalized, worker RSS before, at most)."""
    rss_before = worker_rss_mb(server)
    # A tiny receive window, and nothing is ever read: what the server sends piles up on its side.
    lazy = CallClient(websocket.create_connection(
        f"{server.ws_url}?token={server.token}", subprotocols=["chat"], timeout=10,
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)), timeout=10)
    lazy.call_id = f"vox-never-reads-{time.monotonic_ns()}"
    lazy.send({"type": "setup", "callId": lazy.call_id, "from": "+79120000001", "to": "+73430000000"})
    rss_max = rss_before
    started = time.monotonic()
    try:
        while time.monotonic() - started < SEND_TIMEOUT + 10:
            try:
                lazy.dtmf("0")  # each press: the whole long phrase again (within the frame rate)
                lazy.prompt("алло " * 200, last=False)
            except (OSError, websocket.WebSocketException):
                pass  # closed by the server
            rss_max = max(rss_max, worker_rss_mb(server))
            snap = call_snapshot(server, lazy.call_id)
            if snap is not None and snap.outcome != "in_progress":
                return snap, time.monotonic() - started, rss_before, rss_max
            time.sleep(0.1)
        return None, time.monotonic() - started, rss_before, rss_max
    finally:
        try:
            lazy.drop()
        except OSError:
            pass  # already cut by the server


def check_cut_off(server, result, log_detail: str, rss_growth_mb: float = 50) -> None:
    finished, took, rss_before, rss_max = result
    assert finished is not None, "the call of a client that never reads was never finalized"
    # The client pressed 0 with no operator number set: that outcome stays (admins count those callers);
    # the end reason says how the call ended.
    assert finished.outcome == "no_operator" and finished.end_reason == "slow consumer"
    assert took < SEND_TIMEOUT + 8
    assert log_detail in server.log()
    print(f"never-reading client ({log_detail}): cut off after {took:.1f} s; worker RSS "
          f"{rss_before:.0f} -> {rss_max:.0f} MB at most")
    assert rss_max - rss_before < rss_growth_mb
    other = CallClient.connect(server)  # the server is still fine for everyone else
    try:
        other.setup()
        assert "Доставка" in text_of(other.ask(QUESTION))
    finally:
        other.close()


def test_a_client_that_never_reads_is_cut_off_when_its_queue_is_full(server):
    set_no_operator_phrase(server, LONG_PHRASE)
    try:
        check_cut_off(server, never_reading_call(server), "bytes queued")
    finally:
        set_no_operator_phrase(server, None)


def test_a_client_that_never_reads_is_cut_off_after_the_send_timeout(live_server_factory):
    # A queue too large to fill in the test: only the timeout can end it.
    # (Pings stay at their 20 s: a client that never reads never answers one either, and
    # simple-websocket would close it for that at 40 s.)
    srv = live_server_factory(OPERATOR_PHONE=None, SHARED_STATE_TTL=0, VOICE_SEND_TIMEOUT=SEND_TIMEOUT,
                              VOICE_SEND_QUEUE_BYTES=256 * 1024 * 1024)
    set_no_operator_phrase(srv, LONG_PHRASE)
    # The queue's bound is lifted to 256 MB here, so what piles up before the timeout is the machine's pace
    # (35-58 MB seen): the 50 MB target is held with the production bound (the test above, `make bench`).
    check_cut_off(srv, never_reading_call(srv), f"nothing taken for {SEND_TIMEOUT:g} s", rss_growth_mb=120)
    assert "Traceback" not in srv.log(), srv.log()[-5000:]


def test_server_log_has_no_tracebacks(server):
    """Last in the module: nothing above made the server raise."""
    assert "Traceback" not in server.log(), server.log()[-5000:]
