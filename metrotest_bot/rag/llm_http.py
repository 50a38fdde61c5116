"""The LLM's HTTP connections of a process, as lanes: a pool whose cost does not grow with its size.

httpcore's connection pool walks every connection it holds on each request and on each
response's close, and polls the socket of every idle one: with hundreds of answers streaming
at once that walk was a third of the LLM client's CPU per answer (issue #16). Here the pool is
a free list of lanes, each an httpx transport holding at most one connection: taking one and
giving it back are O(1), and the lane given back last (its connection the warmest) is taken
first, so keep-alive works as before. A lane's own pool still does everything per request
(expiry, a connection the server closed, TLS), over its single connection; lanes left unused
past the keep-alive expiry are closed from the cold end of the list (their sockets would else
stay open until the next burst of calls).

The openai client is built on this transport (`http_client=...(transport=LanePool(...))`), so
its request building, auth, timeouts and error mapping are unchanged.
"""
from __future__ import annotations

import importlib
import re
import threading
import time
from collections import deque


def httpx_module():
    """The httpx package the openai client is built on (httpx2 for openai 3, httpx before)."""
    import openai

    client_cls = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == "Client")
    return importlib.import_module(client_cls.__module__.split(".")[0])


def lane_pool(max_lanes: int, keepalive_expiry: float | None):
    """A LanePool of at most `max_lanes` connections (an httpx BaseTransport)."""
    httpx = httpx_module()

    class LanePool(httpx.BaseTransport):
        def __init__(self):
            self._free: deque = deque()  # (lane, given back at) not in use, the last given back at the right
            self._lock = threading.Lock()
            self._slots = threading.BoundedSemaphore(max_lanes)
            # One TLS context for every lane: making one loads the CA bundle (milliseconds).
            self._ssl = httpx.create_ssl_context()
            self._limits = httpx.Limits(max_connections=1, max_keepalive_connections=1,
                                        keepalive_expiry=keepalive_expiry)
            self._closed = False

        def handle_request(self, request):
            timeout = (request.extensions.get("timeout") or {}).get("pool")
            if not self._slots.acquire(timeout=timeout):
                raise httpx.PoolTimeout("no LLM connection free within the pool timeout", request=request)
            with self._lock:
                lane = self._free.pop()[0] if self._free else None
            if lane is None:
                lane = httpx.HTTPTransport(verify=self._ssl, limits=self._limits)
            try:
                response = lane.handle_request(request)
            except BaseException:
                self._give_back(lane)
                raise
            response.stream = _LaneStream(response.stream, self, lane)
            return response

        def _give_back(self, lane) -> None:
            now = time.monotonic()
            stale = []
            with self._lock:
                if self._closed:
                    stale.append(lane)
                else:
                    self._free.append((lane, now))
                    while keepalive_expiry is not None and now - self._free[0][1] > keepalive_expiry:
                        stale.append(self._free.popleft()[0])
            self._slots.release()
            for old in stale:
                old.close()

        def close(self) -> None:
            with self._lock:
                self._closed = True
                lanes, self._free = self._free, deque()
            for lane, _ in lanes:
                lane.close()

    class _LaneStream(httpx.SyncByteStream):
        """The response body; closing it gives the lane back (once)."""

        __slots__ = ("_stream", "_pool", "_lane")

        def __init__(self, stream, pool, lane):
            self._stream, self._pool, self._lane = stream, pool, lane

        def __iter__(self):
            return iter(self._stream)

        def close(self) -> None:
            lane, self._lane = self._lane, None
            try:
                self._stream.close()
            finally:
                if lane is not None:
                    self._pool._give_back(lane)

    return LanePool()


READ_BYTES = 64 * 1024


