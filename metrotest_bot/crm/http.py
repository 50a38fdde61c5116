"""JSON over HTTP for the CRM adapters: one pooled httpx client per process, each lookup bound to its deadline.

A lookup makes up to four requests to one host (Bitrix24: find, contact,
company, manager); the shared pool keeps the connection (and its TLS session)
alive between them and across calls, so only the first request of a while
pays the handshake. Under gunicorn's gevent worker httpx's sockets are
cooperative. Every request gets the time left until the lookup's deadline as
its timeouts and the body is read in chunks against the same deadline, so no
single slow CRM answer can outlive the budget.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass

import httpx

MAX_BODY = 1024 * 1024  # a CRM answer about one caller is a few KiB
USER_AGENT = "metrotest-voice-bot/1.0"
# Calls arrive in bursts; a worker rarely has more lookups than this in flight at once.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0)

_pool: httpx.Client | None = None
_pool_lock = threading.Lock()


class CRMError(Exception):
    """The CRM could not be asked or answered nonsense; the call goes on without context."""


class CRMTimeout(CRMError):
    pass


@dataclass
class Response:
    status: int
    data: object  # parsed JSON, or None for an empty body
    content_type: str = ""


def pool() -> httpx.Client:
    """The process's one CRM connection pool (created on first use: a forked worker makes its own)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                # httpcore writes a request's headers and body in two sends: without TCP_NODELAY the
                # body of a POST may wait for the server's delayed ACK (up to 40 ms on Linux).
                transport = httpx.HTTPTransport(limits=POOL_LIMITS,
                                                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
                _pool = httpx.Client(transport=transport, follow_redirects=True, max_redirects=3,
                                     headers={"User-Agent": USER_AGENT})
    return _pool


class Client:
    """One lookup's requests: its headers, its deadline, how many it sent."""

    def __init__(self, deadline: float, headers: dict | None = None):
        self.deadline = deadline
        self.headers = {"Accept": "application/json", **(headers or {})}
        self.requests = 0

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0.005:
            raise CRMTimeout("CRM time budget spent")
        return left

    def get(self, url: str, params: dict | None = None) -> Response:
        return self._send("GET", url, params=params)

    def post_json(self, url: str, body: dict | list) -> Response:
        data = json.dumps(body, ensure_ascii=False).encode()
        return self._send("POST", url, content=data, headers={"Content-Type": "application/json"})

    def _send(self, method: str, url: str, params: dict | None = None, headers: dict | None = None,
              **kwargs) -> Response:
        self.requests += 1
        try:
            if params:  # added to the query the URL may carry (httpx's params= would replace it)
                url = httpx.URL(url).copy_merge_params(params)
            timeout = httpx.Timeout(self.remaining())
            with pool().stream(method, url, headers={**self.headers, **(headers or {})},
                               timeout=timeout, **kwargs) as resp:
                # 4xx/5xx still carry the CRM's JSON error body
                status, ctype = resp.status_code, resp.headers.get("Content-Type", "")
                body = self._read(resp)
        except CRMError:
            raise
        except httpx.TimeoutException as err:
            raise CRMTimeout(f"CRM did not answer in time: {err!r}") from err
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as err:
            raise CRMError(f"CRM unreachable: {err!r}") from err
        if not body.strip():
            return Response(status, None, ctype)
        try:
            data = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            if status >= 400:
                return Response(status, None, ctype)
            raise CRMError(f"CRM answered HTTP {status} with a body that is not JSON") from err
        return Response(status, data, ctype)

    def _read(self, resp: httpx.Response) -> bytes:
        chunks, size = [], 0
        for chunk in resp.iter_bytes():
            self.remaining()  # a CRM dripping its answer is as slow as a silent one
            size += len(chunk)
            if size > MAX_BODY:
                raise CRMError("CRM answer too large")
            chunks.append(chunk)
        return b"".join(chunks)
