"""The post-call summary worded by the LLM, when one is configured (CALL_SUMMARY_LLM).

The call's end stores the extractive summary at once (summary.py) and marks the call
`summary_source = "pending"`; its webhook is not queued yet. After the commit this worker
(a background thread, a greenlet under gunicorn's gevent worker) asks the model for one or two
Russian sentences, within CALL_SUMMARY_TIMEOUT, and in one transaction stores them
(`"llm"`) — or, on any error, keeps the extractive summary (`"extractive"`) — and queues the
webhook and the CRM note with the summary the call ended up with. So the call never waits for the model, and
the webhook always carries the summary shown in the panel.

Durable and shared like the webhook outbox: a call is claimed with a compare-and-set
(`pending` → `working`), so a call is summarized by one worker and its webhook queued once; a
claim whose worker died is taken again once the call ended STALE_AFTER ago, and pending calls
left by a stopped worker are found by the next worker's poll.
"""
from __future__ import annotations

import logging
import re
from datetime import timedelta

from sqlalchemy import or_, select, update

from ..background import BackgroundWorker
from ..database import write_lock
from ..extensions import db
from ..models import Call, Turn
from ..outcomes import outcome_label
from ..rag.generate import NO_ANSWER, get_client, llm_enabled
from ..timeutil import utcnow
from .webhook import queue

log = logging.getLogger(__name__)

PENDING, WORKING, LLM, EXTRACTIVE = "pending", "working", "llm", "extractive"
BATCH = 20
STALE_AFTER = timedelta(minutes=5)  # a claim older than this (its worker died) is taken again
TRANSCRIPT_CHARS = 6000  # the end of a long call is what matters most for its outcome
MAX_CHARS = 400
MAX_TOKENS = 160

INSTRUCTION = (
    "Ты составляешь краткую сводку телефонного звонка в компанию «Метротест» для журнала звонков. "
    "Напиши по-русски одно-два коротких предложения: что спрашивал абонент, получил ли он ответ и чем "
    "закончился звонок. Только то, что есть в расшифровке; без вступлений, списков, markdown и кавычек.")


def enabled(config) -> bool:
    return bool(config["CALL_SUMMARY_LLM"]) and llm_enabled(config)


# --- asking the model -------------------------------------------------------------------------

def transcript(turns) -> str:
    lines = []
    for t in turns:
        text = re.sub(r"\s+", " ", t.text or "").strip()
        if text:
            lines.append(f"{'Абонент' if t.role == 'caller' else 'Бот'}: {text}")
    body = "\n".join(lines)
    return body if len(body) <= TRANSCRIPT_CHARS else "…" + body[-TRANSCRIPT_CHARS:]


