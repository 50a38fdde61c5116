"""The outgoing side of a call socket: every frame of a call leaves through its FrameSender.

`FrameSender` is what the session and its answers talk to. It owns the send lock
and the `seq` numbers of each answer's `text` frames: an answer's frames go out
through an `AnswerFrames` that numbers them 0, 1, 2… and, once closed (barge-in),
lets nothing more of that answer leave. It writes into an outlet: a
`SocketQueue` on a real call, a list in unit tests.

`SocketQueue` bounds the socket (issue #13). simple-websocket's `send()` writes
from the caller's greenlet and blocks for as long as the client does not read,
with no timeout: the answer, then the whole call, waits forever. Here frames are
encoded in order; a frame with nothing queued before it is written at once (non-blocking),
the rest go into a queue that one writer greenlet puts on the socket.
A client that takes nothing for `stall_timeout` seconds, or lets more than
`max_queued` bytes pile up beyond the kernel's buffers, is a slow consumer: the
connection is cut (no close frame could get through anyway) and the session
finalizes the call as lost.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections import deque
from typing import Protocol

import gevent
from gevent.event import Event
from gevent.socket import wait_write
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError

from . import frames

log = logging.getLogger(__name__)

SLOW_CONSUMER = "slow consumer"


def abort_socket(ws) -> None:
    """Cut the connection now, without a close handshake; wakes a session blocked in receive()."""
    ws.connected = False  # simple-websocket: send() refuses, receive() raises ConnectionClosed
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)  # its reader greenlet sees EOF and closes the socket
    except OSError:
        pass
    ws.event.set()


def close_within(ws, timeout: float, code: int, message: str | None = None) -> bool:
    """ws.close(), which writes the close frame straight to the socket, but for at most `timeout`
    seconds: to a client that reads nothing it would block forever. False when it had to abort."""
    timer = gevent.Timeout(timeout)
    timer.start()
    try:
        ws.close(reason=code, message=message)
        return True
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        abort_socket(ws)
        return False
    finally:
        timer.close()


def new_answer_id() -> str:
    return uuid.uuid4().hex[:12]


class Outlet(Protocol):
    def put(self, frame: str) -> bool:
        """Queue one frame's JSON text; False when it cannot go out."""


class FrameSender:
    """Every frame of one call, under one lock, in order; the `seq` numbers of each answer."""

    def __init__(self, outlet: Outlet):
        self.outlet = outlet
        # Answers stream from greenlets of their own; one lock orders them with the socket's greenlet.
        self._lock = threading.Lock()
        self._stopped = False
        self.last_sent = time.monotonic()  # a call that is spoken to is not idle

    def send(self, frame: str) -> bool:
        with self._lock:
            return self._put(frame)

    def _put(self, frame: str) -> bool:
        if self._stopped or not self.outlet.put(frame):
            return False
        self.last_sent = time.monotonic()
        return True

    def error(self, code: str, message: str) -> bool:
        return self.send(frames.error_frame(code, message))

    def transfer(self, to: str, text: str | None) -> bool:
        return self.send(frames.transfer_frame(to, text))

    def end(self, reason: str, text: str | None) -> bool:
        return self.send(frames.end_frame(reason, text))

    def answer(self, answer_id: str | None = None) -> "AnswerFrames":
        """The `text` frames of one answer (a fresh id unless given: `greeting`)."""
        return AnswerFrames(self, answer_id or new_answer_id())

    def stop(self) -> None:
        """The call is over: no frame is accepted from now on (what is queued still goes out)."""
        with self._lock:
            self._stopped = True


class AnswerFrames:
    """One answer's `text` frames: numbered from 0, and none once closed (rule 2 of PROTOCOL.md)."""

    def __init__(self, sender: FrameSender, answer_id: str):
        self.sender = sender
        self.id = answer_id
        self.next_seq = 0
        self.closed = False

    def piece(self, spoken: str, last: bool = False) -> bool:
        """Send one piece (its speech form); False when it did not go out (closed, or the socket refused)."""
        with self.sender._lock:
            return self._piece(spoken, last)

    def _piece(self, spoken: str, last: bool) -> bool:
        if self.closed or not self.sender._put(frames.text_frame(self.id, self.next_seq, spoken, last)):
            return False
        self.next_seq += 1
        return True

    def whole(self, spoken: list[str]) -> int:
        """A phrase's pieces in one go, `last` on the final one; returns how many went out."""
        with self.sender._lock:
            for i, piece in enumerate(spoken):
                if not self._piece(piece, i == len(spoken) - 1):
                    return i
            return len(spoken)

    def close(self) -> None:
        """From the moment this returns, no frame of this answer leaves."""
        with self.sender._lock:
            self.closed = True

