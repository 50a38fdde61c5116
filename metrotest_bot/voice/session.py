"""One phone call: everything the call knows lives in its CallSession.

The socket's own greenlet reads frames and handles them in order; each answer
runs in a greenlet of its own, so a barge-in can cancel it at once. Frames
from both greenlets go out under one lock, and an answer's `cancelled` flag is
set under that same lock: once an interrupt is handled, no further `text` of
that answer can leave.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections import OrderedDict

import gevent
from gevent.event import Event
from simple_websocket import ConnectionClosed

from ..bot_settings import BotSettings, get_bot_settings
from ..extensions import db
from ..models import (OUTCOME_COMPLETED, OUTCOME_ERROR, OUTCOME_HANGUP, OUTCOME_LOST, OUTCOME_NO_OPERATOR,
                      OUTCOME_TRANSFER_FAILED, OUTCOME_TRANSFERRED)
from ..rag.dialogue import Dialogue
from ..rag.speakable import split_text
from ..rag.speech import speech_form
from . import frames, intents, limits
from .caller import CallerProfile, profile_for
from .calllog import BotTurn, CallLog
from .sender import FrameSender, abort_socket, close_within

log = logging.getLogger(__name__)

GREETING_ID = "greeting"
KEEP_RECENT_ANSWERS = 8  # answers an `interrupt` may still refer to (their TTS may still be playing)
KILL_WAIT_S = 5.0
QUESTION_LOG_WAIT_S = 15.0  # a guard only: the caller's turn is written (or given up) well before


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


def new_answer_id() -> str:
    return uuid.uuid4().hex[:12]


def ms_since(start: float) -> float:
    return round((time.monotonic() - start) * 1000.0, 1)


class Answer:
    """One answer on its way out: its greenlet, what was sent, how it ended."""

    def __init__(self, question: str, received_at: float, seq: int):
        self.id = new_answer_id()
        self.question = question
        self.received_at = received_at  # when the caller's final prompt arrived
        self.turn = BotTurn(kind="answer", answer_id=self.id, question=question, seq=seq)
        self.greenlet: gevent.Greenlet | None = None
        self.stream = None
        self.next_seq = 0
        self.sent: list[str] = []  # written pieces; the turn keeps their speech forms beside them
        self.cancelled = False  # set under the session's send lock
        self.finishing = False  # streaming is over; only the log write remains
        self.waiting_for_piece = False  # inside next(stream): the one place it may be killed
        self.done = False  # the final state is in the log (or was tried)
        self.spoken: str | None = None  # utteranceUntilInterrupt, when the caller barged in
        # Set once the caller's turn (the question) is written: the answer's own log writes wait
        # for it, so the log holds the question before its answer, whichever greenlet runs first.
        self.question_logged = Event()

    @property
    def sent_text(self) -> str:
        return " ".join(self.sent)

    @property
    def sent_spoken(self) -> str:
        return " ".join(self.turn.spoken_pieces)


class CallSession:
    def __init__(self, ws, app):
        self.ws = ws
        self.app = app
        cfg = app.config
        self.max_frame_bytes = cfg["VOICE_MAX_FRAME_BYTES"]
        self.max_json_depth = cfg.get("VOICE_MAX_JSON_DEPTH", frames.MAX_JSON_DEPTH)
        self.idle_timeout = cfg["VOICE_IDLE_TIMEOUT"]
        self.log = CallLog(app)
        # Bounded sockets (issue #13): what a socket may send us, and what we hold for it.
        self.guard = limits.SocketGuard(self.send_error, cfg["VOICE_MAX_FRAMES_PER_SECOND"],
                                        cfg["VOICE_MAX_PROMPTS_PER_SECOND"], cfg["VOICE_RATE_LIMIT_CLOSE_AFTER"])
        self.sender = FrameSender(ws, cfg["VOICE_SEND_QUEUE_BYTES"], cfg["VOICE_SEND_TIMEOUT"],
                                  call_label=lambda: self.log.call_id)
        self.send_lock = threading.Lock()
        self.profile: CallerProfile | None = None
        self.current: Answer | None = None
        self.running: set[gevent.Greenlet] = set()  # answer greenlets not yet done with their log writes
        self.recent: OrderedDict[str, BotTurn] = OrderedDict()
        self.outcome: str | None = None  # decided by the call itself: transferred or completed
        self.silences = 0  # `silence` frames since the caller last spoke or pressed a key
        self.transferred_to: str | None = None
        self.open = True
        self.shutting_down = False
        self.last_activity = time.monotonic()
        self.dialogue = Dialogue()  # the call's memory: follow-ups and the LLM's view of the call

    @property
    def started(self) -> bool:
        return self.profile is not None

    # -- the socket's loop --------------------------------------------------

    def shut_down(self) -> None:
        self.shutting_down = True
        try:
            if self.sender.queue:  # a frame half written: a close frame now would garble it
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
                if self.sender.failure:
                    outcome, reason = OUTCOME_LOST, self.sender.failure
                    break
                idle_for = time.monotonic() - self.last_activity
                if self.current is None and idle_for >= self.idle_timeout:
                    outcome, reason = OUTCOME_LOST, "idle timeout"
                    break
                raw = self.ws.receive(timeout=max(self.idle_timeout - idle_for, 0.5))
                if raw is None:
                    continue
                self.last_activity = time.monotonic()
                if not self.guard.frame():
                    continue  # over the frame rate: refused unread
                ended = self.handle(raw)
                if ended:
                    outcome, reason = ended
                    break
        except limits.Abuse as exc:
            log.warning("call %s: closed for flooding: %s", self.log.call_id, exc)
            outcome, reason, close_code = OUTCOME_LOST, "rate limit exceeded", POLICY_VIOLATION
        except ConnectionClosed:
            outcome, reason = OUTCOME_LOST, ("server shut down" if self.shutting_down
                                             else self.sender.failure or "socket closed")
        except gevent.GreenletExit:
            outcome, reason = OUTCOME_LOST, "server shut down"
            raise
        except Exception:
            log.exception("call %s: unexpected error", self.log.call_id)
            outcome, reason = OUTCOME_ERROR, "server error"
        finally:
            _open_sessions.discard(self)
            self.open = False
            self.stop_answer()
            # A cut answer may still be writing its last state (a barge-in never kills a database
            # write): the call is finalized after its turns, so a finished call's log is whole.
            gevent.joinall(list(self.running), timeout=KILL_WAIT_S)
            if self.started:
                outcome = self.outcome or outcome
                self.log.finish(outcome, reason=reason, transferred_to=self.transferred_to)
                log.info("call %s ended: %s (%s)", self.log.call_id, outcome, reason)
            if self.sender.drain(CLOSE_WAIT_S):  # the last frames before the close frame
                close_socket(self.ws, close_code, reason if close_code != 1000 or reason == "idle timeout" else None)

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
                self.log.set_recording(event.url)
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
            log.exception("call %s: error handling %s", self.log.call_id, type(event).__name__)
            self.send_error("internal_error", "the server failed to handle this frame")
        return None

    # -- sending ------------------------------------------------------------

    def send(self, frame: str) -> bool:
        with self.send_lock:
            return self._send_locked(frame)

    def _send_locked(self, frame: str) -> bool:
        if not self.open or not self.sender.put(frame):
            return False
        self.last_activity = time.monotonic()
        return True

    def send_error(self, code: str, message: str) -> None:
        log.info("call %s: error frame %s: %s", self.log.call_id, code, message)
        self.send(frames.error_frame(code, message))

    def send_piece(self, answer: Answer, text: str, last: bool = False) -> bool:
        """Send one `text` frame of an answer unless the answer was cancelled.

        `text` is the written piece; the frame carries its speech form (the one place
        where pieces of answers become what TTS reads: rag/speech.py).
        """
        spoken = speech_form(text)
        with self.send_lock:
            if answer.cancelled or not self._send_locked(frames.text_frame(answer.id, answer.next_seq, spoken, last)):
                return False
            answer.next_seq += 1
            if text:
                answer.sent.append(text)
                answer.turn.pieces.append(text)
                answer.turn.spoken_pieces.append(spoken)
            return True

    def send_phrase(self, answer_id: str, phrase: str, turn: BotTurn) -> None:
        """A configured phrase as one whole answer: its speakable pieces (sentences, as in answers) as
        `text` frames in speech form, seq 0..n, `last` on the final one. So a barge-in reports the
        sentences heard. The pieces sent go into `turn`, written and spoken.
        """
        pieces = split_text(phrase) or [""]  # an empty phrase still closes its answer
        spoken = [speech_form(p) for p in pieces]
        with self.send_lock:
            for seq, piece in enumerate(pieces):
                if not self._send_locked(frames.text_frame(answer_id, seq, spoken[seq], seq == len(pieces) - 1)):
                    break
                if piece:
                    turn.pieces.append(piece)
                    turn.spoken_pieces.append(spoken[seq])

    def say(self, kind: str, phrase: str, answer_id: str | None = None) -> BotTurn:
        """A configured phrase as one whole answer (send_phrase), logged as a bot turn."""
        answer_id = answer_id or new_answer_id()
        turn = BotTurn(kind=kind, answer_id=answer_id, planned_text=phrase, source="phrase", seq=self.log.next_seq())
        self.send_phrase(answer_id, phrase, turn)
        turn.text = turn.spoken_text = " ".join(turn.pieces)
        turn.spoken = " ".join(turn.spoken_pieces)
        self.log.save_bot_turn(turn)
        self._remember(turn)
        return turn

    def _remember(self, turn: BotTurn) -> None:
        self.recent[turn.answer_id] = turn
        while len(self.recent) > KEEP_RECENT_ANSWERS:
            self.recent.popitem(last=False)

    def settings(self) -> BotSettings:
        # A short app context of its own: the settings read must not pin a pooled connection.
        with self.app.app_context():
            return get_bot_settings()

    # -- events -------------------------------------------------------------

    def on_setup(self, event: frames.Setup) -> None:
        settings = self.settings()
        with self.app.app_context():
            profile = profile_for(event.from_number, settings)
        self.profile = profile
        self.log.start(vox_call_id=event.call_id, vox_session_id=event.session_id, caller=event.from_number,
                       dialled=event.to_number, **profile.call_columns())
        log.info("call %s started (Voximplant call %s)", self.log.call_id, event.call_id)
        self.say("greeting", profile.greeting, answer_id=GREETING_ID)

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
        caller_seq = self.log.next_seq()
        intent = intents.detect(text)
        if intent is None:
            answer = self.start_answer(text, received_at)
            try:
                # Let the answer run up to its first wait (the LLM request, or its own first log
                # write) before this one: a SQLite commit does not yield, and the caller should
                # not wait for it.
                gevent.sleep(0)
                self.log.caller_turn(text, confidence=event.confidence, seq=caller_seq)
            finally:
                answer.question_logged.set()
            return
        self.log.caller_turn(text, confidence=event.confidence, seq=caller_seq)
        if intent == intents.TRANSFER:
            self.transfer()
        else:
            self.goodbye()

    def on_interrupt(self, event: frames.Interrupt) -> None:
        current = self.current
        if current is not None and current.id == event.answer_id:
            self.stop_answer(spoken=event.utterance)
            return
        turn = self.recent.get(event.answer_id)
        if turn is None:
            self.send_error("unknown_answer", f"no answer {event.answer_id[:40]!r} on this call")
            return
        # The answer was all sent, but its speech was still playing when the caller spoke.
        turn.interrupted = True
        turn.text, turn.spoken = turn.heard(event.utterance)
        turn.spoken_text = turn.text
        self.log.save_bot_turn(turn)

    def on_dtmf(self, event: frames.Dtmf) -> None:
        self.silences = 0
        self.log.caller_turn(event.digit, kind="dtmf", seq=self.log.next_seq())
        if event.digit == "0":
            self.stop_answer()
            self.transfer()

    # -- transfer and goodbye -------------------------------------------------

    def transfer(self) -> None:
        settings = self.settings()
        target = self.profile.transfer_target(settings)
        if not target:
            self.outcome = OUTCOME_NO_OPERATOR  # an outcome of its own: admins count these callers
            self.say("transfer", settings.no_operator_phrase)  # no number: tell how to reach the office
            return
        self._transfer_to(target, settings.transfer_phrase)

    def _whole_phrase_turn(self, kind: str, phrase: str) -> BotTurn:
        """The bot turn of a phrase said whole in a `transfer` or `end` frame (not as answer pieces)."""
        return BotTurn(kind=kind, answer_id=None, text=phrase, planned_text=phrase, spoken_text=phrase,
                       spoken=speech_form(phrase), source="phrase", seq=self.log.next_seq())

    def _transfer_to(self, target: str, phrase: str) -> None:
        turn = self._whole_phrase_turn("transfer", phrase)
        self.outcome, self.transferred_to = OUTCOME_TRANSFERRED, target
        self.send(frames.transfer_frame(target, turn.spoken))
        self.log.save_bot_turn(turn)

    def on_silence(self) -> None:
        """The scenario heard nothing for its silenceMs: the panel's reprompt, the next time its goodbye
        and `end` (reason "silence", which the scenario's hangup then reports)."""
        if self.current is not None:
            return  # an answer is still on its way: the caller is waiting, not silent
        self.silences += 1
        if self.silences == 1:
            self.say("reprompt", self.settings().reprompt)
        else:
            self.goodbye(reason="silence")

    def goodbye(self, reason: str = "goodbye") -> None:
        turn = self._whole_phrase_turn("goodbye", self.settings().goodbye)
        if self.outcome != OUTCOME_NO_OPERATOR:  # a goodbye after no one could take the call keeps that outcome
            self.outcome = OUTCOME_COMPLETED
        self.send(frames.end_frame(reason, turn.spoken))
        self.log.save_bot_turn(turn)

    # -- answers ------------------------------------------------------------

    def start_answer(self, question: str, received_at: float) -> Answer:
        answer = Answer(question, received_at, self.log.next_seq())
        self.current = answer
        answer.greenlet = gevent.spawn(self._answer_main, answer)
        self.running.add(answer.greenlet)
        answer.greenlet.link(self.running.discard)
        return answer

    def stop_answer(self, spoken: str | None = None) -> None:
        """End the current answer now: nothing more of it goes out, its generation is cancelled.

        `spoken` is what the caller heard (utteranceUntilInterrupt); without it,
        the pieces already sent are taken as spoken.
        """
        answer = self.current
        if answer is None:
            return
        with self.send_lock:
            answer.cancelled = True
        self.current = None
        if answer.finishing:
            # Everything was sent; let its log write finish, then record the barge-in over it.
            answer.greenlet.join(timeout=KILL_WAIT_S)
            if spoken is not None:
                answer.turn.interrupted = True
                answer.turn.text, answer.turn.spoken = answer.turn.heard(spoken)
                answer.turn.spoken_text = answer.turn.text
                self.log.save_bot_turn(answer.turn)
            return
        answer.spoken = spoken
        answer.turn.interrupted = True
        if answer.waiting_for_piece:
            # It waits on the LLM stream and holds no database connection: GreenletExit lands
            # right there, and its finally closes the stream and logs the turn.
            answer.greenlet.kill(block=True, timeout=KILL_WAIT_S)
        else:
            # In retrieval or a log write (or not started): never kill there, a greenlet killed
            # inside a database call leaves a broken connection in the pool. Closing the stream
            # stops the LLM now; the greenlet sees `cancelled` at its next step.
            self._close_stream(answer)

    def _answer_main(self, answer: Answer) -> None:
        settings = None
        try:
            if answer.cancelled:
                return
            with self.app.app_context():
                from ..rag import get_engine

                settings = get_bot_settings()
                stream = get_engine().answer(answer.question, settings, caller=self.profile.context,
                                             dialogue=self.dialogue)
                answer.stream = stream
                # Retrieval is done: give its pooled connection back for the seconds of streaming.
                db.session.remove()
            if answer.cancelled:
                return
            answer.turn.answered = stream.answered
            answer.turn.source = stream.source
            answer.turn.passages = [p.to_dict() for p in (stream.passages or [])]
            pieces = iter(stream)
            while True:
                answer.waiting_for_piece = True
                try:
                    piece = next(pieces)
                except StopIteration:
                    break
                finally:
                    answer.waiting_for_piece = False
                piece = piece.strip()
                if not piece:
                    continue
                if not self.send_piece(answer, piece):
                    return
                if answer.turn.first_piece_ms is None:
                    answer.turn.first_piece_ms = ms_since(answer.received_at)
                self._save_progress(answer)  # each piece in the log as it is said (the writer groups them)
            answer.finishing = True
            self.send_piece(answer, "", last=True)
        except ConnectionClosed:
            pass  # the socket's loop sees it too and finalizes the call
        except Exception:
            if not answer.cancelled:  # a stream closed under it by a barge-in may raise: that is no failure
                log.exception("call %s: answer %s failed", self.log.call_id, answer.id)
                self._answer_failed(answer, settings)
        finally:
            answer.finishing = True
            self._finish_answer(answer)

    def _close_stream(self, answer: Answer) -> None:
        stream = answer.stream
        if stream is not None:
            try:
                stream.close()  # closes the LLM's HTTP stream if it is still open
            except Exception:
                log.exception("call %s: closing answer stream failed", self.log.call_id)

    def _answer_failed(self, answer: Answer, settings: BotSettings | None) -> None:
        """The engine broke (its own LLM errors are handled inside it): the caller must not hear silence."""
        if answer.cancelled:
            return
        settings = settings or self.settings()
        if answer.sent:
            self.send_piece(answer, "", last=True)
            return
        target = self.profile.transfer_target(settings)
        if target:
            with self.send_lock:
                if answer.cancelled:
                    return
                answer.cancelled = True  # the transfer replaces this answer
            self._wait_for_question(answer)  # the transfer turn is logged after the question too
            self._transfer_to(target, settings.error_phrase)
        else:
            pieces = split_text(settings.no_operator_phrase) or [""]
            for i, piece in enumerate(pieces):
                if not self.send_piece(answer, piece, last=i == len(pieces) - 1):
                    break

    def _wait_for_question(self, answer: Answer) -> None:
        """Before the answer's first log write: the caller's turn must be in the log first."""
        if not answer.question_logged.wait(timeout=QUESTION_LOG_WAIT_S):
            log.warning("call %s: the question of answer %s is not in the log yet", self.log.call_id, answer.id)

    def _save_progress(self, answer: Answer) -> None:
        self._wait_for_question(answer)
        turn = answer.turn
        turn.planned_text = self._planned(answer)
        turn.text, turn.spoken = answer.sent_text, answer.sent_spoken
        self.log.save_bot_turn(turn)

    @staticmethod
    def _planned(answer: Answer) -> str:
        planned = getattr(answer.stream, "planned_text", None) if answer.stream is not None else None
        return planned or answer.sent_text

    def _finish_answer(self, answer: Answer) -> None:
        if answer.done:
            return
        answer.done = True
        self._close_stream(answer)
        stream = answer.stream
        turn = answer.turn
        turn.planned_text = self._planned(answer)
        if turn.interrupted and answer.spoken is not None:
            turn.text, turn.spoken = turn.heard(answer.spoken)  # the utterance is in speech form
            turn.spoken_text = turn.text
        else:
            turn.spoken_text = turn.text = answer.sent_text
            turn.spoken = answer.sent_spoken
        if stream is not None:
            # With an LLM the verdict is final only once it has spoken (it may say the KB has no answer).
            turn.answered, turn.source = stream.answered, stream.source
            self.dialogue.add(answer.question, turn.spoken_text, getattr(stream, "query", None))
        timings = getattr(stream, "timings", None)
        if timings is not None:
            turn.retrieval_ms = timings.retrieval_ms
            turn.llm_first_token_ms = timings.llm_first_token_ms
        turn.total_ms = ms_since(answer.received_at)
        if self.current is answer:
            self.current = None
        if turn.turn_id is None and not turn.planned_text and not answer.sent:
            return  # cut before a word of it existed: nothing was said or planned to log
        self._wait_for_question(answer)
        self.log.save_bot_turn(turn)
        self._remember(turn)
