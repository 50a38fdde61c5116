"""The outbox: call-log changes reach Elasticsearch after commit, and survive its outages.

Every transaction that changes a call or a turn also writes a row
(call_id, turn_id) to `search_outbox` (models.SearchOutbox), in the same
transaction, from SQLAlchemy session events, so the code writing calls needs
no change: ORM flushes (after_flush) and ORM bulk UPDATE/DELETE statements
(do_orm_execute, e.g. the call log's counter updates) are both seen.
turn_id None means "every turn of the call" (a call field the turn documents
carry changed, or the call was deleted); 0 means "only the call document".

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
import os
import threading
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from pathlib import Path

from flask import current_app, has_app_context
from sqlalchemy import DateTime, Integer, delete, event, func, insert, inspect, literal, select, text
from sqlalchemy.orm import Session, defer

from ..extensions import db
from ..filelock import file_lock
from ..models import Call, SearchOutbox, Turn
from ..timeutil import utcnow

log = logging.getLogger(__name__)

OUTBOX = SearchOutbox.__table__
BATCH = 500
REBUILD_BATCH = 200
# pg_advisory_lock key: "mtsearch" as a 63-bit integer. Advisory locks are per database.
LOCK_KEY = int.from_bytes(b"mtsearch", "big") & 0x7FFF_FFFF_FFFF_FFFF
CALL_ONLY = 0

_installed = False


def _sqlite_write_lock():
    """The call log's in-process SQLite writer lock (see voice/calllog.py), when there is one."""
    try:
        from ..voice.calllog import _sqlite_write_lock as lock
    except ImportError:  # pragma: no cover - the voice package always has it
        return nullcontext()
    return lock


def _outbox_of_app():
    if not has_app_context():
        return None
    index = current_app.extensions.get("transcript_index")
    return getattr(index, "outbox", None)


def _remember(session, outbox) -> None:
    session.info["search_outbox"] = outbox


# -- recording changes (session events) ---------------------------------------------------

def _turn_row_for_call_change(changed_keys) -> int | None:
    from .elastic import CALL_COLUMNS_IN_TURNS

    return None if (not changed_keys or set(changed_keys) & CALL_COLUMNS_IN_TURNS) else CALL_ONLY


def _after_flush(session, flush_context):
    outbox = _outbox_of_app()
    if outbox is None:
        return
    rows = []
    for obj in session.new:
        if isinstance(obj, Turn):
            rows.append((obj.call_id, obj.id))
        elif isinstance(obj, Call):
            rows.append((obj.id, CALL_ONLY))
    for obj in session.dirty:
        if isinstance(obj, Turn) and session.is_modified(obj, include_collections=False):
            rows.append((obj.call_id, obj.id))
        elif isinstance(obj, Call) and session.is_modified(obj, include_collections=False):
            changed = [a.key for a in inspect(obj).attrs if a.history.has_changes()]
            rows.append((obj.id, _turn_row_for_call_change(changed)))
    for obj in session.deleted:
        if isinstance(obj, Turn):
            rows.append((obj.call_id, obj.id))
        elif isinstance(obj, Call):
            rows.append((obj.id, None))
    rows = [r for r in dict.fromkeys(rows) if r[0] is not None]
    if rows:
        now = utcnow()
        session.connection().execute(
            insert(OUTBOX), [{"call_id": c, "turn_id": t, "created_at": now} for c, t in rows])
        _remember(session, outbox)


def _do_orm_execute(state):
    """Bulk UPDATE/DELETE of calls or turns: record the rows they touch, before they run."""
    if not (state.is_update or state.is_delete):
        return
    stmt = state.statement
    table = getattr(stmt, "table", None)
    if getattr(table, "name", None) not in (Call.__tablename__, Turn.__tablename__):
        return
    outbox = _outbox_of_app()
    if outbox is None:
        return
    session = state.session
    if state.is_delete and session.info.get("search_outbox_cleared"):
        return  # clear() already recorded every call it removes
    now = literal(utcnow(), DateTime(timezone=True))
    if table.name == Call.__tablename__:
        keys = [getattr(k, "key", k) for k in (getattr(stmt, "_values", None) or {})] if state.is_update else []
        turn_id = literal(_turn_row_for_call_change(keys), Integer)
        sel = select(Call.id, turn_id, now)
    else:
        sel = select(Turn.call_id, Turn.id, now)
    if stmt.whereclause is not None:
        sel = sel.where(stmt.whereclause)
    session.connection().execute(insert(OUTBOX).from_select(["call_id", "turn_id", "created_at"], sel))
    _remember(session, outbox)


