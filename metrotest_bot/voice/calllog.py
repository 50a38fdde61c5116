"""The call log as a call sees it: one Call row per call, each turn logged when it happens.

A call never waits on the database (a caller must not hear an outage): its records go to this
worker's writer (voice/logwriter.py), which commits the records of all calls together at most every
CALLLOG_FLUSH_MS, and spools them to DATA_DIR while the database is away (voice/spool.py). Ids the
database assigns are not known when a record is made: a call is known by a local key (and by its
Voximplant id and start time, its natural key), a turn by (call, seq); the writer resolves them.
Each record is a snapshot (a bot turn saved again replaces its row's columns), so a record applied
twice changes nothing.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

from ..models import ROLE_BOT
from ..timeutil import utcnow
from . import owner
from .logwriter import writer_for


@dataclass
class BotTurn:
    """A bot turn as the session builds it; saved once it has something said, updated at its end."""

    kind: str  # greeting | answer | transfer | goodbye | reprompt | system
    answer_id: str | None
    text: str = ""
    question: str | None = None
    planned_text: str | None = None
    spoken_text: str | None = None
    spoken: str | None = None  # the speech form of `text`: what TTS read (rag/speech.py)
    interrupted: bool = False
    answered: bool | None = None
    source: str | None = None
    passages: list | None = None
    retrieval_ms: float | None = None
    llm_first_token_ms: float | None = None
    first_piece_ms: float | None = None
    total_ms: float | None = None
    seq: int = 0
    # Set once the turn was handed to the call log: its local key (call key:seq), resolved by the writer.
    turn_id: str | None = None
    # The pieces sent, written and as spoken, to map a barge-in's utterance back to the written text.
    pieces: list = field(default_factory=list)
    spoken_pieces: list = field(default_factory=list)

    def heard(self, utterance: str) -> tuple[str, str]:
        """(written, spoken) of what the caller heard, from `utteranceUntilInterrupt` (the speech form).

        The scenario reports the pieces fully played, joined by spaces: the written text is the
        same number of written pieces. An utterance that matches no prefix is kept as it came.
        """
        said = " ".join(utterance.split())
        for k in range(len(self.spoken_pieces), -1, -1):
            if " ".join(" ".join(self.spoken_pieces[:k]).split()) == said:
                return " ".join(self.pieces[:k]), utterance
        return utterance, utterance

    def columns(self) -> dict:
        return dict(
            role=ROLE_BOT, kind=self.kind, answer_id=self.answer_id, text=self.text, question=self.question,
            planned_text=self.planned_text, spoken_text=self.spoken_text, spoken=self.spoken, interrupted=self.interrupted,
            answered=self.answered, source=self.source, passages=self.passages, retrieval_ms=self.retrieval_ms,
            llm_first_token_ms=self.llm_first_token_ms, first_piece_ms=self.first_piece_ms,
            total_ms=self.total_ms,
        )


class CallLog:
    def __init__(self, app):
        self.app = app
        self.writer = writer_for(app)
        self.key = uuid.uuid4().hex  # the call's local key until the writer knows its row
        self._natural: dict = {}  # vox + t0: how a replay finds the row
        self._started_at = None
        self._call_id: int | None = None
        self._seq = 0
        self._lock = threading.Lock()  # seq numbers of one call
        self._first_saved: dict[int, str] = {}  # a bot turn's time is when it was first saved
        self._queued_turns: dict[int, dict] = {}  # a bot turn's record still waiting for the writer

    @property
    def call_id(self) -> int | None:
        """The Call row's id once the writer has committed it (None before: log lines say None)."""
        if self._call_id is None:
            self._call_id = self.writer.call_id(self.key)
        return self._call_id

    def _put(self, op: str, **data) -> None:
        self.writer.put({"op": op, "call": self.key, **self._natural, **data})

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything logged so far is committed (True) or spooled (False); for tests and tools."""
        return self.writer.flush(timeout)

    # -- the call -----------------------------------------------------------

    def start(self, *, vox_call_id, vox_session_id, caller, dialled, crm_data=None, caller_name=None,
              caller_company=None) -> int | None:
        self._started_at = utcnow()
        t0 = self._started_at.isoformat()
        self._natural = {"vox": vox_call_id, "t0": t0}
        self._put("start", fields=dict(
            vox_call_id=vox_call_id, vox_session_id=vox_session_id, caller=caller, dialled=dialled,
            started_at=t0, crm_data=crm_data, caller_name=caller_name, caller_company=caller_company,
            worker=owner.this_process()))
        return self.call_id

    def set_recording(self, url: str) -> None:
        self._put("recording", url=url)

    def finish(self, outcome: str, *, reason: str | None = None, transferred_to: str | None = None) -> None:
        if self._started_at is None:
            return  # never started: there is no call to end
        ended = utcnow()
        values = dict(outcome=outcome, ended_at=ended.isoformat(),
                      duration_s=round((ended - self._started_at).total_seconds(), 3))
        if reason:
            values["end_reason"] = reason[:255]
        if transferred_to:
            values["transferred_to"] = transferred_to[:128]
        # The writer adds the post-call report (summary, webhook) in the same transaction.
        self._put("finish", values=values)

    # -- turns --------------------------------------------------------------

    def caller_turn(self, text: str, *, kind: str = "speech", confidence: float | None = None, seq: int) -> None:
        self._put("turn", seq=seq, at=utcnow().isoformat(),
                  cols=dict(role="caller", kind=kind, text=text, confidence=confidence))

    def save_bot_turn(self, turn: BotTurn) -> None:
        """Log the bot turn as it is now (inserted the first time, updated after); counters follow."""
        at = self._first_saved.setdefault(turn.seq, utcnow().isoformat())
        turn.turn_id = turn.turn_id or f"{self.key}:{turn.seq}"
        queued = self._queued_turns.get(turn.seq)
        if queued is not None and not queued.get("taken"):
            return  # its record still waits: the writer reads the turn as it is then (logwriter.materialize)
        record = {"op": "turn", "call": self.key, **self._natural, "seq": turn.seq, "at": at, "turn": turn}
        self._queued_turns[turn.seq] = record
        self.writer.put(record)