class SocketQueue:
    def __init__(self, ws, max_queued: int, stall_timeout: float, call_label=lambda: None):
        self.ws = ws
        self.max_queued = max_queued
        self.stall_timeout = stall_timeout
        self.call_label = call_label  # for log lines: the call's id once known
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.failure: str | None = None  # SLOW_CONSUMER once the client was cut off
        self.writer: gevent.Greenlet | None = None
        self.closing = False
        self._wake = Event()
        self._empty = Event()
        self._empty.set()
        # A plain gevent socket honours send()'s zero timeout; gevent's SSLSocket (a worker that ends
        # TLS itself) ignores it and could block the caller: its frames always go through the writer.
        self._direct = type(getattr(ws, "sock", None)).__module__ == "gevent._socket3"

    def put(self, frame: str) -> bool:
        """Queue one text frame; False when it cannot go out (socket closed, or the client cut off)."""
        if self.failure or self.closing or not self.ws.connected:
            return False
        try:
            data = self.ws.ws.send(TextMessage(data=frame))  # wsproto: the frame's bytes, in order
        except LocalProtocolError:  # the close handshake has begun
            return False
        if not self.queue and self._direct:
            # Nothing waits before it: straight onto the socket from this greenlet, without waking
            # the writer (a switch and an event per frame); only what the kernel does not take
            # now is queued. Never waiting here: the socket's one write watcher is the writer's.
            try:
                sent = self.ws.sock.send(data, 0, 0.0)
            except BlockingIOError:
                sent = 0
            except OSError:  # the connection broke: the session's receive() sees it too
                return True
            if sent == len(data):
                return True
            data = data[sent:]
        elif self.queued + len(data) > self.max_queued:
            self.fail(f"{self.queued + len(data)} bytes queued")
            return False
        self.queue.append(data)
        self.queued += len(data)
        self._empty.clear()
        self._wake.set()
        if self.writer is None:
            self.writer = gevent.spawn(self._write_loop)
        return True

    def drain(self, timeout: float) -> bool:
        """Before the close frame: let what is queued go out (an answer's end, an `end` frame).
        A client that does not take it within `timeout` is cut off. False when it was."""
        self.closing = True
        self._wake.set()
        if self.failure:
            return False
        if self._empty.wait(timeout):
            return True
        self.queue.clear()
        abort_socket(self.ws)
        return False

    def fail(self, detail: str) -> None:
        if self.failure:
            return
        self.failure = SLOW_CONSUMER
        log.warning("call %s: slow consumer (%s): connection cut", self.call_label(), detail)
        self.queue.clear()
        self.queued = 0
        self._empty.set()
        abort_socket(self.ws)
        if self.writer is not None and self.writer is not gevent.getcurrent():
            self.writer.kill(block=False)

    def _write_loop(self) -> None:
        sock = self.ws.sock
        while True:
            while not self.queue:
                self._empty.set()
                if self.closing or self.failure:
                    return
                self._wake.clear()
                self._wake.wait()
            # Frames queued together go out in one send (an answer's last piece and its `last`
            # frame, a greeting's sentences): fewer system calls, the same bytes in the same order.
            batch = len(self.queue)
            data = memoryview(self.queue[0] if batch == 1 else b"".join(self.queue))
            while data:
                if not self.ws.connected:  # closed meanwhile: nothing may follow a close frame
                    self.queue.clear()
                    self._empty.set()
                    return
                try:
                    # Never wait inside sock.send(): the socket has one write watcher, and the
                    # reader greenlet's pings wait on it too (gevent: ConcurrentObjectUseError).
                    data = data[sock.send(data, 0, 0.0):]
                    continue
                except BlockingIOError:
                    pass
                except OSError:  # the connection broke: the session's receive() sees it too
                    self.queue.clear()
                    self._empty.set()
                    return
                timer = gevent.Timeout(self.stall_timeout)
                timer.start()
                try:
                    wait_write(sock.fileno())  # a watcher of its own
                except gevent.Timeout as exc:
                    if exc is not timer:
                        raise
                    self.fail(f"nothing taken for {self.stall_timeout:g} s, {self.queued} bytes queued")
                    return
                finally:
                    timer.close()
            for _ in range(batch):
                self.queued -= len(self.queue.popleft())
