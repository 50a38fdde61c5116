"""A local OpenAI-compatible chat-completions server, for the real `openai` client.

It speaks the documented wire format: POST /v1/chat/completions with
`stream: true` answers `text/event-stream` chunks
(`data: {"object": "chat.completion.chunk", "choices": [{"delta": ...}]}`)
ending with `data: [DONE]`; without `stream` it answers one JSON completion.

Modes, set per test on the running server:
- "ok": stream `answer` token by token (or `chunks`, when set, as given),
  `token_delay` seconds apart, after `first_token_delay`.
- "error500": answer HTTP 500 with an OpenAI-style error body.
- "hang": accept the request and never send a byte (a timeout).
- "ping": send SSE keep-alive comments (`: ping`) every `ping_every` seconds and never a token.
With `stall_after` = N, an "ok" stream stops after N tokens for `stall_seconds` (sending keep-alives).

It records each request body (`requests`) and counts streams that ran to
the end (`completed_streams`) and streams the client closed early
(`closed_streams`) — the barge-in tests need to see that the LLM's HTTP
stream was really closed. `reply`, when set, answers each request from its
body (`reply(body) -> text`); `max_active` is the most completions it was
serving at once.
"""
from __future__ import annotations

import json
import re
import threading
import time

import pytest

from .http_fake import HTTPFake, QuietHandler, fresh, serve

DEFAULT_ANSWER = "Мы работаем с понедельника по пятницу с 8:30 до 17:30. Суббота и воскресенье — выходные."


def tokenize(text: str) -> list[str]:
    """Split like an LLM tokenizer would, roughly: words with their leading space, punctuation apart."""
    return re.findall(r"\s*[\w-]+|\s*[^\w\s]", text)


class FakeOpenAI(HTTPFake):
    def __init__(self):
        self.mode = "ok"
        self.answer = DEFAULT_ANSWER
        self.chunks: list[str] | None = None  # content deltas exactly as sent (split markers etc.)
        self.ping_every = 0.5
        self.stall_after: int | None = None
        self.stall_seconds = 0.0
        self.token_delay = 0.0
        self.first_token_delay = 0.0
        self.requests: list[dict] = []
        self.completed_streams = 0
        self.closed_streams = 0
        self.reply = None  # callable(request body) -> answer text, instead of `answer`
        self.active = self.max_active = 0
        self.lock = threading.Lock()
        self.stream_closed = threading.Event()
        self.stream_completed = threading.Event()
        super().__init__()
        self.base_url = f"{self.url}/v1"  # what the openai client takes as base_url

    def reset(self):
        self.mode, self.answer, self.chunks = "ok", DEFAULT_ANSWER, None
        self.ping_every, self.stall_after, self.stall_seconds = 0.5, None, 0.0
        self.token_delay = self.first_token_delay = 0.0
        self.requests.clear()
        self.completed_streams = self.closed_streams = 0
        self.reply = None
        self.active = self.max_active = 0
        self.stream_closed.clear()
        self.stream_completed.clear()

    def _handler(self):
        fake = self

        class Handler(QuietHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake.lock:
                    fake.requests.append(body)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                if fake.mode == "error500":
                    return self._json(500, {"error": {"message": "The server had an error", "type": "server_error"}})
                if fake.mode == "hang":
                    time.sleep(3600)
                    return
                with fake.lock:
                    fake.active += 1
                    fake.max_active = max(fake.max_active, fake.active)
                self._left = False
                try:
                    self._complete(body)
                finally:
                    self._leave()

            def _leave(self):
                """No longer serving this completion: before its last bytes go out, so a client that
                starts the next one on reading them is never counted twice."""
                if not self._left:
                    self._left = True
                    with fake.lock:
                        fake.active -= 1

            def _answer(self, body):
                return fake.reply(body) if fake.reply is not None else fake.answer

            def _complete(self, body):
                if body.get("stream"):
                    return self._stream(body)
                time.sleep(fake.first_token_delay)
                self._leave()
                return self._json(200, {
                    "id": "chatcmpl-local", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "local"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": self._answer(body)}}],
                })

            def _json(self, status, obj):
                data = json.dumps(obj, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _chunk(self, obj):
                line = ("data: " + (obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)) + "\n\n").encode()
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()

            def _ping_for(self, seconds):
                """Keep-alive comments for `seconds`: bytes that carry no token."""
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    line = b": ping\n\n"
                    self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                    self.wfile.flush()
                    time.sleep(min(fake.ping_every, max(0.0, end - time.monotonic())))

            def _stream(self, body):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                base = {"id": "chatcmpl-local", "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": body.get("model", "local")}
                try:
                    time.sleep(fake.first_token_delay)
                    self._chunk({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                      "finish_reason": None}]})
                    if fake.mode == "ping":
                        self._ping_for(3600)
                    for i, token in enumerate(fake.chunks if fake.chunks is not None else tokenize(self._answer(body))):
                        if fake.stall_after is not None and i == fake.stall_after:
                            self._ping_for(fake.stall_seconds)
                        self._chunk({**base, "choices": [{"index": 0, "delta": {"content": token},
                                                          "finish_reason": None}]})
                        if fake.token_delay:
                            time.sleep(fake.token_delay)
                    self._leave()
                    self._chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    self._chunk("[DONE]")
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    with fake.lock:
                        fake.closed_streams += 1
                    fake.stream_closed.set()
                    return
                with fake.lock:
                    fake.completed_streams += 1
                # The client may have read [DONE] before this thread counted it: tests wait on this.
                fake.stream_completed.set()

        return Handler


@pytest.fixture(scope="session")
def _fake_openai_server():
    yield from serve(FakeOpenAI())


@pytest.fixture
def fake_openai(_fake_openai_server):
    """The running fake, reset for this test."""
    yield from fresh(_fake_openai_server)
