"""One answer on its way out: an explicit state machine, run in a greenlet of its own.

    PLANNED ──▶ WAITING ⇄ SPEAKING ──▶ DELIVERED ──▶ FINISHED
       │           │          │
       └───────────┴──────────┴──▶ CUT ──▶ FINISHED       (barge-in, new prompt, key 0, hang-up)
                                └─▶ REPLACED ──▶ FINISHED  (the engine broke before a word: a transfer)

PLANNED    retrieval and the engine's plan. The greenlet may be inside a database call.
WAITING    inside next(stream): waiting for the LLM's next piece. Holds no database connection.
SPEAKING   a piece in hand: its `text` frame, its log write (the first piece's). The failure
           fallback speaks from here too.
DELIVERED  every frame sent, or the socket took no more: only the final log write remains.
CUT        stopped before it was all sent: no frame of it leaves any more, its generation is
           cancelled; the greenlet still logs what was heard.
REPLACED   a transfer speaks instead of it.
FINISHED   its last state is in the log (or the write was given up).

When the greenlet may be killed: only in WAITING. A greenlet killed inside a database call
leaves a broken connection in the pool; in WAITING it waits on the LLM stream and holds none,
so GreenletExit lands right there and its `finally` closes the stream and logs the turn. In
any other running state a cut closes the stream instead (the LLM stops now) and the greenlet
sees CUT at its next step. A cut in DELIVERED is no cut: it waits for the log write, then
records the barge-in over the finished turn.

State changes are made under the task's lock, and a cut closes the answer's frames under the
sender's lock before it returns: once an interrupt is handled, no `text` of the answer leaves.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Protocol

import gevent
from simple_websocket import ConnectionClosed

from ..rag.dialogue import Dialogue
from ..rag.speech import speech_form
from . import phrases
from .recorder import CallRecorder
from .sender import FrameSender

log = logging.getLogger(__name__)

KILL_WAIT_S = 5.0


class State(enum.Enum):
    PLANNED = "planned"
    WAITING = "waiting"
    SPEAKING = "speaking"
    DELIVERED = "delivered"
    CUT = "cut"
    REPLACED = "replaced"
    FINISHED = "finished"


RUNNING = frozenset({State.PLANNED, State.WAITING, State.SPEAKING})

TRANSITIONS: dict[State, frozenset[State]] = {
    State.PLANNED: frozenset({State.WAITING, State.SPEAKING, State.DELIVERED, State.CUT, State.REPLACED}),
    State.WAITING: frozenset({State.SPEAKING, State.DELIVERED, State.CUT, State.REPLACED}),
    State.SPEAKING: frozenset({State.WAITING, State.SPEAKING, State.DELIVERED, State.CUT, State.REPLACED}),
    State.DELIVERED: frozenset({State.FINISHED}),
    State.CUT: frozenset({State.FINISHED}),
    State.REPLACED: frozenset({State.FINISHED}),
    State.FINISHED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


class Call(Protocol):
    """What an answer needs of its call (voice/session.py's CallSession)."""

    sender: FrameSender
    recorder: CallRecorder
    dialogue: Dialogue

    def plan(self, question: str): ...
    def phrasebook(self) -> phrases.Phrases: ...
    def transfer_to(self, line: phrases.Line) -> None: ...
    def answer_over(self, task: "AnswerTask") -> None: ...


def ms_since(start: float) -> float:
    return round((time.monotonic() - start) * 1000.0, 1)


class AnswerTask:
    def __init__(self, call: Call, question: str, received_at: float):
        self.call = call
        self.question = question
        self.received_at = received_at  # when the caller's final prompt arrived
        self.frames = call.sender.answer()
        self.id = self.frames.id
        self.record = call.recorder.answer(self.id, question)
        self.state = State.PLANNED
        self.heard: str | None = None  # utteranceUntilInterrupt, when the caller barged in
        self.stream = None
        self.greenlet: gevent.Greenlet | None = None
        self._lock = threading.Lock()

    def start(self) -> gevent.Greenlet:
        self.greenlet = gevent.spawn(self._run)
        return self.greenlet

    # -- states --------------------------------------------------------------------

    def _move(self, new: State) -> None:
        if new not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"answer {self.id}: {self.state.value} -> {new.value}")
        self.state = new

    def _advance(self, new: State) -> bool:
        """The greenlet's own step: False once the answer was cut (or replaced) under it."""
        with self._lock:
            if self.state not in RUNNING:
                return False
            self._move(new)
            return True

    # -- the caller's side (the socket's greenlet) -----------------------------------------

    def cut(self, heard: str | None = None) -> None:
        """Nothing more of this answer goes out; its generation is cancelled.

        `heard` is what the caller heard (utteranceUntilInterrupt); without it, the pieces
        already sent count as heard.
        """
        with self._lock:
            was = self.state
            if was in RUNNING:
                self._move(State.CUT)
                self.heard = heard
                self.frames.close()
        if was is State.WAITING:
            self.greenlet.kill(block=True, timeout=KILL_WAIT_S)
        elif was in RUNNING:
            self._close_stream()
        elif was is State.DELIVERED:
            # Everything was sent; let its log write finish, then record the barge-in over it.
            self.greenlet.join(timeout=KILL_WAIT_S)
            if heard is not None:
                self.call.barged_in(self.record.turn, heard)

    # -- the answer's greenlet -------------------------------------------------------

    def _run(self) -> None:
        recorder = self.call.recorder
        try:
            if self.state is not State.PLANNED:
                return
            self.stream = stream = self.call.plan(self.question)
            if self.state is not State.PLANNED:
                return
            recorder.planned(self.record, stream)
            pieces = iter(stream)
            while self._advance(State.WAITING):
                try:
                    piece = next(pieces)
                except StopIteration:
                    if self._advance(State.DELIVERED):
                        self.frames.piece("", last=True)
                    return
                if not self._advance(State.SPEAKING):
                    return
                if not self._speak(piece.strip()):
                    return
        except ConnectionClosed:
            pass  # the socket's loop sees it too and finalizes the call
        except Exception:
            if self.state in RUNNING:  # a stream closed under it by a cut may raise: that is no failure
                log.exception("call %s: answer %s failed", recorder.call_id, self.id)
                self._failed()
        finally:
            self._finish()

    def _speak(self, piece: str) -> bool:
        """Send one written piece in its speech form (rag/speech.py); False when it did not go out."""
        if not piece:
            return True
        spoken = speech_form(piece)
        if not self.frames.piece(spoken):
            return False
        recorder = self.call.recorder
        recorder.piece_sent(self.record.turn, piece, spoken)
        if self.record.turn.first_piece_ms is None:
            recorder.first_piece(self.record, ms_since(self.received_at), self.stream)
        else:
            recorder.more_said(self.record, self.stream)
        return True

    def _failed(self) -> None:
        """The engine broke (its own LLM errors are handled inside it): the caller must not hear silence."""
        if self.record.said_anything:
            if self._advance(State.DELIVERED):
                self.frames.piece("", last=True)
            return
        line = self.call.phrasebook().engine_failed()
        if line.transfer_to:
            with self._lock:
                if self.state not in RUNNING:
                    return
                self._move(State.REPLACED)
                self.frames.close()
            self.call.recorder.wait_for_question(self.record)  # the transfer turn is logged after the question
            self.call.transfer_to(line)
            return
        if not self._advance(State.SPEAKING):
            return
        parts = phrases.pieces(line.text)  # no number to dial: how to reach the office, as this answer's end
        sent = self.frames.whole([spoken for _, spoken in parts])
        for written, spoken in parts[:sent]:
            self.call.recorder.piece_sent(self.record.turn, written, spoken)

    def _close_stream(self) -> None:
        stream = self.stream
        if stream is not None:
            try:
                stream.close()  # closes the LLM's HTTP stream if it is still open
            except Exception:
                log.exception("call %s: closing answer stream failed", self.call.recorder.call_id)

    def _finish(self) -> None:
        with self._lock:
            if self.state in RUNNING:  # the socket took no more, or it closed: no cut, just over
                self._move(State.DELIVERED)
            cut = self.state is State.CUT
        self._close_stream()
        stream = self.stream
        recorder = self.call.recorder
        recorder.answer_ended(self.record, stream, cut=cut, heard=self.heard, total_ms=ms_since(self.received_at))
        if stream is not None:
            self.call.dialogue.add(self.question, self.record.turn.spoken_text, getattr(stream, "query", None),
                                   getattr(stream, "passages", ()), self.record.turn.answer_id)
        self.call.answer_over(self)
        try:
            recorder.save_answer(self.record)
        finally:
            with self._lock:
                self._move(State.FINISHED)
