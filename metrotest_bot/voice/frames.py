"""Protocol frames (shared/PROTOCOL.md) to and from internal events.

`parse()` turns one raw WebSocket message into an event dataclass or raises
`FrameError` with the code and message of the `error` frame to send back.
The builders return the JSON text of outgoing frames. Nothing here knows
about calls, sessions or the database.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

# Field limits: the call log's columns, and what a phone scenario can sensibly send.
MAX_ID_LEN = 128
MAX_NUMBER_LEN = 64
MAX_URL_LEN = 4096
DTMF_DIGITS = frozenset("0123456789*#")
# No frame of the protocol nests deeper than 2; json.loads recurses once per level (and
# raises RecursionError in the thousands), so depth is checked before it runs.
MAX_JSON_DEPTH = 32


class FrameError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Setup:
    call_id: str
    from_number: str
    to_number: str
    session_id: str | None = None


@dataclass(frozen=True)
class Prompt:
    text: str
    last: bool
    confidence: float | None = None  # normalized to 0..1


@dataclass(frozen=True)
class Interrupt:
    answer_id: str
    utterance: str  # what was actually played before the caller spoke
    duration_ms: float | None = None


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Recording:
    url: str


@dataclass(frozen=True)
class Hangup:
    reason: str | None = None


@dataclass(frozen=True)
class Silence:
    duration_ms: float | None = None  # how long the caller has been silent


Event = Setup | Prompt | Interrupt | Dtmf | Recording | Hangup | Silence


def too_large(raw: str | bytes, limit: int) -> bool:
    """True when the frame is over `limit` bytes (UTF-8), without encoding small frames."""
    if isinstance(raw, bytes):
        return len(raw) > limit
    if len(raw) > limit:  # a character is at least one byte
        return True
    return len(raw) * 4 > limit and len(raw.encode("utf-8", "surrogatepass")) > limit


# A JSON string (escapes included, possibly unterminated) or a bracket: brackets inside strings do not nest.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def too_deep(raw: str, max_depth: int) -> bool:
    """True when the JSON text nests arrays/objects deeper than max_depth (valid or not)."""
    if raw.count("[") + raw.count("{") <= max_depth:
        return False  # the usual frame: not enough brackets to get there
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        ch = match.group()
        if ch in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse(raw: str | bytes, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Event:
    if too_large(raw, max_bytes):
        raise FrameError("frame_too_large", f"frame is over {max_bytes} bytes")
    if isinstance(raw, bytes):
        raise FrameError("binary_frame", "frames must be UTF-8 text frames holding JSON")
    if too_deep(raw, max_depth):
        raise FrameError("too_deep", f"JSON nested deeper than {max_depth} levels")
    try:
        obj = json.loads(raw)
    except RecursionError:  # not reached past too_deep(); kept so no frame can end the call
        raise FrameError("too_deep", f"JSON nested deeper than {max_depth} levels") from None
    except ValueError:
        raise FrameError("bad_json", "frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise FrameError("bad_json", "frame must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise FrameError("missing_field", "field 'type' is missing")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise FrameError("unknown_type", f"unknown frame type {kind[:40]!r}")
    return parser(_Fields(obj, kind))


class _Fields:
    """Typed access to a frame's fields; every failure is a FrameError."""

    def __init__(self, obj: dict, kind: str):
        self.obj, self.kind = obj, kind

    def _missing(self, name):
        return FrameError("missing_field", f"{self.kind}: field {name!r} is missing")

    def _bad(self, name, what):
        return FrameError("bad_field", f"{self.kind}: field {name!r} must be {what}")

    def string(self, name, *, required=True, max_len=None, allow_empty=True, numbers=False) -> str | None:
        value = self.obj.get(name)
        if value is None:
            if required:
                raise self._missing(name)
            return None
        if numbers and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # a phone number sent as a JSON number
        if not isinstance(value, str):
            raise self._bad(name, "a string")
        if not allow_empty and not value.strip():
            raise self._bad(name, "a non-empty string")
        if max_len is not None and len(value) > max_len:
            raise self._bad(name, f"at most {max_len} characters")
        return value

    def boolean(self, name) -> bool:
        value = self.obj.get(name)
        if value is None:
            raise self._missing(name)
        if not isinstance(value, bool):
            raise self._bad(name, "true or false")
        return value

    def number(self, name, *, lo=None, hi=None) -> float | None:
        value = self.obj.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self._bad(name, "a number")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self._bad(name, f"a number from {lo} to {hi}")
        return float(value)


def _setup(f: _Fields) -> Setup:
    return Setup(
        call_id=f.string("callId", max_len=MAX_ID_LEN, allow_empty=False, numbers=True),
        from_number=f.string("from", max_len=MAX_NUMBER_LEN, numbers=True),
        to_number=f.string("to", max_len=MAX_NUMBER_LEN, numbers=True),
        session_id=f.string("sessionId", required=False, max_len=MAX_ID_LEN, numbers=True),
    )


def _prompt(f: _Fields) -> Prompt:
    text = f.string("text")
    last = f.boolean("last")
    confidence = f.number("confidence", lo=0, hi=100)
    # Voximplant reports 0..100 for some ASR profiles, 0..1 for others.
    if confidence is not None and confidence > 1:
        confidence /= 100.0
    return Prompt(text=text, last=last, confidence=confidence)


def _interrupt(f: _Fields) -> Interrupt:
    return Interrupt(
        answer_id=f.string("answerId", max_len=MAX_ID_LEN, allow_empty=False),
        utterance=f.string("utteranceUntilInterrupt"),
        duration_ms=f.number("durationUntilInterruptMs", lo=0),
    )


def _dtmf(f: _Fields) -> Dtmf:
    digit = f.string("digit", numbers=True)
    if digit not in DTMF_DIGITS:
        raise FrameError("bad_field", "dtmf: field 'digit' must be one of 0-9, * or #")
    return Dtmf(digit=digit)


def _recording(f: _Fields) -> Recording:
    url = f.string("url", max_len=MAX_URL_LEN, allow_empty=False).strip()
    if not url.lower().startswith(("https://", "http://")):
        raise FrameError("bad_field", "recording: field 'url' must be an http(s) URL")
    return Recording(url=url)


def _hangup(f: _Fields) -> Hangup:
    return Hangup(reason=f.string("reason", required=False, max_len=255))


def _silence(f: _Fields) -> Silence:
    return Silence(duration_ms=f.number("durationMs", lo=0))


_PARSERS = {
    "setup": _setup,
    "prompt": _prompt,
    "interrupt": _interrupt,
    "dtmf": _dtmf,
    "recording": _recording,
    "hangup": _hangup,
    "silence": _silence,
}


# Outgoing frames --------------------------------------------------------


def _dump(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


def text_frame(answer_id: str, seq: int, text: str, last: bool) -> str:
    return _dump({"type": "text", "answerId": answer_id, "seq": seq, "text": text, "last": last})


def transfer_frame(to: str, text: str | None = None) -> str:
    frame = {"type": "transfer", "to": to}
    if text:
        frame["text"] = text
    return _dump(frame)


def end_frame(reason: str, text: str | None = None) -> str:
    frame = {"type": "end", "reason": reason}
    if text:
        frame["text"] = text
    return _dump(frame)


def error_frame(code: str, message: str) -> str:
    return _dump({"type": "error", "code": code, "message": message})
