"""One phone call: everything the call knows lives in its CallSession.

The socket's own greenlet reads frames and handles them in order (this module);
each answer runs in a greenlet of its own (answer_task.py), so a barge-in can
cancel it at once. Frames leave through the call's FrameSender (sender.py), which
numbers them and orders both greenlets' frames; every bot turn and log write goes
through the call's recorder (recorder.py); the fixed phrases are chosen in
phrases.py.
"""
from __future__ import annotations

import logging
import time
import weakref

import gevent
from simple_websocket import ConnectionClosed

from ..bot_settings import BotSettings, get_bot_settings
from ..extensions import db
from ..models import (OUTCOME_COMPLETED, OUTCOME_ERROR, OUTCOME_HANGUP, OUTCOME_LOST, OUTCOME_NO_OPERATOR,
                      OUTCOME_TRANSFER_FAILED, OUTCOME_TRANSFERRED)
from ..rag.dialogue import Dialogue
from . import frames, intents, limits, phrases
from .answer_task import KILL_WAIT_S, AnswerTask
from .caller import CallerProfile, profile_for
from .recorder import CallRecorder
from .sender import FrameSender, SocketQueue, abort_socket, close_within

log = logging.getLogger(__name__)

GREETING_ID = "greeting"
CLOSE_WAIT_S = 2.0
GOING_AWAY = 1001
POLICY_VIOLATION = 1008

# The scenario's `hangup` reasons (voximplant/scenario_barge_in.js) that tell how the call ended
# better than the server knows: after a `transfer` frame only "transferred" means someone took it.
HANGUP_OUTCOMES = {
    "transferred": OUTCOME_TRANSFERRED,
    "transfer_failed": OUTCOME_TRANSFER_FAILED,  # nobody answered: the caller was told to call back
    "no_operator": OUTCOME_NO_OPERATOR,  # a transfer without a number to dial
    "silence": OUTCOME_COMPLETED,  # reprompted, then said goodbye to
    "caller_hangup": OUTCOME_HANGUP,  # also while the operator's phone was still ringing
}

# The calls of this worker process, so a shutdown can end them properly (end_all_calls).
_open_sessions: "weakref.WeakSet[CallSession]" = weakref.WeakSet()


def end_all_calls() -> int:
    """Server shutdown: close every call socket of this process (1001); each call logs itself as lost.

    gunicorn SIGKILLs a worker whose calls outlast the graceful timeout; ended here first,
    no call is left "in progress" in the log forever. Returns how many were ended.
    """
    sessions = list(_open_sessions)
    for session in sessions:
        session.shut_down()
    return len(sessions)


def close_socket(ws, code: int = 1000, message: str | None = None) -> None:
    """Close with a close frame, then let the client answer it before the TCP socket goes.

    Closing the TCP socket with the client's frames still unread makes the kernel send
    a reset, and the client may lose our close frame (and its code, e.g. 1008) with it.
    simple-websocket's reader keeps reading until the client's close frame arrives.
    """
    try:
        if not close_within(ws, CLOSE_WAIT_S, code, message):
            return  # a client that reads nothing is cut off instead
    except ConnectionClosed:
        return
    except Exception:  # the socket broke under us: nothing left to close politely
        log.debug("closing the call socket failed", exc_info=True)
        return
    thread = getattr(ws, "thread", None)
    if thread is not None:
        thread.join(timeout=CLOSE_WAIT_S)