def _after_commit(session):
    session.info.pop("search_outbox_cleared", None)
    outbox = session.info.pop("search_outbox", None)
    if outbox is not None:
        outbox.wake()


def _after_rollback(session):
    session.info.pop("search_outbox_cleared", None)
    session.info.pop("search_outbox", None)


def install() -> None:
    """Listen on every ORM session, once per process (the listeners check the app's config)."""
    global _installed
    if not _installed:
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "do_orm_execute", _do_orm_execute)
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", lambda session, previous: _after_rollback(session))
        _installed = True


# -- the drainer -------------------------------------------------------------------------

class Outbox:
    """Drains search_outbox into a TranscriptStore; one per app."""

    def __init__(self, app, store):
        self.app = app
        self.store = store
        self.poll_s = float(app.config.get("SEARCH_OUTBOX_POLL", 10.0))
        self.retry_max_s = float(app.config.get("SEARCH_OUTBOX_RETRY_MAX", 30.0))
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        install()
        # A restarted worker resumes what an outage left behind at its first request.
        app.before_request(self.ensure_running)

    # -- background thread -----------------------------------------------------------
    def ensure_running(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._stopped.clear()
            self._thread = threading.Thread(target=self._run, name="search-outbox", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self.ensure_running()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        from .elastic import ES_ERRORS

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
                        with _sqlite_write_lock() if db.engine.dialect.name == "sqlite" else nullcontext():
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
        from .elastic import call_document, turn_document

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
        session.info["search_outbox_cleared"] = True
        _remember(session, self)

    def _rebuild_batches(self):
        from .elastic import call_document, turn_document

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
            with _sqlite_write_lock() if db.engine.dialect.name == "sqlite" else nullcontext():
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


# -- `flask reindex` ---------------------------------------------------------------------

def reindex_transcripts(progress=None, if_needed: bool = False) -> int | None:
    """Rebuild the transcript index of the current app from the SQL call log.

    Returns the number of calls indexed, or None when `if_needed` found
    nothing to do: the SQL index is kept up to date on every write, and the
    Elasticsearch one needs a rebuild only when its indexes are missing
    (the outbox would rebuild them at its next drain anyway).
    progress(done, total) follows the Elasticsearch rebuild.
    """
    from . import get_index

    index = get_index()
    if index.name != "elasticsearch":
        return None if if_needed else index.reindex_all()
    if if_needed and index.store.ready():
        return None
    return index.reindex_all(progress=progress)


def reindex_transcripts_step(if_needed: bool = False, progress=None, finish=None) -> None:
    """The transcript half of `flask reindex`: rebuild, then say what was done (in Russian).

    With --if-needed (`make run`), an unreachable Elasticsearch only warns:
    the service starts, and the outbox rebuilds the index once it answers.
    """
    import click

    from .elastic import ES_ERRORS

    started = time.monotonic()
    try:
        n = reindex_transcripts(progress=progress, if_needed=if_needed)
    except ES_ERRORS as exc:
        if if_needed:
            click.echo(f"Индекс разговоров: Elasticsearch недоступен ({exc}); "
                       "он будет построен, когда Elasticsearch ответит.", err=True)
            return
        raise click.ClickException(f"Индекс разговоров не перестроен: Elasticsearch недоступен ({exc}).") from exc
    finally:
        if finish:
            finish()
    from . import get_index

    if n is not None:  # nothing to say when nothing was needed (`make run` at every start)
        seconds = time.monotonic() - started
        click.echo(f"Индекс разговоров ({get_index().name}) перестроен: {n} звонков за {seconds:.2f} с.")
