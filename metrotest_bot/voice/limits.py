"""Per-socket rate limits of the call WebSocket (issue #13).

A real scenario sends a few frames a second (partial ASR results, an
interrupt) and at most one final prompt every second or two. A socket far
above that is refused frame by frame with a `rate_limited` error (reported at
most once a second, so a flood is not echoed back), and one that keeps at it
is closed: `SocketGuard` raises `Abuse`, the session ends the call.
"""
from __future__ import annotations

import time
from collections import deque

RATE_LIMITED = "rate_limited"
ABUSE_WINDOW_S = 10.0  # refused frames counted over this window
REPORT_EVERY_S = 1.0  # at most one `rate_limited` error frame a second
PROMPT_BURST = 6  # final prompts accepted back to back before the per-second rate applies


class Abuse(Exception):
    """The socket kept sending over its limits: close it and finalize the call."""


class TokenBucket:
    """`rate` events a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: float | None = None):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate, 1.0))
        self.tokens = self.burst
        self.at = time.monotonic()

    def take(self, now: float | None = None) -> bool:
        if self.rate <= 0:
            return True  # 0 turns the limit off
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SocketGuard:
    """The limits of one call socket: frames a second, final prompts a second, refusals before closing.

    `send_error(code, message)` sends the `error` frame of a refusal.
    """

    def __init__(self, send_error, frames_per_s: float, prompts_per_s: float, close_after: int):
        self.send_error = send_error
        self.frames = TokenBucket(frames_per_s)
        # A scripted test call or an ASR correcting itself may send a few finals back to back: a small
        # burst passes, a flood does not.
        self.prompts = TokenBucket(prompts_per_s, burst=max(prompts_per_s, PROMPT_BURST))
        self.close_after = close_after
        self.refused: deque[float] = deque()
        self.unreported = 0
        self.reported_at = float("-inf")

    def frame(self) -> bool:
        """A frame arrived: True to handle it, False when it is refused. Raises Abuse."""
        if self.frames.take():
            return True
        self._refuse("frames", self.frames.rate)
        return False

    def final_prompt(self) -> bool:
        """A final prompt is about to start an answer: True to go on, False when it is refused."""
        if self.prompts.take():
            return True
        self._refuse("final prompts", self.prompts.rate)
        return False

    def _refuse(self, what: str, rate: float) -> None:
        now = time.monotonic()
        self.refused.append(now)
        while self.refused and self.refused[0] < now - ABUSE_WINDOW_S:
            self.refused.popleft()
        if self.close_after and len(self.refused) > self.close_after:
            raise Abuse(f"{len(self.refused)} frames over the limits in {ABUSE_WINDOW_S:.0f} s")
        self.unreported += 1
        if now - self.reported_at >= REPORT_EVERY_S:
            self.reported_at = now
            count, self.unreported = self.unreported, 0
            self.send_error(RATE_LIMITED, f"over {rate:g} {what} a second: {count} frame(s) ignored")
