"""The end-of-call webhook: a JSON report POSTed to CALL_WEBHOOK_URL, signed, from a durable outbox.

The report is written to `call_webhooks` in the transaction that finishes the
call (reports.finalize_call), so a crash loses nothing; a background thread
(a greenlet under gunicorn's gevent worker) delivers it afterwards, so a slow
or dead receiver never delays a call. Like the transcript outbox
(search/outbox.py) it is woken after commit and polls for what other workers
left; unlike it, each report is retried on its own schedule (exponential
backoff per row), and rows are claimed one at a time with a compare-and-set
on `attempts`, so any number of workers and machines can deliver side by side
without a lock.

Signature: `X-Metrotest-Signature: sha256=<hex HMAC-SHA256 of the raw body with CALL_WEBHOOK_SECRET>`.

The same outbox and sender carry the call's note to the CRM (rows with `target` "crm",
crm_note.py), so the sender runs when either is configured (`active()`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from datetime import timedelta

from sqlalchemy import delete, func, select, update

from ..background import BackgroundWorker
from ..database import write_lock
from ..extensions import db
from ..models import ROLE_BOT, WEBHOOK_FAILED, WEBHOOK_PENDING, CallWebhook
from ..timeutil import as_utc, utcnow
from . import crm_note

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Metrotest-Signature"
USER_AGENT = "metrotest-voice-bot/1.0"
BATCH = 20
LEASE_MARGIN_S = 30.0  # a claimed row is retried by anyone once its delivery is this long overdue
ERROR_CHARS = 500


# -- the report -----------------------------------------------------------------------

def _iso(dt) -> str | None:
    dt = as_utc(dt)
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def payload(call, turns) -> dict:
    """The report's JSON: who called, when, how it ended, the summary and every turn."""
    return {
        "callId": call.vox_call_id or str(call.id),
        "logId": call.id,
        "from": call.caller,
        "to": call.dialled,
        "startedAt": _iso(call.started_at),
        "endedAt": _iso(call.ended_at),
        "durationS": call.duration_s,
        "outcome": call.outcome,
        "transferredTo": call.transferred_to,
        "recordingUrl": call.recording_url,
        "summary": call.summary,
        "turns": [{
            "role": t.role,
            "kind": t.kind,
            "text": t.text or "",
            # Bot answers only: False is a refusal (the KB had no answer); null for everything else.
            "answered": t.answered if t.role == ROLE_BOT and t.kind == "answer" else None,
            "at": _iso(t.created_at),
        } for t in turns],
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def enqueue(session, call, turns) -> None:
    """Queue the call's report in the current transaction (committed with the call's end)."""
    body = json.dumps(payload(call, turns), ensure_ascii=False, separators=(",", ":"))
    session.add(CallWebhook(call_id=call.id, body=body, status=WEBHOOK_PENDING, attempts=0,
                            created_at=utcnow(), next_attempt_at=utcnow()))


def active(config) -> bool:
    """Anything to deliver after a call: the webhook, or notes to the CRM."""
    return bool(config.get("CALL_WEBHOOK_URL")) or crm_note.enabled(config)


def queue(session, call, turns, config) -> bool:
    """Queue what leaves the call (the webhook, the CRM note) as configured; True when anything was."""
    queued = False
    if config.get("CALL_WEBHOOK_URL"):
        enqueue(session, call, turns)
        queued = True
    return crm_note.enqueue(session, call, config) or queued


def backoff_s(attempts: int, base: float, cap: float) -> float:
    """Seconds before attempt `attempts + 1`: base, 2·base, 4·base … up to cap."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


# -- delivery ---------------------------------------------------------------------------

def _write_lock():
    # SQLite has one writer: take turns with the call log's writers of this worker (database.py).
    return write_lock()


class WebhookSender(BackgroundWorker):
    """Delivers due reports of one app; one per app, its thread started on demand."""

    thread_name = "call-webhook"
    extension_key = "call_webhook_sender"

    def __init__(self, app):
        super().__init__()
        self.app = app

    @property
    def cfg(self):
        return self.app.config

    # -- the thread -----------------------------------------------------------------
    def _run(self) -> None:
        poll = float(self.cfg["CALL_WEBHOOK_POLL"])
        wait = 0.0
        while not self._stopped.is_set():
            if wait:
                self._wake.wait(wait)
            self._wake.clear()
            if self._stopped.is_set():
                break
            try:
                self.deliver_due()
                wait = min(poll, self.seconds_to_next(default=poll))
            except Exception:  # the database is away, or a bug: keep the thread, look again later
                log.exception("call webhook: delivery round failed")
                wait = poll
            wait = max(wait, 0.05)

    # -- one round ----------------------------------------------------------------------
    def seconds_to_next(self, default: float) -> float:
        with self.app.app_context():
            try:
                nxt = db.session.scalar(select(func.min(CallWebhook.next_attempt_at))
                                        .where(CallWebhook.status == WEBHOOK_PENDING))
            finally:
                db.session.remove()
        if nxt is None:
            return default
        return max(0.0, (as_utc(nxt) - utcnow()).total_seconds())

    def deliver_due(self) -> int:
        """Try every report that is due now; returns how many were delivered."""
        delivered = 0
        with self.app.app_context():
            try:
                while True:
                    due = db.session.execute(
                        select(CallWebhook.id, CallWebhook.attempts)
                        .where(CallWebhook.status == WEBHOOK_PENDING, CallWebhook.next_attempt_at <= utcnow())
                        .order_by(CallWebhook.next_attempt_at, CallWebhook.id).limit(BATCH)).all()
                    db.session.rollback()  # no read transaction held across the HTTP requests
                    if not due:
                        break
                    for row in due:
                        delivered += self._deliver_one(row.id, row.attempts)
                    if len(due) < BATCH:
                        break
            finally:
                db.session.remove()
        return delivered

    def _claim(self, row_id: int, seen_attempts: int):
        """Take the row for one attempt: (body, target); None when another worker took it first."""
        lease = utcnow() + timedelta(seconds=float(self.cfg["CALL_WEBHOOK_TIMEOUT"]) + LEASE_MARGIN_S)
        with _write_lock():
            taken = db.session.execute(
                update(CallWebhook)
                .where(CallWebhook.id == row_id, CallWebhook.attempts == seen_attempts,
                       CallWebhook.status == WEBHOOK_PENDING)
                .values(attempts=seen_attempts + 1, next_attempt_at=lease)).rowcount
            row = db.session.execute(select(CallWebhook.body, CallWebhook.target)
                                     .where(CallWebhook.id == row_id)).first() if taken else None
            db.session.commit()
        return row

    def _deliver_one(self, row_id: int, seen_attempts: int) -> int:
        row = self._claim(row_id, seen_attempts)
        if row is None:
            return 0
        attempts = seen_attempts + 1
        if row.target == crm_note.TARGET:
            error = crm_note.deliver(self.cfg, row.body, float(self.cfg["CALL_WEBHOOK_TIMEOUT"]))
        else:
            error = self.post(row.body.encode("utf-8"))
        with _write_lock():
            if error is None:
                db.session.execute(delete(CallWebhook).where(CallWebhook.id == row_id))
            elif attempts >= int(self.cfg["CALL_WEBHOOK_MAX_ATTEMPTS"]):
                log.error("call webhook: report %s given up after %d attempts: %s", row_id, attempts, error)
                db.session.execute(update(CallWebhook).where(CallWebhook.id == row_id)
                                   .values(status=WEBHOOK_FAILED, last_error=error[:ERROR_CHARS]))
            else:
                delay = backoff_s(attempts, float(self.cfg["CALL_WEBHOOK_RETRY_BASE"]),
                                  float(self.cfg["CALL_WEBHOOK_RETRY_MAX"]))
                log.warning("call webhook: report %s failed (attempt %d), retrying in %.1f s: %s",
                            row_id, attempts, delay, error)
                db.session.execute(update(CallWebhook).where(CallWebhook.id == row_id).values(
                    next_attempt_at=utcnow() + timedelta(seconds=delay), last_error=error[:ERROR_CHARS]))
            db.session.commit()
        return int(error is None)

    def post(self, body: bytes) -> str | None:
        """POST one report; None when the receiver took it (2xx), else what went wrong."""
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        secret = self.cfg.get("CALL_WEBHOOK_SECRET")
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret, body)
        request = urllib.request.Request(self.cfg["CALL_WEBHOOK_URL"], data=body, headers=headers, method="POST")
        try:
            # urllib: under the gevent worker its socket is cooperative, like the CRM client's (crm/http.py).
            with urllib.request.urlopen(request, timeout=float(self.cfg["CALL_WEBHOOK_TIMEOUT"])) as response:
                response.read(64 * 1024)
                return None if 200 <= response.status < 300 else f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:  # refused, timed out, bad URL
            return f"{type(exc).__name__}: {exc}"


def status(app) -> dict | None:
    """For /healthz: reports waiting and given up; None when nothing is delivered after calls (needs an app context)."""
    if not active(app.config):
        return None
    counts = dict(db.session.execute(select(CallWebhook.status, func.count()).group_by(CallWebhook.status)).all())
    return {"pending": int(counts.get(WEBHOOK_PENDING, 0)), "failed": int(counts.get(WEBHOOK_FAILED, 0))}


def sender(app) -> WebhookSender:
    return WebhookSender.for_app(app)


def wake(app) -> None:
    """A report was committed: deliver it now (starts this process's sender when needed)."""
    if active(app.config):
        sender(app).wake()


def init_app(app) -> None:
    """With CALL_WEBHOOK_URL set (or CRM notes), a restarted worker resumes pending reports at its first request."""
    if active(app.config):
        app.before_request(sender(app).ensure_running)
        if app.config.get("CALL_WEBHOOK_URL") and not app.config.get("CALL_WEBHOOK_SECRET"):
            log.warning("CALL_WEBHOOK_URL is set without CALL_WEBHOOK_SECRET: reports go out unsigned")
