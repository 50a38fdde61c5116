"""KB uploads: saving the file, indexing it in the background, recovering lost jobs.

The job runs in the worker that took the upload: a thread (under gunicorn's
gevent worker, a greenlet that hands the CPU-heavy build to a native thread of
gevent's pool, so calls on that worker keep flowing). Its state lives in the
KBVersion row, so the page on any worker shows it:

    pending → indexing (progress 0..1, heartbeat_at) → ready + active
                                                    ↘ failed (error: Russian message)

The KB in force changes only in rag.versions.activate_version(), one
transaction, and only after the new index is complete. A job whose worker
died (restart, crash) stops beating; `expire_stale_jobs()` marks its row
failed, and the admin can retry it from the kept file (on any machine: the
bytes are in the database too, rag/sources.py).
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import and_, or_, update

from ..extensions import db
from ..models import KB_STATUS_FAILED, KB_STATUS_INDEXING, KB_STATUS_PENDING, KB_STATUS_READY, KBVersion
from ..rag import KBError
from ..rag import sources
from ..rag.ingest import SUPPORTED
from ..timeutil import utcnow

log = logging.getLogger(__name__)

IN_PROGRESS = (KB_STATUS_PENDING, KB_STATUS_INDEXING)
HEARTBEAT_EVERY = 0.5  # seconds between progress writes
INTERRUPTED = ("Индексация прервалась: сервер перезапускался во время обработки файла. "
               "База знаний не менялась; нажмите «Повторить» или загрузите файл ещё раз.")
INTERNAL = "Не удалось проиндексировать файл из-за внутренней ошибки. База знаний не менялась; подробности в журнале сервера."

_threads: dict[int, threading.Thread] = {}


# --- the uploaded file ------------------------------------------------------------

def display_name(raw: str | None) -> str:
    """The file name as the admin knows it: Cyrillic kept, any path and control characters dropped."""
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    name = name.strip().strip(".") or "без имени"
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 10 else name[:200]
    return name


def extension(name: str) -> str:
    return Path(name).suffix.lower()


def upload_dir() -> Path:
    path = Path(current_app.config["DATA_DIR"]) / "kb" / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Saved:
    path: Path
    size: int
    blank: bool  # empty, or whitespace only


def save_upload(stream, suffix: str, limit: int) -> Saved | None:
    """Copy an uploaded file to DATA_DIR/kb/uploads under a generated name.

    Returns None (and keeps nothing) when it is larger than `limit` bytes."""
    path = upload_dir() / f"{utcnow():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:10]}{suffix}"
    size, blank = 0, True
    with open(path, "wb") as out:
        while chunk := stream.read(256 * 1024):
            size += len(chunk)
            if size > limit:
                break
            blank = blank and not chunk.strip()
            out.write(chunk)
    if size > limit:
        path.unlink(missing_ok=True)
        return None
    return Saved(path=path, size=size, blank=blank)


def type_error(name: str) -> str | None:
    """A Russian message when the file's type cannot be a KB (checked before storing anything)."""
    ext = extension(name)
    if ext not in SUPPORTED:
        shown = ext or "без расширения"
        return (f"Неподдерживаемый тип файла ({shown}). Загрузите текст .txt (UTF-8 или Windows-1251), "
                f".md или .pdf. База знаний не изменилась.")
    return None


def content_error(saved: Saved | None, limit: int) -> str | None:
    """A Russian message for a stored upload that is too big (None saved) or empty."""
    if saved is None:
        return too_big_message(limit)
    if saved.size == 0 or saved.blank:
        return "Файл пустой: в нём нет текста. База знаний не изменилась."
    return None


def too_big_message(limit: int) -> str:
    return f"Файл слишком большой: можно загрузить не больше {human_size(limit)}. База знаний не изменилась."


def human_size(n: int) -> str:
    if n < 1024 * 1024:
        return f"{max(1, round(n / 1024))} КБ"
    value = n / (1024 * 1024)
    return (f"{value:.1f}".rstrip("0").rstrip(".") if value < 10 else f"{value:.0f}").replace(".", ",") + " МБ"


# --- the job --------------------------------------------------------------------------

def start(version_id: int) -> None:
    """Index KBVersion `version_id` in the background (this worker)."""
    app = current_app._get_current_object()
    thread = threading.Thread(target=run, args=(app, version_id, utcnow()), name=f"kb-index-{version_id}",
                              daemon=True)
    _threads[version_id] = thread
    thread.start()


def wait(version_id: int | None = None, timeout: float = 60.0) -> None:
    """Tests and the CLI: wait for this worker's job(s) to finish."""
    for vid, thread in list(_threads.items()):
        if version_id is None or vid == version_id:
            thread.join(timeout)


def _set(version_id: int, only_if_status=None, **values) -> bool:
    """Update the row in its own short transaction; False when `only_if_status` no longer holds."""
    stmt = update(KBVersion).where(KBVersion.id == version_id)
    if only_if_status:
        stmt = stmt.where(KBVersion.status.in_(only_if_status))
    changed = db.session.execute(stmt.values(**values)).rowcount
    db.session.commit()
    return bool(changed)


