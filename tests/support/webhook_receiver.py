"""A local HTTP server that receives end-of-call webhooks, as a CRM endpoint would.

`receiver.fail_next = n` answers the next n POSTs with HTTP 500 (then 200);
`requests` records each POST as a Received (headers, raw body, time).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import pytest

from .http_fake import HTTPFake, QuietHandler, fresh, serve


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float
    status: int

    def json(self):
        return json.loads(self.body)


class WebhookReceiver(HTTPFake):
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[Received] = []
        self.fail_next = 0
        super().__init__()

    def reset(self):
        with self.lock:
            self.requests = []
            self.fail_next = 0

    def delivered(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.status == 200]

    def _handler(self):
        fake = self

        class Handler(QuietHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with fake.lock:
                    status = 500 if fake.fail_next > 0 else 200
                    if fake.fail_next > 0:
                        fake.fail_next -= 1
                    fake.requests.append(Received(self.path, dict(self.headers), body, time.monotonic(), status))
                reply = b'{"ok": true}' if status == 200 else b'{"error": "temporarily down"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler


@pytest.fixture(scope="session")
def webhook_receiver_server():
    yield from serve(WebhookReceiver())


@pytest.fixture
def webhook_receiver(webhook_receiver_server):
    yield from fresh(webhook_receiver_server)
