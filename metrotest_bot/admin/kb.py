"""The knowledge base page (/logs-ui/kb): the KB in force, its versions, upload, rollback.

Every POST here carries the form's csrf_token; CSRFProtect checks it before the view runs.

Uploads are indexed in the background (kb_jobs); the page polls
/kb/versions/<id>/status. Switching is rag.versions.activate_version():
every worker follows the active KBVersion row within SHARED_STATE_TTL.
The file's bytes are kept in the database with its row (rag/sources.py), so
every machine can build the version's index and download the file.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import select, update
from werkzeug.exceptions import RequestEntityTooLarge

from ..extensions import db
from ..models import KB_STATUS_FAILED, KB_STATUS_INDEXING, KB_STATUS_PENDING, KB_STATUS_READY, AuditLog, KBVersion
from ..rag import KBError, get_engine
from ..rag.sources import keep_file, read_file
from ..search import highlight, query_terms
from ..search.lemmas import text_lemmas
from ..timeutil import utcnow
from . import bp, kb_jobs
from .forms import RussianForm
from .ranges import MAX_ID, id_or_none

log = logging.getLogger(__name__)

STATUS_LABELS = {
    KB_STATUS_PENDING: "в очереди",
    KB_STATUS_INDEXING: "индексируется",
    KB_STATUS_READY: "готова",
    KB_STATUS_FAILED: "ошибка",
}
SHOW_PASSAGES = 400  # without a search, the page lists this many passages at most
VERSIONS_SHOWN = 50


class UploadForm(RussianForm):
    """Only the CSRF token: the file field `file` is read from request.files, checked in kb_jobs."""


@bp.app_template_filter("kb_status")
def kb_status_label(value: str | None) -> str:
    return STATUS_LABELS.get(value or "", value or "—")


@bp.app_template_filter("filesize")
def filesize(n: int | None) -> str:
    if n is None:
        return "—"
    if n < 1024:
        return f"{n} Б"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} КБ"
    return f"{n / 1024 / 1024:.1f} МБ".replace(".", ",")


# --- the KB in force -------------------------------------------------------------------

@dataclass
class SectionView:
    title: str
    passages: list[Markup] = field(default_factory=list)


@dataclass
class KBInForce:
    name: str  # index name
    source: str  # file name shown
    version: KBVersion | None  # None: the KB_PATH file of the first start
    count: int
    sections: list[SectionView]
    matched: int | None  # passages matching the search, None without one
    truncated: bool


def kb_in_force(q: str = "") -> KBInForce | None:
    engine = get_engine()
    engine.refresh()  # this page shows what the database says is in force, not a cached copy
    index = engine.current()
    if index is None:
        return None
    version = db.session.get(KBVersion, index.target.version_id) if index.target.version_id else None
    docs = sorted(index.store.documents(), key=lambda d: d.meta.get("position", 0))
    terms = query_terms(q) if q else []
    sections: list[SectionView] = []
    matched = 0
    for d in docs:
        text, title = d.meta.get("text", ""), d.meta.get("section", "") or ""
        if terms:
            lemmas = text_lemmas(f"{title} {text}")
            if not all(term & lemmas for term in terms):
                continue
            html = highlight(text, terms)
        else:
            html = escape(text)
        matched += 1
        if matched > SHOW_PASSAGES:
            continue
        if not sections or sections[-1].title != title:
            sections.append(SectionView(title))
        sections[-1].passages.append(html)
    source = version.filename if version else Path(index.target.source).name
    return KBInForce(name=index.target.name, source=source, version=version, count=index.count,
                     sections=sections, matched=matched if terms else None, truncated=matched > SHOW_PASSAGES)


# --- pages -------------------------------------------------------------------------------

def _render(upload_error: str | None = None, status: int = 200):
    kb_jobs.expire_stale_jobs()
    q = (request.args.get("q") or "").strip()[:200]
    versions = db.session.scalars(select(KBVersion).order_by(KBVersion.id.desc()).limit(VERSIONS_SHOWN)).all()
    watched = None
    upload_id = id_or_none(request.args.get("upload"))
    if upload_id is not None:
        watched = db.session.get(KBVersion, upload_id)
    try:
        current = kb_in_force(q)
    except Exception:  # the page must still allow an upload when the KB in force is unreadable
        log.exception("cannot read the KB in force")
        current = None
    limit = current_app.config["KB_MAX_UPLOAD_BYTES"]
    return render_template("admin/kb.html", form=UploadForm(formdata=None), current=current, versions=versions, q=q,
                           watched=watched, upload_error=upload_error, limit_text=kb_jobs.human_size(limit),
                           too_big=kb_jobs.too_big_message(limit),
                           can_retry=kb_jobs.can_retry,
                           any_active=any(v.active for v in versions)), status


@bp.route("/kb")
def kb():
    return _render()


@bp.route("/kb/upload", methods=["POST"])
def kb_upload():
    form = UploadForm()
    if not form.validate_on_submit():
        return _render("Форма устарела: обновите страницу и загрузите файл снова.", 400)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render("Выберите файл базы знаний: .txt, .md или .pdf.", 400)
    name = kb_jobs.display_name(upload.filename)
    error = kb_jobs.type_error(name)  # the type first: an .exe is not even stored
    if error:
        return _render(error, 400)
    limit = current_app.config["KB_MAX_UPLOAD_BYTES"]
    saved = kb_jobs.save_upload(upload.stream, kb_jobs.extension(name), limit)
    error = kb_jobs.content_error(saved, limit)
    if error:
        if saved:
            saved.path.unlink(missing_ok=True)
        return _render(error, 413 if saved is None else 400)
    row = KBVersion(filename=name, stored_path=str(saved.path), size_bytes=saved.size, created_at=utcnow(),
                    created_by=current_user.username, status=KB_STATUS_PENDING, heartbeat_at=utcnow())
    db.session.add(row)
    db.session.flush()
    keep_file(db.session, row.id, saved.path.read_bytes())  # SQL is the source of truth: any machine can index it
    db.session.commit()
    log.info("KB upload %s (%s, %s bytes) by %s", row.id, name, saved.size, current_user.username)
    kb_jobs.start(row.id)
    return redirect(url_for("admin.kb", upload=row.id, _anchor="upload"), 303)


@bp.errorhandler(RequestEntityTooLarge)
def upload_too_large(exc):
    message = kb_jobs.too_big_message(current_app.config["KB_MAX_UPLOAD_BYTES"])
    if request.endpoint == "admin.kb_upload":
        return _render(message, 413)
    return render_template("admin/error.html", title="Слишком большой запрос", message=message), 413


@bp.route(f"/kb/versions/<int(max={MAX_ID}):version_id>/status")
def kb_status(version_id: int):
    kb_jobs.expire_stale_jobs()
    row = db.session.get(KBVersion, version_id)
    if row is None:
        return jsonify(error="Такой версии нет."), 404
    return jsonify(id=row.id, status=row.status, status_label=kb_status_label(row.status),
                   progress=round(row.progress or 0.0, 3), error=row.error, active=row.active,
                   n_passages=row.n_passages, n_sections=row.n_sections, filename=row.filename,
                   done=row.status in (KB_STATUS_READY, KB_STATUS_FAILED))


def _audit(action: str, **details) -> None:
    db.session.add(AuditLog(username=current_user.username, action=action, details=details, at=utcnow()))
    db.session.commit()


@bp.route(f"/kb/versions/<int(max={MAX_ID}):version_id>/activate", methods=["POST"])
def kb_activate(version_id: int):
    from ..rag.versions import activate_version

    row = db.session.get(KBVersion, version_id) or abort(404)
    if row.status != KB_STATUS_READY:
        flash("Эту версию нельзя сделать действующей: она не проиндексирована.", "error")
        return redirect(url_for("admin.kb"), 303)
    if row.held_reason or row.activated_at is None:
        # Never in force yet: a held candidate is published from its replay page, and so is any
        # version whose publication needs a confirmation (a sharp shrink, more refusals).
        from .replay import latest_run, risks

        if row.held_reason or risks(row, latest_run(version_id)).reasons:
            flash("Эта версия ждёт публикации: посмотрите проверку на вопросах абонентов и опубликуйте её.", "error")
            return redirect(url_for("admin.kb_replay", version_id=version_id), 303)
    previous = db.session.scalar(select(KBVersion.id).where(KBVersion.active.is_(True)))
    try:
        activate_version(version_id)
    except KBError as exc:
        flash(exc.message, "error")
        return redirect(url_for("admin.kb"), 303)
    _audit("kb_activate", version=version_id, previous=previous, filename=row.filename)
    flash(f"Действует версия №{row.id} («{row.filename}»). Все звонки отвечают по ней в течение нескольких секунд.",
          "success")
    return redirect(url_for("admin.kb"), 303)


@bp.route("/kb/default", methods=["POST"])
def kb_restore_default():
    """Back to the KB_PATH file of the first start: no version is active."""
    previous = db.session.scalar(select(KBVersion.id).where(KBVersion.active.is_(True)))
    db.session.execute(update(KBVersion).values(active=False))
    db.session.commit()
    get_engine().refresh()
    _audit("kb_activate", version=None, previous=previous, filename=Path(current_app.config["KB_PATH"]).name)
    flash("Действует исходная база знаний (файл KB_PATH).", "success")
    return redirect(url_for("admin.kb"), 303)


@bp.route(f"/kb/versions/<int(max={MAX_ID}):version_id>/retry", methods=["POST"])
def kb_retry(version_id: int):
    row = db.session.get(KBVersion, version_id) or abort(404)
    if not kb_jobs.can_retry(row):
        flash("Эту загрузку нельзя повторить: файла больше нет. Загрузите его снова.", "error")
        return redirect(url_for("admin.kb"), 303)
    kb_jobs.retry(row)
    return redirect(url_for("admin.kb", upload=row.id, _anchor="upload"), 303)


@bp.route(f"/kb/versions/<int(max={MAX_ID}):version_id>/file")
def kb_download(version_id: int):
    row = db.session.get(KBVersion, version_id) or abort(404)
    path = Path(row.stored_path or "")
    if row.stored_path and path.is_file():
        return send_file(path, as_attachment=True, download_name=row.filename)
    found = read_file(version_id)  # uploaded on another machine
    if found is None:
        abort(404)
    return send_file(io.BytesIO(found[0]), as_attachment=True, download_name=row.filename)


@bp.app_context_processor
def kb_constants():
    return {"KB_IN_PROGRESS": kb_jobs.IN_PROGRESS}  # the statuses the page's script follows
