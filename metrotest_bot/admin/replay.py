"""Replay before publishing: a KB version is tried on real callers' questions before it goes live.

A replay asks the last REPLAY_QUESTIONS (200) distinct questions callers asked (from the call
log) plus the saved test questions (admin/review.py) of two KBs — the KB in force and a
candidate KBVersion — and keeps the diff in a ReplayRun row: newly refused, newly answered,
changed answers (side by side), and the passage counts. It runs offline (the learned gate and
the KB's own sentences), or through the model when an LLM is configured (replay_ask.py), in
the background, with progress in the row, so any worker's page can follow it
(/kb/versions/<id>/replay). A candidate system prompt is replayed by the same job against the
prompt in force (prompt_replay.py).

The candidate is opened beside the engine, never in its place: `open_index()` loads the
version's index (built by the upload job, or here from the file kept in the database) as a
rag.engine.LoadedIndex and runs the same retrieval pipeline and Answer as a call.

Holding: an upload with fewer than KB_CONFIRM_SHRINK_RATIO (half) of the passages in force is
built but not put in force (`KBVersion.held_reason`); its replay starts by itself, and it goes
live only when an admin confirms. Publishing a version whose replay shows more refusals than
the KB in force needs the same confirmation; otherwise one click publishes.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select, update

from ..bot_settings import load_from_db
from ..extensions import db
from ..morph import fold_yo
from ..models import (KB_STATUS_READY, REPLAY_DONE, REPLAY_FAILED, REPLAY_RUNNING, ROLE_BOT, AuditLog, KBVersion,
                      ReplayRun, TestQuestion, Turn)
from ..rag import KBError, get_engine
from ..rag.generate import llm_enabled
from ..timeutil import utcnow
from . import bp
from .forms import RussianForm
from .ranges import MAX_ID
from .replay_ask import CHANGED, ask, compare, kind_of, offline_config  # noqa: F401  (bench, tests)

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 0.5
STALE_AFTER = timedelta(seconds=60)
READ_FACTOR = 20  # caller turns read to find N distinct questions: at most N × this

_threads: dict[int, threading.Thread] = {}


class ReplayForm(RussianForm):
    """Only the CSRF token; `confirm` is read in the view."""


# --- the questions --------------------------------------------------------------------------

def question_key(text: str) -> str:
    return " ".join("".join(ch if ch.isalnum() else " " for ch in fold_yo(text.lower())).split())


def replay_questions(limit: int) -> list[tuple[str, bool]]:
    """(question, is a saved test question): the saved test questions, then the last `limit`
    distinct questions callers asked, newest first; each question once."""
    seen: set[str] = set()
    out: list[tuple[str, bool]] = []
    for text in db.session.scalars(select(TestQuestion.question).order_by(TestQuestion.id)):
        key = question_key(text or "")
        if key and key not in seen:
            seen.add(key)
            out.append((text.strip(), True))
    n_log = 0
    rows = db.session.scalars(
        select(Turn.question).where(Turn.role == ROLE_BOT, Turn.kind == "answer", Turn.question.is_not(None))
        .order_by(Turn.created_at.desc(), Turn.id.desc()).limit(max(limit, 0) * READ_FACTOR)
        .execution_options(yield_per=1000))
    for text in rows:
        if n_log >= limit:
            break
        key = question_key(text or "")
        if key and key not in seen:
            seen.add(key)
            out.append((text.strip(), False))
            n_log += 1
    return out


# --- asking a KB ------------------------------------------------------------------------

def open_index(config, version_id: int):
    """The candidate version's index as a rag.engine.LoadedIndex (built here if this machine lacks it)."""
    from ..rag.engine import LoadedIndex, Target, version_index_name
    from ..rag.sources import local_source
    from ..rag.stores import open_store
    from ..rag.versions import build_version

    row = db.session.get(KBVersion, version_id)
    if row is None:
        raise KBError("Такой версии базы знаний нет.")
    name = version_index_name(version_id)
    store = open_store(config, name)
    if store.manifest() is None:  # indexed on another machine: build it from the bytes in the database
        build_version(version_id, local_source(config, version_id, row.stored_path), config=config)
        store = open_store(config, name)
    return LoadedIndex(Target(name, Path(row.stored_path or ""), version_id), store, store.manifest() or {})


# --- holding and confirming -----------------------------------------------------------------

def in_force_passages() -> int:
    return get_engine().passage_count()


def shrink_reason(n_passages: int, in_force: int, ratio: float) -> str | None:
    if ratio > 0 and in_force > 0 and n_passages < ratio * in_force:
        return (f"в новой версии {n_passages} фрагм. — меньше {round(ratio * 100)}% действующей базы "
                f"({in_force} фрагм.): большая часть ответов пропадёт.")
    return None