class CallSession:
    def __init__(self, ws, app, outlet=None, engine=None):
        """`outlet` (where frames go, sender.py) and `engine` (rag's answer engine) are the socket's
        queue and the app's engine unless given: unit tests drive a call without a socket."""
        self.ws = ws
        self.app = app
        cfg = app.config
        self.max_frame_bytes = cfg["VOICE_MAX_FRAME_BYTES"]
        self.max_json_depth = cfg["VOICE_MAX_JSON_DEPTH"]
        self.idle_timeout = cfg["VOICE_IDLE_TIMEOUT"]
        self.recorder = CallRecorder(app)
        # Bounded sockets (issue #13): what a socket may send us, and what we hold for it.
        self.guard = limits.SocketGuard(self.send_error, cfg["VOICE_MAX_FRAMES_PER_SECOND"],
                                        cfg["VOICE_MAX_PROMPTS_PER_SECOND"], cfg["VOICE_RATE_LIMIT_CLOSE_AFTER"])
        self.outlet = outlet or SocketQueue(ws, cfg["VOICE_SEND_QUEUE_BYTES"], cfg["VOICE_SEND_TIMEOUT"],
                                            call_label=lambda: self.recorder.call_id)
        self.sender = FrameSender(self.outlet)
        self.engine = engine
        self.profile: CallerProfile | None = None
        self.current: AnswerTask | None = None
        self.running: set[gevent.Greenlet] = set()  # answer greenlets not yet done with their log writes
        self.outcome: str | None = None  # decided by the call itself: transferred or completed
        self.silences = 0  # `silence` frames since the caller last spoke or pressed a key
        self.transferred_to: str | None = None
        self.shutting_down = False
        self.last_heard = time.monotonic()
        self.dialogue = Dialogue()  # the call's memory: follow-ups and the LLM's view of the call

    @property
    def started(self) -> bool:
        return self.profile is not None

    # -- the socket's loop --------------------------------------------------

    def shut_down(self) -> None:
        self.shutting_down = True
        try:
            if self.outlet.queue:  # a frame half written: a close frame now would garble it
                abort_socket(self.ws)
            else:
                close_within(self.ws, CLOSE_WAIT_S, GOING_AWAY, "server shutting down")
        except Exception:  # already closed
            pass
        self.ws.event.set()  # wake the loop's receive(): it sees the socket closed

    def run(self) -> None:
        outcome, reason = OUTCOME_LOST, "socket closed"
        close_code = 1000
        _open_sessions.add(self)
        try:
            while True:
                if self.outlet.failure:
                    outcome, reason = OUTCOME_LOST, self.outlet.failure
                    break
                idle_for = time.monotonic() - max(self.last_heard, self.sender.last_sent)
                if self.current is None and idle_for >= self.idle_timeout:
                    outcome, reason = OUTCOME_LOST, "idle timeout"
                    break
                raw = self.ws.receive(timeout=max(self.idle_timeout - idle_for, 0.5))
                if raw is None:
                    continue
                self.last_heard = time.monotonic()
                if not self.guard.frame():
                    continue  # over the frame rate: refused unread
                ended = self.handle(raw)
                if ended:
                    outcome, reason = ended
                    break
        except limits.Abuse as exc:
            log.warning("call %s: closed for flooding: %s", self.recorder.call_id, exc)
            outcome, reason, close_code = OUTCOME_LOST, "rate limit exceeded", POLICY_VIOLATION
        except ConnectionClosed:
            outcome, reason = OUTCOME_LOST, ("server shut down" if self.shutting_down
                                             else self.outlet.failure or "socket closed")
        except gevent.GreenletExit:
            outcome, reason = OUTCOME_LOST, "server shut down"
            raise
        except Exception:
            log.exception("call %s: unexpected error", self.recorder.call_id)
            outcome, reason = OUTCOME_ERROR, "server error"
        finally:
            _open_sessions.discard(self)
            self.end(outcome, reason)
            if self.outlet.drain(CLOSE_WAIT_S):  # the last frames before the close frame
                close_socket(self.ws, close_code, reason if close_code != 1000 or reason == "idle timeout" else None)

    def end(self, outcome: str, reason: str) -> None:
        """The call is over: nothing more goes out, the answer is cut, the call is finalized."""
        self.sender.stop()
        self.stop_answer()
        # A cut answer may still be writing its last state (a barge-in never kills a database
        # write): the call is finalized after its turns, so a finished call's log is whole.
        gevent.joinall(list(self.running), timeout=KILL_WAIT_S)
        if self.started:
            outcome = self.outcome or outcome
            self.recorder.call_ended(outcome, reason, self.transferred_to)
            log.info("call %s ended: %s (%s)", self.recorder.call_id, outcome, reason)

    def handle(self, raw) -> tuple[str, str] | None:
        """Handle one frame; returns (outcome, reason) when the call is over."""
        try:
            event = frames.parse(raw, self.max_frame_bytes, self.max_json_depth)
        except frames.FrameError as exc:
            self.send_error(exc.code, exc.message)
            return None
        if isinstance(event, frames.Setup) and self.started:
            self.send_error("duplicate_setup", "setup was already received on this socket")
            return None
        if not isinstance(event, frames.Setup) and not self.started:
            self.send_error("no_setup", "the first frame must be setup")
            return None
        try:
            if isinstance(event, frames.Setup):
                self.on_setup(event)
            elif isinstance(event, frames.Prompt):
                self.on_prompt(event)
            elif isinstance(event, frames.Interrupt):
                self.on_interrupt(event)
            elif isinstance(event, frames.Dtmf):
                self.on_dtmf(event)
            elif isinstance(event, frames.Recording):
                self.recorder.recording(event.url)
            elif isinstance(event, frames.Silence):
                self.on_silence()
            elif isinstance(event, frames.Hangup):
                self.stop_answer()
                reason = event.reason or "caller hung up"
                ended_as = HANGUP_OUTCOMES.get(reason, self.outcome)
                # Hanging up after hearing that no one can take the call keeps that outcome.
                if not (self.outcome == OUTCOME_NO_OPERATOR and ended_as in (OUTCOME_HANGUP, OUTCOME_COMPLETED)):
                    self.outcome = ended_as
                return OUTCOME_HANGUP, reason
        except (ConnectionClosed, limits.Abuse):
            raise
        except Exception:  # one bad turn must not drop the call
            log.exception("call %s: error handling %s", self.recorder.call_id, type(event).__name__)
            self.send_error("internal_error", "the server failed to handle this frame")
        return None

    # -- saying things ------------------------------------------------------

    def send_error(self, code: str, message: str) -> None:
        log.info("call %s: error frame %s: %s", self.recorder.call_id, code, message)
        self.sender.error(code, message)

    def say(self, line: phrases.Line, answer_id: str | None = None) -> None:
        """A phrase as one whole answer: its speakable pieces (sentences, as in answers) as `text`
        frames in speech form, seq 0..n, `last` on the final one, so a barge-in reports the
        sentences heard. Logged as a bot turn of the phrase's kind."""
        out = self.sender.answer(answer_id)
        turn = self.recorder.phrase(line.kind, out.id, line.text)
        parts = phrases.pieces(line.text)
        sent = out.whole([spoken for _, spoken in parts])
        for written, spoken in parts[:sent]:
            self.recorder.piece_sent(turn, written, spoken)
        self.recorder.phrase_said(turn)

    def settings(self) -> BotSettings:
        # A short app context of its own: the settings read must not pin a pooled connection.
        with self.app.app_context():
            return get_bot_settings()

    def phrasebook(self) -> phrases.Phrases:
        """The phrases in force now (the panel may have changed them since the last turn)."""
        return phrases.Phrases(self.settings(), self.profile)

    # -- events -------------------------------------------------------------

    def on_setup(self, event: frames.Setup) -> None:
        settings = self.settings()
        with self.app.app_context():
            self.profile = profile_for(event.from_number)
        self.recorder.call_started(event, self.profile)
        log.info("call %s started (Voximplant call %s)", self.recorder.call_id, event.call_id)
        self.say(phrases.Phrases(settings, self.profile).greeting(), answer_id=GREETING_ID)

    def on_prompt(self, event: frames.Prompt) -> None:
        if not event.last:
            return  # a partial result: the caller is still speaking
        text = event.text.strip()
        if not text or not self.guard.final_prompt():
            return  # nothing said, or over the final-prompt rate: no turn, no answer
        received_at = time.monotonic()
        self.silences = 0
        # A new question while an answer streams cuts that answer (rule 2).
        self.stop_answer()
        caller_seq = self.recorder.next_seq()
        intent = intents.detect(text)
        if intent is None:
            task = self.start_answer(text, received_at)
            with self.recorder.question_first(task.record):
                # Let the answer run up to its first wait (the LLM request) before the question's
                # record is queued: the model starts a moment sooner. The answer's own records wait
                # for the question's (question_first), so the log still holds the question first.
                gevent.sleep(0)
                self.recorder.caller_said(text, event.confidence, caller_seq)
            return
        self.recorder.caller_said(text, event.confidence, caller_seq)
        if intent == intents.TRANSFER:
            self.transfer()
        else:
            self.goodbye()

    def on_interrupt(self, event: frames.Interrupt) -> None:
        current = self.current
        if current is not None and current.id == event.answer_id:
            self.stop_answer(heard=event.utterance)
            return
        turn = self.recorder.turn_for(event.answer_id)
        if turn is None:
            self.send_error("unknown_answer", f"no answer {event.answer_id[:40]!r} on this call")
            return
        # The answer was all sent, but its speech was still playing when the caller spoke.
        self.barged_in(turn, event.utterance)

    def barged_in(self, turn, utterance: str) -> None:
        """The caller spoke over an answer all sent: the log and the call's memory keep what was heard."""
        self.recorder.barged_in(turn, utterance)
        if turn.answer_id:
            self.dialogue.cut(turn.answer_id, turn.spoken_text or "")

    def on_dtmf(self, event: frames.Dtmf) -> None:
        self.silences = 0
        self.recorder.key_pressed(event.digit)
        if event.digit == "0":
            self.stop_answer()
            self.transfer()

    def on_silence(self) -> None:
        """The scenario heard nothing for its silenceMs: the panel's reprompt, the next time its goodbye
        and `end` (reason "silence", which the scenario's hangup then reports)."""
        if self.current is not None:
            return  # an answer is still on its way: the caller is waiting, not silent
        self.silences += 1
        if self.silences == 1:
            self.say(self.phrasebook().reprompt())
        else:
            self.goodbye(reason="silence")

    # -- transfer and goodbye -------------------------------------------------

    def transfer(self) -> None:
        line = self.phrasebook().transfer()
        if line.transfer_to is None:
            self.outcome = OUTCOME_NO_OPERATOR  # an outcome of its own: admins count these callers
            self.say(line)  # no number: tell how to reach the office
            return
        self.transfer_to(line)

    def transfer_to(self, line: phrases.Line) -> None:
        turn = self.recorder.whole_phrase(line.kind, line.text)
        self.outcome, self.transferred_to = OUTCOME_TRANSFERRED, line.transfer_to
        self.sender.transfer(line.transfer_to, turn.spoken)
        self.recorder.whole_phrase_said(turn)

    def goodbye(self, reason: str = "goodbye") -> None:
        turn = self.recorder.whole_phrase(phrases.GOODBYE, self.phrasebook().goodbye().text)
        if self.outcome != OUTCOME_NO_OPERATOR:  # a goodbye after no one could take the call keeps that outcome
            self.outcome = OUTCOME_COMPLETED
        self.sender.end(reason, turn.spoken)
        self.recorder.whole_phrase_said(turn)

    # -- answers (answer_task.py) -------------------------------------------

    def start_answer(self, question: str, received_at: float) -> AnswerTask:
        task = AnswerTask(self, question, received_at)
        self.current = task
        greenlet = task.start()
        self.running.add(greenlet)
        greenlet.link(self.running.discard)
        return task

    def stop_answer(self, heard: str | None = None) -> None:
        """Cut the current answer, if any (answer_task.AnswerTask.cut)."""
        task, self.current = self.current, None
        if task is not None:
            task.cut(heard)

    def answer_over(self, task: AnswerTask) -> None:
        """The answer's streaming is over (only its log write remains): the next one may start."""
        if self.current is task:
            self.current = None

    def plan(self, question: str):
        """Retrieval and the engine's answer stream, in the answer's greenlet."""
        with self.app.app_context():
            from ..rag import get_engine

            engine = self.engine or get_engine()
            stream = engine.answer(question, get_bot_settings(), caller=self.profile.context, dialogue=self.dialogue)
            # Retrieval is done: give its pooled connection back for the seconds of streaming.
            db.session.remove()
        return stream
