"""A scenario-side client for the call WebSocket, on websocket-client (a real socket).

    call = CallClient.connect(live_server)          # offers subprotocol "chat"
    greeting = call.setup()                          # -> the greeting, its pieces read up to `last`
    frames = call.ask("Как к вам проехать?")         # -> this answer's frames up to `last`
    call.hangup()

Every frame received is kept in `call.received` (with its arrival time in
`call.times`), so a test can check what went out after a given moment.
"""
from __future__ import annotations

import json
import struct
import time
import uuid
from contextlib import contextmanager

import websocket
from websocket import ABNF


class Closed(Exception):
    def __init__(self, code: int | None, reason: str = ""):
        super().__init__(f"closed: {code} {reason}")
        self.code = code
        self.reason = reason


class CallClient:
    def __init__(self, ws: websocket.WebSocket, timeout: float):
        self.ws = ws
        self.timeout = timeout
        self.received: list[dict] = []
        self.times: list[float] = []
        self.call_id: str | None = None

    @classmethod
    def connect(cls, server, token: str | None = "", subprotocols=("chat",), timeout: float = 10.0, query=None):
        """token "" means the server's token; None sends no token at all."""
        token = server.token if token == "" else token
        url = server.ws_url
        params = [] if token is None else [f"token={token}"]
        if query:
            params.append(query)
        if params:
            url += "?" + "&".join(params)
        ws = websocket.create_connection(url, subprotocols=list(subprotocols) or None, timeout=timeout)
        return cls(ws, timeout)

    @property
    def subprotocol(self) -> str | None:
        return self.ws.getsubprotocol()

    # -- sending ---------------------------------------------------------------

    def send(self, frame: dict) -> None:
        self.ws.send(json.dumps(frame, ensure_ascii=False))

    def send_raw(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self.ws.send_binary(data)
        else:
            self.ws.send(data)

    def setup(self, call_id: str | None = None, caller: str = "+79120000000", dialled: str = "+73430000000",
              **extra) -> dict:
        """Send setup and read the greeting: its `text` frames up to `last`.

        Returns the greeting as one dict: type, answerId, text (the pieces joined by spaces),
        last, and `frames` (the frames as they came). Any other first frame is returned as is.
        """
        self.call_id = call_id or f"vox-{uuid.uuid4().hex[:10]}"
        self.send({"type": "setup", "callId": self.call_id, "from": caller, "to": dialled, **extra})
        frames = self.answer()
        if frames[0].get("type") != "text":
            return frames[0]
        return {"type": "text", "answerId": frames[0]["answerId"], "text": text_of(frames),
                "last": frames[-1]["last"], "frames": frames}

    def prompt(self, text: str, last: bool = True, **extra) -> None:
        self.send({"type": "prompt", "text": text, "last": last, **extra})

    def interrupt(self, answer_id: str, utterance: str, duration_ms: int = 1200) -> None:
        self.send({"type": "interrupt", "answerId": answer_id, "utteranceUntilInterrupt": utterance,
                   "durationUntilInterruptMs": duration_ms})

    def dtmf(self, digit: str) -> None:
        self.send({"type": "dtmf", "digit": digit})

    def hangup(self, reason: str = "caller hung up") -> None:
        self.send({"type": "hangup", "reason": reason})

    # -- receiving -------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> dict:
        """The next JSON frame; raises Closed when the server closes, TimeoutError on silence."""
        self.ws.settimeout(timeout or self.timeout)
        try:
            opcode, frame = self.ws.recv_data_frame(control_frame=False)
        except websocket.WebSocketTimeoutException:
            raise TimeoutError("no frame from the server in time") from None
        except websocket.WebSocketConnectionClosedException:
            raise Closed(None, "connection closed") from None
        if opcode == ABNF.OPCODE_CLOSE:
            data = frame.data or b""
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            raise Closed(code, data[2:].decode("utf-8", "replace"))
        obj = json.loads(frame.data.decode() if isinstance(frame.data, bytes) else frame.data)
        self.received.append(obj)
        self.times.append(time.monotonic())
        return obj

    def recv_until(self, predicate, timeout: float | None = None) -> list[dict]:
        """Frames up to and including the first one matching predicate."""
        deadline = time.monotonic() + (timeout or self.timeout)
        out = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching frame in time; got {out}")
            frame = self.recv(timeout=left)
            out.append(frame)
            if predicate(frame):
                return out

    def answer(self, timeout: float | None = None) -> list[dict]:
        """The text frames of the next answer, up to its `last` (other frames are returned too)."""
        return self.recv_until(lambda f: f.get("type") != "text" or f.get("last"), timeout)

    def ask(self, text: str, timeout: float | None = None) -> list[dict]:
        self.prompt(text)
        return self.answer(timeout)

    def expect_closed(self, timeout: float | None = None) -> Closed:
        """Read until the server closes; returns the close (code, reason)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            try:
                self.recv(timeout=max(deadline - time.monotonic(), 0.1))
            except Closed as closed:
                return closed
        raise TimeoutError("the server did not close the socket")

    def drop(self) -> None:
        """Vanish without a close frame, like a network cut."""
        self.ws.sock.shutdown(2) if self.ws.sock else None
        self.ws.shutdown()

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


def text_of(frames: list[dict]) -> str:
    return " ".join(f["text"] for f in frames if f.get("type") == "text" and f.get("text"))


@contextmanager
def set_up_call(server, timeout: float = 10.0):
    """A connected call after its `setup`, its socket closed on the way out (the voice tests' `call`)."""
    call = CallClient.connect(server, timeout=timeout)
    try:
        call.setup()
        yield call
    finally:
        call.close()


def ask_in_a_call(server, question: str, timeout: float = 20) -> str:
    """A call of one question: its answer as heard (the pieces joined), then hang up."""
    with set_up_call(server) as call:
        answer = text_of(call.ask(question, timeout=timeout))
        call.hangup()
    return answer