@dataclass
class Risks:
    shrink: str | None
    refusals: str | None

    @property
    def reasons(self) -> list[str]:
        return [r for r in (self.shrink, self.refusals) if r]


def refusal_risk(run: ReplayRun | None) -> str | None:
    if run is not None and run.status == REPLAY_DONE and run.result:
        old, new = run.result["refused"]["in_force"], run.result["refused"]["candidate"]
        if new > old:
            return (f"Отказов станет больше: {new} из {run.result['questions']} вопросов вместо {old} "
                    f"(новых отказов: {run.result['counts']['newly_refused']}).")
    return None


def risks(row: KBVersion, run: ReplayRun | None) -> Risks:
    ratio = float(current_app.config["KB_CONFIRM_SHRINK_RATIO"])
    shrink = shrink_reason(row.n_passages or 0, in_force_passages(), ratio)
    return Risks(shrink, refusal_risk(run))


CANDIDATE = "новая версия ждёт публикации: проверьте её на вопросах абонентов и опубликуйте."


def hold_reason(app, version_id: int, n_passages: int) -> str | None:
    """Called by the upload job before it puts a version in force: why it is held, or None
    (then it goes live at once). A sharp shrink is always held; with KB_HOLD_UPLOADS, every upload."""
    ratio = float(app.config["KB_CONFIRM_SHRINK_RATIO"])
    shrink = None
    if ratio > 0:
        try:
            shrink = shrink_reason(n_passages, in_force_passages(), ratio)
        except Exception:  # nothing loadable in force: nothing to protect
            log.warning("KB in force unreadable; upload %s not compared", version_id, exc_info=True)
    if shrink:
        return shrink + " Опубликовать её можно только с подтверждением."
    return CANDIDATE if app.config["KB_HOLD_UPLOADS"] else None


# --- the job ------------------------------------------------------------------------------

def latest_run(version_id: int) -> ReplayRun | None:
    return db.session.scalar(select(ReplayRun).where(ReplayRun.version_id == version_id)
                             .order_by(ReplayRun.id.desc()).limit(1))


def expire_stale() -> None:
    cutoff = utcnow() - STALE_AFTER
    n = db.session.execute(update(ReplayRun).where(ReplayRun.status == REPLAY_RUNNING,
                                                   ReplayRun.heartbeat_at < cutoff)
                           .values(status=REPLAY_FAILED, error="Проверка прервалась (сервер перезапускался). "
                                                               "Запустите её снова.")).rowcount
    if n:
        db.session.commit()


def start(version_id: int | None, username: str | None, prompt: str | None = None) -> int:
    """Create a ReplayRun for KB version `version_id`, or for a candidate system `prompt`, and run
    it in the background (this worker)."""
    run = ReplayRun(version_id=version_id, prompt=prompt, status=REPLAY_RUNNING, created_by=username,
                    created_at=utcnow(), heartbeat_at=utcnow())
    db.session.add(run)
    db.session.commit()
    app = current_app._get_current_object()
    thread = threading.Thread(target=execute, args=(app, run.id), name=f"kb-replay-{run.id}", daemon=True)
    _threads[run.id] = thread
    thread.start()
    return run.id


def wait(run_id: int | None = None, timeout: float = 120.0) -> None:
    """Tests: wait for this worker's replays."""
    for rid, thread in list(_threads.items()):
        if run_id is None or rid == run_id:
            thread.join(timeout)


def _set(run_id: int, **values) -> None:
    db.session.execute(update(ReplayRun).where(ReplayRun.id == run_id).values(**values))
    db.session.commit()


def execute(app, run_id: int) -> None:
    """The job. Under gunicorn's gevent worker a greenlet: each question is a few milliseconds
    of CPU, and it yields between questions so the worker's calls keep flowing."""
    with app.app_context():
        try:
            run = db.session.get(ReplayRun, run_id)
            questions = replay_questions(int(app.config["REPLAY_QUESTIONS"]))
            _set(run_id, n_questions=len(questions))
            engine = get_engine()
            engine.refresh()
            in_force = engine.current()
            settings, candidate_settings = load_from_db(), None
            if run.prompt is not None:  # a candidate prompt: the same KB, the new instruction
                candidate, candidate_settings = in_force, replace(settings, system_prompt=run.prompt)
            else:
                candidate = open_index(app.config, run.version_id)
            last = [time.monotonic()]

            def progress(done: int, total: int) -> None:
                time.sleep(0)  # let calls on this worker run
                now = time.monotonic()
                if now - last[0] >= HEARTBEAT_EVERY:
                    last[0] = now
                    _set(run_id, progress=round(done / max(total, 1), 3), heartbeat_at=utcnow())

            result = compare(in_force, candidate, questions, settings, app.config, progress, candidate_settings)
            if run.prompt is not None:  # the page shows what the candidate was compared with
                result["prompt_in_force"] = settings.system_prompt
            _set(run_id, status=REPLAY_DONE, progress=1.0, result=result, finished_at=utcnow(), heartbeat_at=utcnow())
            log.info("replay %s of %s: %s questions in %.1f s", run_id,
                     "a prompt" if run.prompt is not None else f"KB version {run.version_id}",
                     len(questions), result["seconds"])
        except KBError as exc:
            db.session.rollback()
            _set(run_id, status=REPLAY_FAILED, error=exc.message, finished_at=utcnow())
        except Exception:
            log.exception("replay %s failed", run_id)
            db.session.rollback()
            try:
                _set(run_id, status=REPLAY_FAILED, error="Проверка не удалась из-за внутренней ошибки; "
                                                         "подробности в журнале сервера.", finished_at=utcnow())
            except Exception:
                log.exception("replay %s: cannot record the failure", run_id)
        finally:
            db.session.remove()
            _threads.pop(run_id, None)


