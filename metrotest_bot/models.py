"""SQL is the source of truth: calls, turns, admins, bot settings, KB versions.

Search indexes (KB passages, transcripts) are derived from these tables.
"""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db
from .timeutil import utcnow

# Call outcomes, as stored; the admin panel translates them.
OUTCOME_IN_PROGRESS = "in_progress"
OUTCOME_COMPLETED = "completed"
OUTCOME_TRANSFERRED = "transferred"
OUTCOME_TRANSFER_FAILED = "transfer_failed"  # nobody took the transfer (or no number): the caller was sent off
OUTCOME_HANGUP = "hangup"  # the caller hung up
OUTCOME_LOST = "lost"  # the socket closed without hangup
OUTCOME_ERROR = "error"
# The caller asked for a person, but no operator number is set: told how to reach the office instead.
OUTCOME_NO_OPERATOR = "no_operator"
OUTCOMES = (OUTCOME_IN_PROGRESS, OUTCOME_COMPLETED, OUTCOME_TRANSFERRED, OUTCOME_TRANSFER_FAILED,
            OUTCOME_NO_OPERATOR, OUTCOME_HANGUP, OUTCOME_LOST, OUTCOME_ERROR)

ROLE_CALLER = "caller"
ROLE_BOT = "bot"


class Call(db.Model):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vox_call_id: Mapped[str | None] = mapped_column(String(128), index=True)
    vox_session_id: Mapped[str | None] = mapped_column(String(128))
    caller: Mapped[str | None] = mapped_column(String(64), index=True)
    dialled: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float, index=True)  # indexed: the list sorts by it
    outcome: Mapped[str] = mapped_column(String(32), default=OUTCOME_IN_PROGRESS, index=True)
    end_reason: Mapped[str | None] = mapped_column(String(255))
    recording_url: Mapped[str | None] = mapped_column(Text)
    transferred_to: Mapped[str | None] = mapped_column(String(128))
    # The process that served the call (voice/owner.py): a worker on the same host closes a dead one's calls.
    worker: Mapped[str | None] = mapped_column(String(160))
    # The post-call report: topics asked, answered or not, outcome (reports/summary.py).
    summary: Mapped[str | None] = mapped_column(Text)
    # Who wrote it: "extractive", or the LLM ("pending" → "working" → "llm"; reports/llm_summary.py).
    summary_source: Mapped[str | None] = mapped_column(String(16), index=True)
    summary_claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # by a summarizer

    # What the CRM returned at setup (issue: caller context).
    crm_data: Mapped[dict | None] = mapped_column(JSON)
    caller_name: Mapped[str | None] = mapped_column(String(255))
    caller_company: Mapped[str | None] = mapped_column(String(255))

    # Counters kept up to date as turns are committed, so the call list
    # does not aggregate a million turns per page.
    n_turns: Mapped[int] = mapped_column(Integer, default=0)
    n_interrupted: Mapped[int] = mapped_column(Integer, default=0)
    n_unanswered: Mapped[int] = mapped_column(Integer, default=0)
    first_piece_ms_sum: Mapped[float] = mapped_column(Float, default=0.0)
    first_piece_n: Mapped[int] = mapped_column(Integer, default=0)

    turns: Mapped[list["Turn"]] = relationship(
        back_populates="call", order_by="Turn.seq", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def mean_first_piece_ms(self) -> float | None:
        return self.first_piece_ms_sum / self.first_piece_n if self.first_piece_n else None


class Turn(db.Model):
    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    role: Mapped[str] = mapped_column(String(16))  # caller | bot
    kind: Mapped[str] = mapped_column(String(32), default="speech")  # speech | dtmf | greeting | answer | transfer | goodbye | reprompt | system
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    confidence: Mapped[float | None] = mapped_column(Float)

    # Bot turns only.
    answer_id: Mapped[str | None] = mapped_column(String(64))
    planned_text: Mapped[str | None] = mapped_column(Text)  # the whole answer as generated
    spoken_text: Mapped[str | None] = mapped_column(Text)  # what the caller actually heard
    spoken: Mapped[str | None] = mapped_column(Text)  # the speech form of `text` as TTS read it (rag/speech.py)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    answered: Mapped[bool | None] = mapped_column(Boolean)  # False: refusal (KB had no answer)
    source: Mapped[str | None] = mapped_column(String(32))  # llm | offline | refusal | phrase
    passages: Mapped[list | None] = mapped_column(JSON)  # [{id, section, text, score}]
    retrieval_ms: Mapped[float | None] = mapped_column(Float)
    llm_first_token_ms: Mapped[float | None] = mapped_column(Float)
    first_piece_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float | None] = mapped_column(Float)
    question: Mapped[str | None] = mapped_column(Text)  # the caller text this turn answered

    call: Mapped[Call] = relationship(back_populates="turns")

    __table_args__ = (Index("ix_turns_call_seq", "call_id", "seq"),)


