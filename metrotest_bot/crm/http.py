"""A small JSON-over-HTTP client for the CRM adapters, bound to one deadline.

Plain urllib: under gunicorn's gevent worker its sockets are cooperative.
Every request gets the time left until the lookup's deadline as its socket
timeout and the body is read in chunks against the same deadline, so no
single slow CRM answer can outlive the budget.
"""
from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

MAX_BODY = 1024 * 1024  # a CRM answer about one caller is a few KiB
USER_AGENT = "metrotest-voice-bot/1.0"


class CRMError(Exception):
    """The CRM could not be asked or answered nonsense; the call goes on without context."""


class CRMTimeout(CRMError):
    pass


@dataclass
class Response:
    status: int
    data: object  # parsed JSON, or None for an empty body
    content_type: str = ""


class Client:
    def __init__(self, deadline: float, headers: dict | None = None):
        self.deadline = deadline
        self.headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        self.requests = 0

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0.005:
            raise CRMTimeout("CRM time budget spent")
        return left

    def get(self, url: str, params: dict | None = None) -> Response:
        if params:
            url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(params)
        return self._send(urllib.request.Request(url, headers=self.headers, method="GET"))

    def post_json(self, url: str, body: dict) -> Response:
        data = json.dumps(body, ensure_ascii=False).encode()
        headers = {**self.headers, "Content-Type": "application/json"}
        return self._send(urllib.request.Request(url, data=data, headers=headers, method="POST"))

    def _send(self, req: urllib.request.Request) -> Response:
        self.requests += 1
        try:
            try:
                resp = urllib.request.urlopen(req, timeout=self.remaining())
            except urllib.error.HTTPError as err:
                resp = err  # 4xx/5xx still carry the CRM's JSON error body
            with resp:
                status = resp.status if hasattr(resp, "status") else resp.code
                ctype = resp.headers.get("Content-Type", "") if resp.headers else ""
                body = self._read(resp)
        except CRMError:
            raise
        except (socket.timeout, TimeoutError) as err:
            raise CRMTimeout(f"CRM did not answer in time: {err}") from err
        except (OSError, http.client.HTTPException, ValueError) as err:
            raise CRMError(f"CRM unreachable: {err}") from err
        if not body.strip():
            return Response(status, None, ctype)
        try:
            data = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            if status >= 400:
                return Response(status, None, ctype)
            raise CRMError(f"CRM answered HTTP {status} with a body that is not JSON") from err
        return Response(status, data, ctype)

    def _read(self, resp) -> bytes:
        chunks, size = [], 0
        while True:
            self.remaining()  # a CRM dripping its answer is as slow as a silent one
            chunk = resp.read(16384)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_BODY:
                raise CRMError("CRM answer too large")
            chunks.append(chunk)