# --- pages ----------------------------------------------------------------------------------

def _version_or_404(version_id: int) -> KBVersion:
    row = db.session.get(KBVersion, version_id)
    if row is None:
        abort(404)
    return row


@bp.route(f"/kb/versions/<int(max={MAX_ID}):version_id>/replay")
def kb_replay(version_id: int):
    expire_stale()
    row = _version_or_404(version_id)
    run = latest_run(version_id)
    return render_template("admin/replay.html", version=row, run=run, risks=risks(row, run),
                           in_force=in_force_passages(), form=ReplayForm(formdata=None),
                           limit=current_app.config["REPLAY_QUESTIONS"],
                           llm_configured=llm_enabled(current_app.config))


@bp.route(f"/kb/versions/<int(max={MAX_ID}):version_id>/replay", methods=["POST"])
def kb_replay_start(version_id: int):
    if not ReplayForm().validate_on_submit():
        abort(400, "Форма устарела: обновите страницу.")
    row = _version_or_404(version_id)
    if row.status != KB_STATUS_READY:
        flash("Эту версию нельзя проверить: она не проиндексирована.", "error")
        return redirect(url_for("admin.kb"), 303)
    run = latest_run(version_id)
    if run is None or run.status != REPLAY_RUNNING:
        start(version_id, current_user.username)
    return redirect(url_for("admin.kb_replay", version_id=version_id), 303)


@bp.route(f"/kb/replays/<int(max={MAX_ID}):run_id>/status")
def kb_replay_status(run_id: int):
    expire_stale()
    run = db.session.get(ReplayRun, run_id)
    if run is None:
        return jsonify(error="Такой проверки нет."), 404
    return jsonify(id=run.id, status=run.status, progress=round(run.progress or 0.0, 3),
                   n_questions=run.n_questions, error=run.error, done=run.status != REPLAY_RUNNING)


@bp.route(f"/kb/versions/<int(max={MAX_ID}):version_id>/publish", methods=["POST"])
def kb_publish(version_id: int):
    from ..rag.versions import activate_version

    if not ReplayForm().validate_on_submit():
        abort(400, "Форма устарела: обновите страницу.")
    row = _version_or_404(version_id)
    if row.status != KB_STATUS_READY:
        flash("Эту версию нельзя опубликовать: она не проиндексирована.", "error")
        return redirect(url_for("admin.kb"), 303)
    found = risks(row, latest_run(version_id))
    confirmed = request.form.get("confirm") == "yes"
    if found.reasons and not confirmed:
        flash("Публикация не выполнена: отметьте, что вы понимаете последствия. " + " ".join(found.reasons), "error")
        return redirect(url_for("admin.kb_replay", version_id=version_id), 303)
    previous = db.session.scalar(select(KBVersion.id).where(KBVersion.active.is_(True)))
    row.held_reason = None
    try:
        activate_version(version_id)  # commits held_reason with it
    except KBError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("admin.kb_replay", version_id=version_id), 303)
    db.session.add(AuditLog(username=current_user.username, action="kb_activate", at=utcnow(),
                            details={"version": version_id, "previous": previous, "filename": row.filename,
                                     "confirmed": found.reasons if found.reasons else None}))
    db.session.commit()
    flash(f"Опубликована версия №{row.id} («{row.filename}»). Все звонки отвечают по ней в течение нескольких секунд.",
          "success")
    return redirect(url_for("admin.kb"), 303)


@bp.app_template_filter("replay_kind")
def replay_kind(kind: str) -> str:
    return {"newly_refused": "новый отказ", "newly_answered": "новый ответ", "changed": "ответ изменился"}.get(kind, kind)