class AdminUser(UserMixin, db.Model):
    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class AdminSession(db.Model):
    """A sign-in, kept on the server so that it can be ended (admin/sessions.py).

    The cookie holds a random token; only its SHA-256 is stored, so a copy of
    the database opens no session. A row with `ended_at` set, or past its idle
    or absolute lifetime, opens nothing.
    """

    __tablename__ = "admin_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginAttempt(db.Model):
    """Failed and successful sign-ins, for throttling by user and by address."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    success: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class AuditLog(db.Model):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    username: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict | None] = mapped_column(JSON)


class BotSettingsVersion(db.Model):
    """Each save of the bot's words is a new row; the newest is in force."""

    __tablename__ = "bot_settings_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON)


KB_STATUS_PENDING = "pending"
KB_STATUS_INDEXING = "indexing"
KB_STATUS_READY = "ready"
KB_STATUS_FAILED = "failed"


class KBVersion(db.Model):
    """An uploaded KB file. Exactly one ready version is active at a time."""

    __tablename__ = "kb_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    stored_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    encoding: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=KB_STATUS_PENDING)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    n_passages: Mapped[int] = mapped_column(Integer, default=0)
    n_sections: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The indexing job's last sign of life: a pending/indexing row whose heartbeat is
    # old lost its worker (a restart) and is marked failed (admin/kb_jobs.py).
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why a ready upload was kept out of force until an admin confirms it (admin/replay.py):
    # e.g. it would shrink the KB in force below half its passages. None: nothing held.
    held_reason: Mapped[str | None] = mapped_column(Text)


class KBFile(db.Model):
    """The bytes of an uploaded KB file, so that every machine can build the version's
    index (a file under one machine's DATA_DIR is only a local copy; rag/sources.py).
    A table of its own: listing versions never loads file contents."""

    __tablename__ = "kb_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("kb_versions.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class SearchOutbox(db.Model):
    """Calls and turns changed since the Elasticsearch transcript index last saw them.

    Written in the same transaction as the change (only when ELASTICSEARCH_URL
    is set), drained after commit; rows stay while Elasticsearch is down.
    No foreign key: a deleted call must still be removed from the index.
    """

    __tablename__ = "search_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(Integer, index=True)
    turn_id: Mapped[int | None] = mapped_column(Integer)  # None: every turn of the call
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


WEBHOOK_PENDING = "pending"
WEBHOOK_FAILED = "failed"  # given up after CALL_WEBHOOK_MAX_ATTEMPTS


class CallWebhook(db.Model):
    """End-of-call reports waiting for CALL_WEBHOOK_URL (reports/webhook.py).

    Written in the transaction that finishes the call, so a report is never
    lost to a crash; deleted once delivered. The body is kept as sent (and
    signed): clearing the call log does not change what the CRM receives.
    No foreign key for the same reason. The same outbox carries the call's note
    to the CRM (`target` "crm", reports/crm_note.py); null is the webhook.
    """

    __tablename__ = "call_webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(Integer, index=True)
    target: Mapped[str | None] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=WEBHOOK_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_call_webhooks_due", "status", "next_attempt_at"),)


REVIEW_RIGHT = "right"
REVIEW_WRONG = "wrong"


class AnswerReview(db.Model):
    """An admin's mark on one bot answer: right or wrong, a note, the correct fact (admin/review.py).

    One mark per answer (a second save replaces it). The question and answer are copied, so
    the mark and the test question it made outlive a cleared call log."""

    __tablename__ = "answer_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    turn_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id", ondelete="SET NULL"), unique=True)
    call_id: Mapped[int | None] = mapped_column(Integer, index=True)
    verdict: Mapped[str] = mapped_column(String(16), index=True)  # right | wrong
    note: Mapped[str | None] = mapped_column(Text)
    correct_fact: Mapped[str | None] = mapped_column(Text)
    question: Mapped[str] = mapped_column(Text, default="")
    answer_text: Mapped[str] = mapped_column(Text, default="")
    answered: Mapped[bool | None] = mapped_column(Boolean)  # what the bot did: answered or refused
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # When the reviewed answer was given: analytics counts marks by the period of their calls.
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class TestQuestion(db.Model):
    """A saved test question, replayed before a KB version is published and exported as JSONL
    in the benchmark sets' format: {"question", "answerable", "any_of": [correct facts]}."""

    __tablename__ = "test_questions"
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    answerable: Mapped[bool] = mapped_column(Boolean, default=True)
    correct_fact: Mapped[str | None] = mapped_column(Text)
    review_id: Mapped[int | None] = mapped_column(ForeignKey("answer_reviews.id", ondelete="SET NULL"),
                                                  unique=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


REPLAY_RUNNING = "running"
REPLAY_DONE = "done"
REPLAY_FAILED = "failed"


class ReplayRun(db.Model):
    """A replay of callers' questions and the saved test questions against a candidate KB
    version and the KB in force (admin/replay.py); its diff is kept in `result`. A replay of a
    candidate system prompt (admin/prompt_replay.py) has no version and holds the `prompt`."""

    __tablename__ = "replay_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("kb_versions.id", ondelete="CASCADE"), index=True)
    prompt: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=REPLAY_RUNNING)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    n_questions: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict | None] = mapped_column(JSON)