def run(app, version_id: int, requested_at=None) -> None:
    """The job: build the version's index, then put it in force (see the module's docstring)."""
    from ..rag.versions import activate_version, delete_version_index

    with app.app_context():
        try:
            row = db.session.get(KBVersion, version_id)
            if row is None or not _set(version_id, IN_PROGRESS, status=KB_STATUS_INDEXING, progress=0.0,
                                       heartbeat_at=utcnow(), error=None):
                return
            try:  # a retry on another machine than the upload's copies the file from the database
                path = str(sources.local_source(app.config, version_id, row.stored_path))
            except KBError as exc:
                _fail(version_id, exc.message)
                return
            requested_at = requested_at or row.created_at
            last = [time.monotonic()]

            def beat(done: int, total: int) -> None:
                now = time.monotonic()
                if now - last[0] >= HEARTBEAT_EVERY or done == total:
                    last[0] = now
                    # Slightly below 1: activation is still to come.
                    _set(version_id, (KB_STATUS_INDEXING,), progress=round(0.95 * done / max(total, 1), 3),
                         heartbeat_at=utcnow())

            try:
                result = build(app, version_id, path, beat)
            except KBError as exc:
                _fail(version_id, exc.message, drop_file=path)
                delete_version_index(version_id)
                return
            # Still "indexing" until the switch: the page, polling, must never see "ready" and not yet active.
            done = _set(version_id, (KB_STATUS_INDEXING,), progress=1.0, heartbeat_at=utcnow(),
                        n_passages=result.n_passages, n_sections=result.n_sections,
                        encoding=result.encoding, sha256=result.sha256)
            if not done:  # declared dead meanwhile (a very slow job): do not switch behind the admin's back
                log.warning("KB version %s finished after it was marked failed; not activated", version_id)
                return
            # Another version put in force since this upload (a later upload, a rollback) stays:
            # the admin's latest decision wins.
            newer = db.session.scalar(db.select(KBVersion.id).where(
                KBVersion.active.is_(True), KBVersion.id != version_id, KBVersion.activated_at > requested_at))
            if newer:
                _set(version_id, (KB_STATUS_INDEXING,), status=KB_STATUS_READY)
                log.info("KB version %s ready; version %s, put in force since, stays", version_id, newer)
                return
            from .replay import hold_reason, start as start_replay

            held = hold_reason(app, version_id, result.n_passages)
            if held:  # a candidate: replayed, then published by an admin (a sharp shrink: confirmed; admin/replay.py)
                _set(version_id, (KB_STATUS_INDEXING,), status=KB_STATUS_READY, held_reason=held)
                log.warning("KB version %s held for confirmation: %s", version_id, held)
                start_replay(version_id, row.created_by)
                return
            activate_version(version_id)  # ready and active in one commit
            log.info("KB version %s (%s) in force: %s passages", version_id, row.filename, result.n_passages)
        except Exception:
            log.exception("KB version %s: indexing failed", version_id)
            db.session.rollback()
            try:
                _fail(version_id, INTERNAL)
            except Exception:
                log.exception("KB version %s: cannot record the failure", version_id)
        finally:
            db.session.remove()
            _threads.pop(version_id, None)


def _gevent_worker() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("threading")


def build(app, version_id: int, path: str, beat):
    """rag.versions.build_version, with beat(done, total) called from this thread/greenlet.

    Under gevent the build runs in a native thread of gevent's pool: parsing and
    writing a big file are seconds of pure CPU, which in a greenlet would stall
    every call on this worker. The thread shares the GIL (5 ms slices) with the
    worker's hub, and this greenlet records its progress meanwhile.
    """
    from ..rag.versions import build_version

    if not _gevent_worker():
        def progress(done, total):
            beat(done, total)
            time.sleep(0)

        return build_version(version_id, path, progress=progress, config=app.config)
    import gevent

    state = {"done": 0, "total": 1}

    def record(done, total):  # runs in the native thread: no database, no gevent here
        state["done"], state["total"] = done, total

    def build_or_refuse():  # a refusal comes back as a value: gevent's pool prints what a task raises
        try:
            return build_version(version_id, path, record, app.config), None
        except KBError as exc:
            return None, exc

    job = gevent.get_hub().threadpool.spawn(build_or_refuse)
    while not job.ready():
        job.wait(HEARTBEAT_EVERY)
        if not job.ready():
            beat(state["done"], state["total"])
    result, refusal = job.get()  # any other exception of the build is raised here
    if refusal is not None:
        raise refusal
    return result


def _fail(version_id: int, message: str, drop_file: str | None = None) -> None:
    _set(version_id, IN_PROGRESS + (KB_STATUS_READY,), status=KB_STATUS_FAILED, error=message,
         heartbeat_at=utcnow(), active=False)
    if drop_file:  # an unusable file is of no further use; keep nothing an admin cannot act on
        sources.forget_file(db.session, version_id)
        db.session.commit()
        try:
            os.unlink(drop_file)
        except OSError:
            pass


def expire_stale_jobs() -> int:
    """Mark failed the jobs whose worker died (no heartbeat for KB_JOB_STALE_SECONDS)."""
    cutoff = utcnow() - timedelta(seconds=float(current_app.config["KB_JOB_STALE_SECONDS"]))
    stale = and_(KBVersion.status.in_(IN_PROGRESS), or_(
        KBVersion.heartbeat_at < cutoff, and_(KBVersion.heartbeat_at.is_(None), KBVersion.created_at < cutoff)))
    ids = db.session.scalars(db.select(KBVersion.id).where(stale)).all()  # a read first: polls stay read-only
    if not ids:
        return 0
    # The condition again: a job that beat in between stays alive.
    n = db.session.execute(update(KBVersion).where(KBVersion.id.in_(ids), stale)
                           .values(status=KB_STATUS_FAILED, error=INTERRUPTED)).rowcount
    db.session.commit()
    if n:
        log.warning("marked %s interrupted KB indexing job(s) failed", n)
    return n


def can_retry(row: KBVersion) -> bool:
    if row.status != KB_STATUS_FAILED:
        return False
    return bool(row.stored_path) and os.path.exists(row.stored_path) or sources.has_file(row.id)


def retry(row: KBVersion) -> None:
    row.status, row.progress, row.error, row.heartbeat_at = KB_STATUS_PENDING, 0.0, None, utcnow()
    db.session.commit()
    start(row.id)