def messages(call, turns) -> list[dict]:
    user = (f"Расшифровка звонка:\n{transcript(turns) or '(абонент ничего не сказал)'}\n\n"
            f"Итог звонка: {outcome_label(call.outcome)}.")
    return [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": user}]


def clean(text: str | None) -> str:
    """The model's words as one short paragraph; ValueError when there is nothing usable."""
    text = re.sub(r"\s+", " ", (text or "").replace("*", "")).strip().strip('"«»').strip()
    if not text or text.upper().startswith(NO_ANSWER):
        raise ValueError("the model gave no summary")
    if len(text) > MAX_CHARS:  # cut at a sentence's end where one is near, else at a word
        cut = text[:MAX_CHARS]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        text = cut[:end + 1] if end > MAX_CHARS // 2 else cut.rsplit(" ", 1)[0] + "…"
    return text


def ask_model(config, prompt: list[dict]) -> str:
    """One non-streamed completion, bounded by CALL_SUMMARY_TIMEOUT (no retries: the extractive one stands)."""
    timeout = float(config["CALL_SUMMARY_TIMEOUT"])
    client = get_client(config).with_options(timeout=timeout, max_retries=0)
    reply = client.chat.completions.create(model=config["LLM_MODEL"],
                                           messages=prompt, temperature=0.2, max_tokens=MAX_TOKENS)
    return clean(reply.choices[0].message.content if reply.choices else None)


def _turns(call_id: int) -> list:
    return db.session.scalars(select(Turn).where(Turn.call_id == call_id).order_by(Turn.seq, Turn.id)).all()


# --- the worker -------------------------------------------------------------------------------

class Summarizer(BackgroundWorker):
    thread_name = "call-summary"
    extension_key = "call_summarizer"

    def __init__(self, app):
        super().__init__()
        self.app = app

    def _run(self) -> None:
        poll = float(self.app.config["CALL_WEBHOOK_POLL"])
        while not self._stopped.is_set():
            self._wake.clear()
            try:
                self.summarize_due()
            except Exception:  # the database is away, or a bug: keep the thread, look again later
                log.exception("call summary: round failed")
            self._wake.wait(poll)

    def summarize_due(self) -> int:
        """Summarize every call waiting for the model; returns how many were handled."""
        done = 0
        with self.app.app_context():
            try:
                while True:
                    ids = db.session.scalars(
                        select(Call.id).where(_due()).order_by(Call.ended_at, Call.id).limit(BATCH)).all()
                    db.session.rollback()  # no read transaction held across the model's answer
                    if not ids:
                        break
                    for call_id in ids:
                        done += self.summarize(call_id)
                    if len(ids) < BATCH:
                        break
            finally:
                db.session.remove()
        return done

    def _claim(self, call_id: int):
        """Take the call (the claim's time, which only this claim holds), or None: another worker has it."""
        claimed = utcnow()
        with write_lock():
            taken = db.session.execute(
                update(Call).where(Call.id == call_id, _due())
                .values(summary_source=WORKING, summary_claimed_at=claimed)).rowcount
            db.session.commit()
        return claimed if taken else None

    def summarize(self, call_id: int) -> int:
        claimed = self._claim(call_id)
        if claimed is None:
            return 0  # another worker has it
        call = db.session.get(Call, call_id)
        if call is None:  # the log was cleared meanwhile
            db.session.rollback()
            return 0
        prompt = messages(call, _turns(call_id))
        db.session.rollback()  # no transaction held while the model works
        cfg = self.app.config
        try:
            text, source = ask_model(cfg, prompt), LLM
        except Exception as exc:  # error, timeout, empty answer: the extractive summary stands
            log.warning("call summary: the LLM failed for call %s (%s: %s); keeping the extractive one",
                        call_id, type(exc).__name__, exc)
            text, source = None, EXTRACTIVE
        with write_lock():
            # Written only under this claim (another worker may have taken it as stale meanwhile):
            # one summary, and one report queued, per call.
            values = {"summary_source": source, **({"summary": text} if text else {})}
            mine = db.session.execute(
                update(Call).where(Call.id == call_id, Call.summary_source == WORKING,
                                   Call.summary_claimed_at == claimed).values(**values)).rowcount
            call = db.session.get(Call, call_id) if mine else None
            if call is None:
                db.session.rollback()
                return 0
            queued = queue(db.session, call, _turns(call_id), cfg)
            db.session.commit()
        if queued:
            from .webhook import wake

            wake(self.app)
        return 1


def _due():
    """Waiting for the model, or claimed by a worker that stopped answering (STALE_AFTER ago)."""
    stale = utcnow() - STALE_AFTER
    return or_(Call.summary_source == PENDING,
               (Call.summary_source == WORKING)
               & or_(Call.summary_claimed_at.is_(None), Call.summary_claimed_at < stale))


def summarizer(app) -> Summarizer:
    return Summarizer.for_app(app)


def init_app(app) -> None:
    """With an LLM summary configured, a restarted worker finishes what was left pending."""
    if enabled(app.config):
        app.before_request(summarizer(app).ensure_running)
