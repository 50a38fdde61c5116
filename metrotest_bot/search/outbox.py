"""The outbox: call-log changes reach Elasticsearch after commit, and survive its outages.

Every transaction that changes a call or a turn also writes a row
(call_id, turn_id) to `search_outbox` (models.SearchOutbox), in the same
transaction, from SQLAlchemy session events (hooks.py), so the code writing
calls needs no change. turn_id None means "every turn of the call" (a call
field the turn documents carry changed, or the call was deleted); CALL_ONLY
(0) means "only the call document".

After commit the worker's drainer thread (a greenlet under gunicorn's gevent
worker) reads the rows, loads the current state from SQL, writes documents
with one _bulk request and deletes the rows it sent. While Elasticsearch is
unreachable the rows stay and the drainer retries with a growing delay; any
worker of any machine may drain, one at a time (a PostgreSQL advisory lock,
or a file lock beside a SQLite database), so documents are never written
out of order.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import DateTime, Integer, delete, func, insert, literal, select, text
from sqlalchemy.orm import defer

from ..background import BackgroundWorker
from ..database import write_lock
from ..extensions import db
from ..filelock import file_lock
from ..models import Call, Turn
from ..timeutil import utcnow
from .documents import ES_ERRORS, call_document, turn_document
from .hooks import CALL_ONLY, OUTBOX, mark_cleared

log = logging.getLogger(__name__)

BATCH = 500
REBUILD_BATCH = 200
# pg_advisory_lock key: "mtsearch" as a 63-bit integer. Advisory locks are per database.
LOCK_KEY = int.from_bytes(b"mtsearch", "big") & 0x7FFF_FFFF_FFFF_FFFF


# -- the drainer -------------------------------------------------------------------------

class Outbox(BackgroundWorker):
    """Drains search_outbox into a TranscriptStore; one per app."""

    thread_name = "search-outbox"

    def __init__(self, app, store):
        super().__init__()
        self.app = app
        self.store = store
        self.poll_s = float(app.config["SEARCH_OUTBOX_POLL"])
        self.retry_max_s = float(app.config["SEARCH_OUTBOX_RETRY_MAX"])
        self.last_error: str | None = None
        # A restarted worker resumes what an outage left behind at its first request.
        app.before_request(self.ensure_running)

    # -- background thread -----------------------------------------------------------
    def _run(self) -> None:
        delay = 0.0
        while not self._stopped.is_set():
            if delay:
                if self._stopped.wait(delay):  # Elasticsearch down: new commits do not hurry us
                    break
            else:
                self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stopped.is_set():
                break
            try:
                sent = self.drain()
            except ES_ERRORS as exc:
                delay = min(max(delay * 2, 0.5), self.retry_max_s)
                self.last_error = str(exc)
                log.warning("transcript index: Elasticsearch unavailable, retrying in %.1f s: %s", delay, exc)
            except Exception as exc:  # the database, or a bug: keep the worker alive, retry later
                delay = min(max(delay * 2, 0.5), self.retry_max_s)
                self.last_error = repr(exc)
                log.exception("transcript index: draining the outbox failed")
            else:
                self.last_error = None
                # None: another worker holds the lock; look again soon in case it just finished.
                delay = min(0.5, self.poll_s) if sent is None else 0.0

    # -- one process at a time ---------------------------------------------------------
    def _lock_path(self) -> Path:
        url = db.engine.url
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return Path(url.database + ".search-outbox.lock")
        return Path(self.app.config["DATA_DIR"]) / "search-outbox.lock"

    @contextmanager
    def lock(self, wait_s: float = 0.0):
        """Yield True when this process may drain (held until exit), False when another one does."""
        deadline = time.monotonic() + wait_s
        if db.engine.dialect.name == "postgresql":
            conn = db.engine.connect()
            got = False
            try:
                while True:
                    got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
                    conn.commit()
                    if got or time.monotonic() >= deadline:
                        break
                    time.sleep(0.2)
                yield bool(got)
            finally:
                try:
                    if got:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                        conn.commit()
                except Exception:
                    conn.invalidate()  # never pool a connection that may still hold the lock
                conn.close()
            return
        with file_lock(self._lock_path(), max(0.0, deadline - time.monotonic())) as got:
            yield got

    # -- draining ------------------------------------------------------------------------
    def pending(self) -> int:
        """Rows waiting for Elasticsearch (needs an app context)."""
        return db.session.scalar(select(func.count()).select_from(OUTBOX))

    def drain(self) -> int | None:
        """Send every pending change. Returns the documents written, or None when another
        worker is draining. Raises when Elasticsearch fails; the rows then stay."""
        with self.app.app_context():
            with self.lock() as got:
                if not got:
                    return None
                written = 0
                try:
                    if not self.store.ready():
                        log.info("transcript index: Elasticsearch has no transcript indexes; rebuilding from SQL")
                        self._rebuild_locked()
                    while True:
                        rows = db.session.execute(
                            select(OUTBOX.c.id, OUTBOX.c.call_id, OUTBOX.c.turn_id)
                            .order_by(OUTBOX.c.id).limit(BATCH)).all()
                        if not rows:
                            break
                        written += self._send(rows)
                        with write_lock():
                            db.session.execute(delete(OUTBOX).where(OUTBOX.c.id.in_([r.id for r in rows])))
                            db.session.commit()
                finally:
                    db.session.rollback()
                return written

    @staticmethod
    def _load(call_ids) -> tuple[dict[int, Call], dict[int, list[Turn]]]:
        calls = {c.id: c for c in db.session.scalars(select(Call).where(Call.id.in_(list(call_ids))))}
        turns: dict[int, list[Turn]] = defaultdict(list)
        if calls:
            for turn in db.session.scalars(select(Turn).options(defer(Turn.passages))
                                           .where(Turn.call_id.in_(list(calls)))):
                turns[turn.call_id].append(turn)
        return calls, turns

    def _send(self, rows) -> int:
        everything = object()
        plan: dict[int, object] = {}
        for row in rows:
            if row.turn_id is None:
                plan[row.call_id] = everything
            else:
                wanted = plan.setdefault(row.call_id, set())
                if wanted is not everything and row.turn_id != CALL_ONLY:
                    wanted.add(row.turn_id)
        calls, turns = self._load(plan)
        call_docs, turn_docs, gone_turns, gone_calls = [], [], [], []
        for call_id, wanted in plan.items():
            call = calls.get(call_id)
            if call is None:
                gone_calls.append(call_id)
                continue
            call_docs.append(call_document(call, turns[call_id]))
            if wanted is everything:
                turn_docs += [turn_document(t, call) for t in turns[call_id]]
            else:
                present = {t.id for t in turns[call_id]}
                turn_docs += [turn_document(t, call) for t in turns[call_id] if t.id in wanted]
                gone_turns += [tid for tid in wanted if tid not in present]
        self.store.write(call_docs, turn_docs, gone_turns, gone_calls)
        return len(call_docs) + len(turn_docs)

    # -- clearing and rebuilding ---------------------------------------------------------
    def record_clear(self, keep: list[int]) -> None:
        """The log is being cleared in the current transaction: every call but `keep` goes."""
        session = db.session
        sel = select(Call.id, literal(None, Integer), literal(utcnow(), DateTime(timezone=True)))
        if keep:
            sel = sel.where(Call.id.not_in(keep))
        session.execute(insert(OUTBOX).from_select(["call_id", "turn_id", "created_at"], sel))
        mark_cleared(session, self)

    def _rebuild_batches(self):
        last_id = 0
        while True:
            ids = db.session.scalars(select(Call.id).where(Call.id > last_id).order_by(Call.id)
                                     .limit(REBUILD_BATCH)).all()
            if not ids:
                return
            calls, turns = self._load(ids)
            yield ([call_document(c, turns[c.id]) for c in calls.values()],
                   [turn_document(t, c) for c in calls.values() for t in turns[c.id]])
            db.session.expunge_all()  # constant memory over a large log
            last_id = ids[-1]

    def _rebuild_locked(self, progress=None) -> int:
        """Rebuild both indexes; the caller holds the lock. Live changes wait in the outbox."""
        total = db.session.scalar(select(func.count(Call.id)))
        covered = db.session.scalar(select(func.max(OUTBOX.c.id)))
        done = 0
        if progress:
            progress(0, total)
        for n in self.store.rebuild(self._rebuild_batches()):
            done += n
            if progress:
                progress(done, total)
        if covered is not None:
            # Changes recorded before the rebuild read the log are in the new indexes already.
            with write_lock():
                db.session.execute(delete(OUTBOX).where(OUTBOX.c.id <= covered))
                db.session.commit()
        return done

    def rebuild(self, progress=None) -> int:
        """Rebuild both Elasticsearch indexes from SQL (needs an app context).

        progress(done, total) is called after each batch of calls. Holds the
        drain lock, so live changes wait in the outbox and follow the switch.
        """
        with self.lock(wait_s=600) as got:
            if not got:
                raise RuntimeError("another process keeps the transcript index busy; try again later")
            done = self._rebuild_locked(progress)
        db.session.commit()  # end the read transaction before another session drains
        self.drain()  # what changed during the rebuild
        return done
