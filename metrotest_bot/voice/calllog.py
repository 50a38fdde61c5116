"""The call log writer: one Call row per call, each turn committed when it happens.

Every write runs in its own short app context, so its session (and pooled
connection) is released at once instead of being held for a call that lasts
minutes. A failed write is logged and retried once; if the database is still
unavailable the call goes on without that row (the caller must not hear a
database outage). Counters on Call are updated with SQL expressions, so two
greenlets of one call never lose an increment.

Turns are written with Core INSERT/UPDATE statements, not through the ORM's
unit of work (a call's turns are written two or three times per answer; the
flush machinery cost more CPU than the rows). What the ORM's flush hooks do
for ORM writes is done here for these: the transcript index gets the turn's
new words in the same transaction (search.events indexes ORM flushes only),
and with Elasticsearch an outbox row per inserted turn (search.outbox sees
UPDATEs by itself). The Call row, written once per call, stays an ORM object.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import insert, update
from sqlalchemy.exc import SQLAlchemyError

from ..database import write_lock
from ..extensions import db
from ..models import ROLE_BOT, Call, Turn
from ..reports import finalize_call
from ..reports import wake as wake_webhook
from ..timeutil import utcnow

log = logging.getLogger(__name__)

RETRY_DELAY_S = 0.2

TURNS = Turn.__table__
CALLS = Call.__table__


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
    turn_id: int | None = None
    # What the Call counters already include, so an update adds only the difference.
    counted: dict = field(default_factory=dict)
    # The pieces sent, written and as spoken, to map a barge-in's utterance back to the written text.
    pieces: list = field(default_factory=list)
    spoken_pieces: list = field(default_factory=list)
    # The columns as last committed: an update writes only what changed since (as the ORM did).
    saved: dict | None = None

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

    def counter_state(self) -> dict:
        return {
            "interrupted": int(bool(self.interrupted)),
            "unanswered": int(self.answered is False),
            "first_piece": self.first_piece_ms,
        }


class CallLog:
    def __init__(self, app):
        self.app = app
        self.call_id: int | None = None
        self._call_fields: dict | None = None
        self._pending_call_id: int | None = None  # flushed, not yet committed
        self._seq = 0
        self._lock = threading.Lock()  # seq numbers and bot-turn saves of one call
        # Words of this call already in the transcript index (committed): a turn indexes only new ones.
        self._indexed_words: set[str] = set()

    # -- plumbing ---------------------------------------------------------

    def _write(self, what: str, fn, words: set | None = None):
        """Run fn(session) and commit, in a fresh app context; retry once; None on failure.

        `words`: the set fn fills with the words it indexed; they count as indexed once committed."""
        for attempt in (1, 2):
            if words is not None:
                words.clear()
            try:
                with self.app.app_context():
                    with write_lock():  # SQLite: one writer at a time (database.py)
                        result = fn(db.session)
                        db.session.commit()
                if self._pending_call_id is not None:
                    self.call_id, self._pending_call_id = self._pending_call_id, None
                if words:
                    self._indexed_words |= words
                return result
            except SQLAlchemyError:
                self._pending_call_id = None
                log.exception("call log: %s failed (attempt %d, call %s)", what, attempt, self.call_id)
                if attempt == 1:
                    time.sleep(RETRY_DELAY_S)
        return None

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def _ensure_call(self, session) -> int:
        # The Call row is created at setup; if the database was down then, create it now.
        if self.call_id is not None:
            return self.call_id
        call = Call(**self._call_fields)
        session.add(call)
        session.flush()
        self._pending_call_id = call.id
        return call.id

    # -- the call -----------------------------------------------------------

    def start(self, *, vox_call_id, vox_session_id, caller, dialled, crm_data=None, caller_name=None,
              caller_company=None) -> int | None:
        self._call_fields = dict(
            vox_call_id=vox_call_id, vox_session_id=vox_session_id, caller=caller, dialled=dialled,
            started_at=utcnow(), crm_data=crm_data, caller_name=caller_name, caller_company=caller_company,
        )
        return self._write("create call", self._ensure_call)

    def set_recording(self, url: str) -> None:
        def fn(session):
            call_id = self._ensure_call(session)
            session.execute(update(Call).where(Call.id == call_id).values(recording_url=url))

        self._write("recording url", fn)

    def finish(self, outcome: str, *, reason: str | None = None, transferred_to: str | None = None) -> None:
        def fn(session):
            call_id = self._ensure_call(session)
            ended = utcnow()
            started = self._call_fields["started_at"]
            values = dict(outcome=outcome, ended_at=ended, duration_s=round((ended - started).total_seconds(), 3))
            if reason:
                values["end_reason"] = reason[:255]
            if transferred_to:
                values["transferred_to"] = transferred_to[:128]
            session.execute(update(Call).where(Call.id == call_id).values(**values))
            # The post-call report (summary, webhook outbox row) commits with the call's end or not at all.
            return finalize_call(session, call_id, self.app.config)

        if self._write(f"finish ({outcome})", fn):
            wake_webhook(self.app)  # delivered by a background thread: the call does not wait for it

    # -- turns --------------------------------------------------------------

    def caller_turn(self, text: str, *, kind: str = "speech", confidence: float | None = None, seq: int) -> None:
        words: set[str] = set()

        def fn(session):
            call_id = self._ensure_call(session)
            self._insert_turn(session, call_id, dict(seq=seq, role="caller", kind=kind, text=text,
                                                     confidence=confidence), words)
            session.execute(update(CALLS).where(CALLS.c.id == call_id).values(n_turns=CALLS.c.n_turns + 1))

        self._write("caller turn", fn, words)

    def _insert_turn(self, session, call_id: int, columns: dict, words: set) -> int:
        turn_id = session.execute(insert(TURNS).values(call_id=call_id, **columns)).inserted_primary_key[0]
        self._index(session, call_id, turn_id, columns.get("text"), columns.get("spoken_text"), words, inserted=True)
        return turn_id

    def _index(self, session, call_id: int, turn_id: int, text, spoken_text, words: set, inserted: bool) -> None:
        """What the ORM flush hooks would do for this turn (search/hooks.py)."""
        from ..search import TurnText, get_index
        from ..search.hooks import record_inserted_turn
        from ..search.lemmas import words as said_words
        from ..search.sql import turn_search_text

        said = turn_search_text(text, spoken_text)
        new = {w for _, _, w in said_words(said)} - self._indexed_words - words if said else set()
        if new:
            try:
                get_index().index_turns(session, [TurnText(call_id=call_id, turn_id=turn_id, text=" ".join(sorted(new)))])
            except Exception:  # the call log matters more than its index, which can be rebuilt
                log.exception("transcript index: turn %s of call %s not indexed", turn_id, call_id)
            else:
                words |= new
        if inserted:
            record_inserted_turn(session, call_id, turn_id)  # Elasticsearch's outbox row

    def save_bot_turn(self, turn: BotTurn) -> None:
        """Insert the bot turn, or update it when already saved; keeps the Call counters in step."""
        words: set[str] = set()
        with self._lock:
            saved = self._write(f"bot turn {turn.answer_id}", lambda session: self._save_bot_turn(session, turn, words),
                                words)
            if saved is not None:
                turn.turn_id, turn.counted, turn.saved = saved

    def _save_bot_turn(self, session, turn: BotTurn, words: set):
        call_id = self._ensure_call(session)
        new = turn.counter_state()
        old = turn.counted or {"interrupted": 0, "unanswered": 0, "first_piece": None}
        counters = {}
        columns = turn.columns()
        turn_id = turn.turn_id
        if turn_id is not None:
            saved = turn.saved or {}
            changed = {k: v for k, v in columns.items() if k not in saved or saved[k] != v}
            if not changed:
                return turn_id, old, columns  # nothing new: no statement at all
            # A Core UPDATE: search.outbox records it by itself; the words are indexed here.
            updated = session.execute(update(TURNS).where(TURNS.c.id == turn_id).values(**changed)).rowcount
            if updated:
                self._index(session, call_id, turn_id, columns["text"], columns["spoken_text"], words,
                            inserted=False)
            else:
                turn_id = None  # the row is gone (the log was cleared): written anew
        if turn_id is None:
            turn_id = self._insert_turn(session, call_id, dict(seq=turn.seq, **columns), words)
            counters["n_turns"] = CALLS.c.n_turns + 1
        if new["interrupted"] != old["interrupted"]:
            counters["n_interrupted"] = CALLS.c.n_interrupted + (new["interrupted"] - old["interrupted"])
        if new["unanswered"] != old["unanswered"]:
            counters["n_unanswered"] = CALLS.c.n_unanswered + (new["unanswered"] - old["unanswered"])
        if old["first_piece"] is None and new["first_piece"] is not None:
            counters["first_piece_ms_sum"] = CALLS.c.first_piece_ms_sum + new["first_piece"]
            counters["first_piece_n"] = CALLS.c.first_piece_n + 1
        if counters:
            session.execute(update(CALLS).where(CALLS.c.id == call_id).values(**counters))
        # The caller records these only once the commit went through.
        return turn_id, new, columns
