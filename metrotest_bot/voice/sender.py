"""The outgoing side of a call socket: a bounded queue and a writer greenlet (issue #13).

simple-websocket's `send()` writes from the caller's greenlet and blocks for as
long as the client does not read, with no timeout: the answer, then the whole
call, waits forever. Here frames are encoded in order into a queue, and one
writer greenlet puts them on the socket. A client that takes nothing for
`stall_timeout` seconds, or lets more than `max_queued` bytes pile up beyond
the kernel's buffers, is a slow consumer: the connection is cut (no close
frame could get through anyway) and the session finalizes the call as lost.
"""
from __future__ import annotations

import logging
import socket
from collections import deque

import gevent
from gevent.event import Event
from gevent.socket import wait_write
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError

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


class FrameSender:
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

    def put(self, frame: str) -> bool:
        """Queue one text frame; False when it cannot go out (socket closed, or the client cut off)."""
        if self.failure or self.closing or not self.ws.connected:
            return False
        try:
            data = self.ws.ws.send(TextMessage(data=frame))  # wsproto: the frame's bytes, in order
        except LocalProtocolError:  # the close handshake has begun
            return False
        if self.queue and self.queued + len(data) > self.max_queued:
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
