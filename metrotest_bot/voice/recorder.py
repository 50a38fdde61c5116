"""The call's recorder: every change to a bot turn, and every call into the call log, in one place.

The session and its answers say what happened (a piece went out, the caller barged in,
the answer ended); the recorder turns that into the bot turn's fields (calllog.BotTurn)
and writes them through CallLog: a turn is in the log as soon as something of it was
said, and updated at its end (PROTOCOL.md, rule 3). Nothing else touches a BotTurn.

Order: an answer starts before its question's record is queued (the model starts a moment
sooner), yet the log must hold the question first. An `AnswerRecord` carries an event set
once the question's record is queued; the answer's own records wait for it. (Records are
queued for the call log's writer, voice/logwriter.py: nothing here waits for the database.)
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

from gevent.event import Event

from ..rag.speech import speech_form
from . import frames
from .caller import CallerProfile
from .calllog import BotTurn, CallLog

log = logging.getLogger(__name__)

KEEP_RECENT_ANSWERS = 8  # answers an `interrupt` may still refer to (their TTS may still be playing)
QUESTION_LOG_WAIT_S = 15.0  # a guard only: the caller's turn is written (or given up) well before


@dataclass
class AnswerRecord:
    """The bot turn of one streamed answer, and whether its question is in the log yet."""

    turn: BotTurn
    question_logged: Event = field(default_factory=Event)

    @property
    def said_anything(self) -> bool:
        return bool(self.turn.pieces)


class CallRecorder:
    def __init__(self, app):
        self.log = CallLog(app)
        self.recent: OrderedDict[str, BotTurn] = OrderedDict()  # the last turns an interrupt may name

    @property
    def call_id(self) -> int | None:
        return self.log.call_id

    # -- the call ------------------------------------------------------------------

    def call_started(self, setup: frames.Setup, profile: CallerProfile) -> None:
        self.log.start(vox_call_id=setup.call_id, vox_session_id=setup.session_id, caller=setup.from_number,
                       dialled=setup.to_number, **profile.call_columns())

    def recording(self, url: str) -> None:
        self.log.set_recording(url)

    def call_ended(self, outcome: str, reason: str, transferred_to: str | None) -> None:
        self.log.finish(outcome, reason=reason, transferred_to=transferred_to)

    def next_seq(self) -> int:
        return self.log.next_seq()

    # -- the caller ----------------------------------------------------------------

    def caller_said(self, text: str, confidence: float | None, seq: int) -> None:
        self.log.caller_turn(text, confidence=confidence, seq=seq)

    @contextmanager
    def question_first(self, record: AnswerRecord):
        """Around the write of an answer's question: the answer's own writes wait until it is done
        (or given up)."""
        try:
            yield
        finally:
            record.question_logged.set()

    def key_pressed(self, digit: str) -> None:
        self.log.caller_turn(digit, kind="dtmf", seq=self.log.next_seq())

    # -- phrases -------------------------------------------------------------------

    def phrase(self, kind: str, answer_id: str, phrase: str) -> BotTurn:
        """A phrase about to be said as an answer's `text` frames (greeting, reprompt, no operator)."""
        return BotTurn(kind=kind, answer_id=answer_id, planned_text=phrase, source="phrase", seq=self.log.next_seq())

    def piece_sent(self, turn: BotTurn, written: str, spoken: str) -> None:
        if written:
            turn.pieces.append(written)
            turn.spoken_pieces.append(spoken)

    def phrase_said(self, turn: BotTurn) -> None:
        turn.text = turn.spoken_text = " ".join(turn.pieces)
        turn.spoken = " ".join(turn.spoken_pieces)
        self.log.save_bot_turn(turn)
        self._remember(turn)

    def whole_phrase(self, kind: str, phrase: str) -> BotTurn:
        """The bot turn of a phrase said whole in a `transfer` or `end` frame (not as answer pieces);
        its `spoken` is what the frame carries."""
        return BotTurn(kind=kind, answer_id=None, text=phrase, planned_text=phrase, spoken_text=phrase,
                       spoken=speech_form(phrase), source="phrase", seq=self.log.next_seq())

    def whole_phrase_said(self, turn: BotTurn) -> None:
        self.log.save_bot_turn(turn)

    # -- barge-in over what was all sent ----------------------------------------------

    def turn_for(self, answer_id: str) -> BotTurn | None:
        return self.recent.get(answer_id)

    def barged_in(self, turn: BotTurn, utterance: str) -> None:
        """The caller spoke over a turn all sent while its speech was still playing."""
        turn.interrupted = True
        turn.text, turn.spoken = turn.heard(utterance)
        turn.spoken_text = turn.text
        self.log.save_bot_turn(turn)

    # -- answers -------------------------------------------------------------------

    def answer(self, answer_id: str, question: str) -> AnswerRecord:
        return AnswerRecord(BotTurn(kind="answer", answer_id=answer_id, question=question, seq=self.log.next_seq()))

    def planned(self, record: AnswerRecord, stream) -> None:
        """Retrieval is done: the engine's first verdict and the passages it read."""
        turn = record.turn
        turn.answered = stream.answered
        turn.source = stream.source
        turn.passages = [p.to_dict() for p in (stream.passages or [])]

    def first_piece(self, record: AnswerRecord, ms: float, stream) -> None:
        """Something was said: it is in the log from now on."""
        record.turn.first_piece_ms = ms
        self.more_said(record, stream)

    def more_said(self, record: AnswerRecord, stream) -> None:
        """Each piece in the log as it is sent (the call log's writer groups them: voice/logwriter.py)."""
        turn = record.turn
        self._wait_for_question(record)
        turn.planned_text = self._planned(record, stream)
        turn.text, turn.spoken = " ".join(turn.pieces), " ".join(turn.spoken_pieces)
        self.log.save_bot_turn(turn)

    def answer_ended(self, record: AnswerRecord, stream, *, cut: bool, heard: str | None, total_ms: float) -> None:
        """The turn's final fields (not yet written: save_answer). `heard` is the caller's
        utteranceUntilInterrupt when cut by an interrupt; without it, the pieces sent count as heard."""
        turn = record.turn
        turn.planned_text = self._planned(record, stream)
        if cut:
            turn.interrupted = True
        if cut and heard is not None:
            turn.text, turn.spoken = turn.heard(heard)  # the utterance is in speech form
            turn.spoken_text = turn.text
        else:
            turn.spoken_text = turn.text = " ".join(turn.pieces)
            turn.spoken = " ".join(turn.spoken_pieces)
        if stream is not None:
            # With an LLM the verdict is final only once it has spoken (it may say the KB has no answer).
            turn.answered, turn.source = stream.answered, stream.source
        timings = getattr(stream, "timings", None)
        if timings is not None:
            turn.retrieval_ms = timings.retrieval_ms
            turn.llm_first_token_ms = timings.llm_first_token_ms
        turn.total_ms = total_ms

    def save_answer(self, record: AnswerRecord) -> None:
        turn = record.turn
        if turn.turn_id is None and not turn.planned_text and not turn.pieces:
            return  # cut before a word of it existed: nothing was said or planned to log
        # Known before its write: an interrupt may name it while the write waits (its speech still plays).
        self._remember(turn)
        self._wait_for_question(record)
        self.log.save_bot_turn(turn)

    def wait_for_question(self, record: AnswerRecord) -> None:
        """Before a write that follows an answer's question in the log (the transfer replacing it)."""
        self._wait_for_question(record)

    # -- helpers -------------------------------------------------------------------

    def _wait_for_question(self, record: AnswerRecord) -> None:
        if not record.question_logged.wait(timeout=QUESTION_LOG_WAIT_S):
            log.warning("call %s: the question of answer %s is not in the log yet", self.call_id,
                        record.turn.answer_id)

    @staticmethod
    def _planned(record: AnswerRecord, stream) -> str:
        planned = getattr(stream, "planned_text", None) if stream is not None else None
        return planned or " ".join(record.turn.pieces)

    def _remember(self, turn: BotTurn) -> None:
        self.recent[turn.answer_id] = turn
        while len(self.recent) > KEEP_RECENT_ANSWERS:
            self.recent.popitem(last=False)