def direct_body(response, bounded: bool, pace=None):
    """The body of a streamed HTTP/1.1 response, read straight off its connection: the socket's
    recv and the connection's own h11 state, without the five wrapping streams of httpx and
    httpcore (each a generator, a context manager and a socket timeout set per chunk: most of
    the CPU of reading an LLM stream, issue #16). The connection's state stays httpcore's: once
    the body's end is read, closing the response gives the connection back for keep-alive.

    `bounded`: the caller bounds every wait itself (a gevent timer), so the socket is read
    without a timeout (else a timer per chunk); otherwise the request's read timeout applies.
    `pace`: with `bounded`, a callable giving the seconds to let pass before each read of the socket
    (0: read as soon as it is readable), see _waiting_recv.
    None when the response is not one this can read (another transport, HTTP/2, a proxy)."""
    core = getattr(getattr(getattr(response, "stream", None), "_stream", None), "_stream", None)
    conn_stream = getattr(getattr(core, "_httpcore_stream", None), "_stream", None)
    conn = getattr(conn_stream, "_connection", None)
    state = getattr(conn, "_h11_state", None)
    sock = getattr(getattr(conn, "_network_stream", None), "_sock", None)
    if (type(conn_stream).__name__ != "HTTP11ConnectionByteStream" or state is None or sock is None
            or type(conn._network_stream).__name__ != "SyncStream"):
        return None
    timeout = None if bounded else (response.request.extensions.get("timeout") or {}).get("read")
    return _body(state, sock, timeout, response.request, pace)


def _at_chunk_boundary(state) -> bool:
    """h11 reads a chunked body, holds no byte of it and is between two chunks."""
    reader = getattr(state, "_reader", None)
    buffer = getattr(state, "_receive_buffer", None)
    return (type(reader).__name__ == "ChunkedReader" and buffer is not None and len(buffer) == 0
            and getattr(reader, "_bytes_in_chunk", None) == 0 and getattr(reader, "_bytes_to_discard", None) == b""
            and getattr(reader, "_reading_trailer", None) is False)


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,20}")


def _chunks(recv):
    """A chunked body's data (RFC 9112 7.1) up to its last chunk, whose bytes (and any after them) it
    returns for h11: an SSE stream is one chunk per event, and h11's per-chunk events, validation
    and state cost more than the framing itself. Errors are h11's."""
    import h11

    buf, at = b"", 0  # `at`: where the unread bytes of buf begin (no copy of the rest per chunk)
    while True:
        while (eol := buf.find(b"\r\n", at)) < 0:
            if len(buf) - at > 4096:
                raise h11.RemoteProtocolError("illegal chunk header")
            buf, at = buf[at:] + _more(recv), 0
        size = buf[at:eol].split(b";", 1)[0].rstrip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size):
            raise h11.RemoteProtocolError(f"illegal chunk header: {buf[at:eol]!r}")
        left = int(size, 16)
        if left == 0:
            return buf[at:]
        at = eol + 2
        while left:
            if at >= len(buf):
                buf, at = _more(recv), 0
            data = buf[at:at + left]
            at += len(data)
            left -= len(data)
            yield data
        while len(buf) - at < 2:
            buf, at = buf[at:] + _more(recv), 0
        if buf[at:at + 2] != b"\r\n":
            raise h11.RemoteProtocolError(f"malformed chunk footer: {buf[at:at + 2]!r}")
        at += 2


def _more(recv) -> bytes:
    data = recv(READ_BYTES)
    if not data:
        import h11

        raise h11.RemoteProtocolError("peer closed connection without sending complete message body "
                                      "(incomplete chunked read)")
    return data


def _waiting_recv(sock, pace=None):
    """recv() that waits for the socket to be readable first. An LLM stream's next chunk is never
    there yet when the last one is parsed: gevent's recv() would try the system call, fail with
    EAGAIN, wait, and try again (two calls and an exception per chunk). A plain gevent socket only
    (a TLS socket must read through its SSL object); else its own recv().

    `pace()` > 0: sleep that long first and take whatever arrived meanwhile in one read. A model
    sends a chunk a token (~15 ms apart); woken for each, the worker spends most of an answer's CPU
    on wakeups, system calls and per-read parsing (issue #16). The answer sets it once its first
    piece is spoken, when later pieces only queue up behind the speech."""
    raw, wait, readable = getattr(sock, "_sock", None), getattr(sock, "_wait", None), getattr(sock, "_read_event", None)
    if type(sock).__module__ != "gevent._socket3" or type(sock).__name__ != "socket" or None in (raw, wait, readable):
        return sock.recv
    from gevent import sleep

    def recv(n: int) -> bytes:
        delay = pace() if pace is not None else 0
        if delay > 0:
            sleep(delay)
            try:
                return raw.recv(n)
            except BlockingIOError:  # nothing came meanwhile: wait for it as usual
                pass
        while True:
            wait(readable)
            try:
                return raw.recv(n)
            except BlockingIOError:  # woken with nothing to read after all
                continue

    return recv


