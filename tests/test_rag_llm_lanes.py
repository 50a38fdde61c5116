"""The LLM's connections of a process (rag/llm_http.py): streams open at once each get a connection,
connections are kept alive and reused, and opening one more stream does not walk every connection
kept alive (httpcore's pool did, polling each idle socket: O(connections) per request and per close,
a third of the LLM client's CPU with hundreds of answers streaming).

The real `openai` client of rag/generate.py against the local OpenAI-compatible server, in a
process patched by gevent as gunicorn's worker is (only there is a connection drained after
[DONE] and kept alive).
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N = 30

PROBE = r'''
from gevent import monkey
monkey.patch_all()
import json, sys
import gevent
from config import DEFAULTS
from metrotest_bot.rag import generate

cfg = {**DEFAULTS, "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": sys.argv[1], "LLM_FIRST_TOKEN_TIMEOUT": 10}
messages = [{"role": "user", "content": "сколько стоит доставка"}]
n = int(sys.argv[2])

def read(stream):
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

def pools():
    transport = generate.get_client(cfg)._client._transport
    if hasattr(transport, "_free"):  # lanes: a pool of one connection each
        return [lane._pool for lane, _ in transport._free]
    return [transport._pool]

from metrotest_bot.rag.llm_http import httpx_module
layered = []  # bodies read through httpx's and httpcore's stream layers instead of off the connection
response_stream = httpx_module()._transports.default.ResponseStream
real_iter = response_stream.__iter__
def counted_iter(self):
    layered.append(1)
    return real_iter(self)
response_stream.__iter__ = counted_iter

streams = [generate.open_stream(cfg, messages) for _ in range(n)]  # all open at once
answers = [g.get() for g in [gevent.spawn(read, s) for s in streams]]
kept = sum(len(p.connections) for p in pools())
connection_class = type(pools()[0].connections[0])
checked = []
real = connection_class.has_expired
def has_expired(self):
    checked.append(id(self))
    return real(self)
connection_class.has_expired = has_expired
more = [read(generate.open_stream(cfg, messages)) for _ in range(3)]  # one after another
print(json.dumps({"answers": answers + more, "kept": kept, "kept_after": sum(len(p.connections) for p in pools()),
                  "checked": len(checked), "layered": len(layered)}))
'''


def _probe(fake) -> dict:
    # The server holds each stream open a moment, so all n are open at the same time.
    fake.first_token_delay = 0.5
    done = subprocess.run([sys.executable, "-c", PROBE, fake.base_url, str(N)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_connections_are_kept_alive_and_reused_without_walking_them_all(fake_openai):
    got = _probe(fake_openai)
    assert got["answers"] == [fake_openai.answer] * (N + 3)
    assert got["kept"] == N  # a connection each while open at once, all kept alive after
    assert got["kept_after"] == N  # the later answers reused them: no new connection
    # Three more answers, each taking a connection and giving it back: their own connection
    # checked, not the N kept alive (httpcore's single pool checked all N twice per answer).
    assert got["checked"] <= 3 * 2
    # Each body was read straight off its connection (rag/llm_http.py direct_body), and the
    # connection still went back to its lane: the later answers reused them (kept_after).
    assert got["layered"] == 0


EXPIRY_PROBE = r'''
from gevent import monkey
monkey.patch_all()
import json, sys, time
import openai
from metrotest_bot.rag.llm_http import lane_pool

pool = lane_pool(10, 0.3)  # connections kept alive 0.3 s
http = openai.DefaultHttpxClient(transport=pool)
url = sys.argv[1] + "/chat/completions"
body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
responses = [http.send(http.build_request("POST", url, json=body), stream=True) for _ in range(5)]
for r in responses:  # all five open at once: five lanes
    r.read()
    r.close()
kept = len(pool._free)
time.sleep(0.5)  # past the expiry
r = http.send(http.build_request("POST", url, json=body), stream=True)
r.read()
r.close()
print(json.dumps({"kept": kept, "after_expiry": len(pool._free)}))
'''


def test_lanes_unused_past_the_keep_alive_expiry_are_closed(fake_openai):
    fake_openai.first_token_delay = 0.3
    done = subprocess.run([sys.executable, "-c", EXPIRY_PROBE, fake_openai.base_url], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["kept"] == 5
    assert got["after_expiry"] == 1  # the four left idle were closed; the one just used is kept


BROKEN_PROBE = r'''
from gevent import monkey
monkey.patch_all()
import json, socket, sys, threading, time
import gevent
from config import DEFAULTS
from metrotest_bot.rag import generate, llm_http

direct = []  # the body was read by llm_http's own reader, not httpx's streams
_body = llm_http._body
llm_http._body = lambda *a: (direct.append(1), _body(*a))[1]

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

def chunk(text):
    line = ("data: " + json.dumps({"choices": [{"delta": {"content": text}}]}) + "\n\n").encode()
    return f"{len(line):x}\r\n".encode() + line + b"\r\n"

def serve(listener, how):
    conn, _ = listener.accept()
    conn.recv(65536)
    conn.sendall(HEAD + chunk("Доставка бесплатная."))
    if how == "stall":
        time.sleep(3)
    conn.close()  # "drop": the body ends mid-stream, no [DONE], no last chunk

got = {}
for how, bounded in (("drop", False), ("drop", True), ("stall", False), ("stall", True)):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    threading.Thread(target=serve, args=(listener, how), daemon=True).start()
    cfg = {**DEFAULTS, "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": f"http://127.0.0.1:{listener.getsockname()[1]}/v1",
           "LLM_FIRST_TOKEN_TIMEOUT": 0.5}
    stream = generate.open_stream(cfg, [{"role": "user", "content": "x"}])
    stream.bounded = bounded
    deltas, error = [], None
    started = time.monotonic()
    direct.clear()
    try:
        # bounded: no socket timeout; the answer's own timer (here a gevent.Timeout) must end a stall
        with gevent.Timeout(0.5 if bounded else None):
            for delta in stream.deltas():
                deltas.append(delta)
    except BaseException as exc:
        error = type(exc).__name__
    got[f"{how}-{bounded}"] = {"deltas": deltas, "error": error, "s": round(time.monotonic() - started, 2),
                               "direct": bool(direct)}
    listener.close()
print(json.dumps(got))
'''


def test_a_body_cut_short_or_stalled_raises_httpx_errors_off_the_direct_path():
    """The body read off the connection (rag/llm_http.py direct_body) fails as httpx's did: a dropped
    connection is a RemoteProtocolError after the words that came, a silent one a ReadTimeout after
    the read timeout (unless the reader bounds its waits itself: then no socket timeout at all)."""
    done = subprocess.run([sys.executable, "-c", BROKEN_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(case["direct"] for case in got.values()), got
    for key in ("drop-False", "drop-True"):
        assert got[key]["deltas"] == ["Доставка бесплатная."]
        assert got[key]["error"] == "RemoteProtocolError"
    assert got["stall-False"]["deltas"] == ["Доставка бесплатная."]
    assert got["stall-False"]["error"] == "ReadTimeout"
    assert 0.4 <= got["stall-False"]["s"] < 2.5
    # read with no socket timeout, a stalled stream ends on the reader's timer, not never
    assert got["stall-True"]["deltas"] == ["Доставка бесплатная."]
    assert got["stall-True"]["error"] == "Timeout"
    assert 0.4 <= got["stall-True"]["s"] < 2.5