def _body(state, sock, timeout, request, pace=None):
    import socket

    import h11

    httpx = httpx_module()
    need_data, paused, data_event, end = h11.NEED_DATA, h11.PAUSED, h11.Data, h11.EndOfMessage
    next_event, receive = state.next_event, state.receive_data
    recv = _waiting_recv(sock, pace) if timeout is None else sock.recv
    framed = True  # the chunked framing not read yet by this module's own reader
    try:
        sock.settimeout(timeout)
        while True:
            event = next_event()
            if event is need_data:
                if framed and _at_chunk_boundary(state):
                    framed = False
                    end = yield from _chunks(recv)
                    receive(end)  # the last chunk and the trailer: h11 reads the message's end
                    continue
                data = recv(READ_BYTES)
                if not data and state.their_state is h11.SEND_RESPONSE:
                    raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                                    request=request)
                receive(data)
            elif type(event) is data_event:
                yield bytes(event.data)
            elif event is paused or type(event) is end:
                return
    except socket.timeout as exc:
        raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
    except h11.RemoteProtocolError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    except OSError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc


# -- requests ---------------------------------------------------------------------------------------

_templates: dict[int, tuple] = {}
_templates_lock = threading.Lock()


def _template(client, path: str):
    """(URL, headers, timeout) of a POST to `path` exactly as the openai client builds it (its auth,
    platform and organization headers, base URL, timeouts), built once per client through the
    client's own request building. None for a client whose credentials may change per request
    (workload identity, a provider, a key given as a callable): those always go through openai."""
    if (getattr(client, "workload_identity", None) is not None or getattr(client, "_provider_runtime", None) is not None
            or getattr(client, "_api_key_provider", None) is not None  # a key given as a callable: api_key is ""
            or not isinstance(getattr(client, "api_key", None), str)):
        return None
    key = (id(client), path)
    with _templates_lock:
        found = _templates.get(key)
        if found is None or found[0] is not client:
            from openai._constants import RAW_RESPONSE_HEADER
            from openai._models import FinalRequestOptions

            options = FinalRequestOptions.construct(method="post", url=path, json_data={},
                                                    headers={RAW_RESPONSE_HEADER: "stream"})
            request = client._build_request(client._prepare_options(options))
            headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"]
            found = _templates[key] = (client, str(request.url), headers, request.extensions.get("timeout"))
        return found[1:]


def post_stream(client, path: str, body: dict):
    """POST `body` as JSON and return the streamed HTTP response unread, as `client.post(...)` with the
    raw-response header does, without its per-request option models, copies and wrappers (most of the
    CPU of opening an answer's stream, issue #16): the request is the one the client builds (same
    URL, headers, timeouts), sent on its own httpx client; errors are openai's (APITimeoutError,
    APIConnectionError, APIStatusError from the client's own mapping)."""
    import json

    import openai

    template = _template(client, path)
    if template is None:
        from openai._constants import RAW_RESPONSE_HEADER

        # The raw-response header "stream" makes the client return the HTTP response unread.
        return client.post(path, cast_to=httpx_module().Response, body=body,
                           options={"headers": {RAW_RESPONSE_HEADER: "stream"}})
    url, headers, timeout = template
    httpx = httpx_module()
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    request = httpx.Request("POST", url, headers=headers, content=content, extensions={"timeout": timeout})
    from openai._httpx2 import request_exceptions, timeout_exceptions

    try:
        response = client._client.send(request, stream=True)
    except timeout_exceptions() as exc:  # the exception sets openai's own request path maps
        raise openai.APITimeoutError(request=request) from exc
    except request_exceptions() as exc:
        raise openai.APIConnectionError(request=request) from exc
    if response.status_code >= 400:
        try:
            response.read()
        finally:
            response.close()
        raise client._make_status_error_from_response(response) from None
    return response
