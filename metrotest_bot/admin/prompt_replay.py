"""Replaying a change of the system prompt before it goes live (issue 15).

With an LLM configured the system prompt shapes every answer, so a change of it is a
candidate, like a KB upload: the settings page (settings_views.py) saves the other fields at
once and hands the new prompt to `propose()`, which starts a replay (admin/replay.py, the same
job: the callers' recent questions and the saved test questions, through the model, against
the prompt in force, on the KB in force). The page at /settings/prompt/<run id> shows the same
diff as a KB candidate's and publishes with one click; a rise in refusals needs a confirmation.
Publishing saves a new settings version with the candidate prompt and everything else as it is
in force then. Offline the prompt affects no answer: it is saved directly (settings_views.py).
"""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..bot_settings import load_from_db, save_bot_settings
from ..extensions import db
from ..models import REPLAY_RUNNING, AuditLog, BotSettingsVersion, ReplayRun
from ..timeutil import as_utc, utcnow
from . import bp, replay
from .ranges import MAX_ID


def propose(prompt: str, username: str | None) -> int:
    """Start the replay of a candidate prompt; its run's id names the candidate's page."""
    return replay.start(None, username, prompt=prompt)


def waiting_candidate() -> ReplayRun | None:
    """The newest candidate prompt not yet in force and proposed after the last settings save, if any."""
    run = db.session.scalar(select(ReplayRun).where(ReplayRun.prompt.is_not(None))
                            .order_by(ReplayRun.id.desc()).limit(1))
    if run is None or run.prompt == load_from_db().system_prompt:
        return None
    saved = db.session.scalar(select(BotSettingsVersion.created_at).order_by(BotSettingsVersion.id.desc()).limit(1))
    if saved is not None and as_utc(saved) > as_utc(run.created_at):
        return None  # the settings were saved (or restored) since: that candidate is history
    return run


def _run_or_404(run_id: int) -> ReplayRun:
    run = db.session.get(ReplayRun, run_id)
    if run is None or run.prompt is None:
        abort(404)
    return run


@bp.route(f"/settings/prompt/<int(max={MAX_ID}):run_id>")
def prompt_replay(run_id: int):
    replay.expire_stale()
    run = _run_or_404(run_id)
    in_force = load_from_db().system_prompt
    return render_template("admin/prompt_replay.html", run=run, in_force=in_force, live=run.prompt == in_force,
                           refusals=replay.refusal_risk(run), form=replay.ReplayForm(formdata=None),
                           limit=current_app.config["REPLAY_QUESTIONS"])


@bp.route(f"/settings/prompt/<int(max={MAX_ID}):run_id>/replay", methods=["POST"])
def prompt_replay_start(run_id: int):
    if not replay.ReplayForm().validate_on_submit():
        abort(400, "Форма устарела: обновите страницу.")
    run = _run_or_404(run_id)
    if run.status == REPLAY_RUNNING:
        return redirect(url_for("admin.prompt_replay", run_id=run.id), 303)
    return redirect(url_for("admin.prompt_replay", run_id=propose(run.prompt, current_user.username)), 303)


@bp.route(f"/settings/prompt/<int(max={MAX_ID}):run_id>/publish", methods=["POST"])
def prompt_publish(run_id: int):
    if not replay.ReplayForm().validate_on_submit():
        abort(400, "Форма устарела: обновите страницу.")
    run = _run_or_404(run_id)
    risk = replay.refusal_risk(run)
    if risk and request.form.get("confirm") != "yes":
        flash("Публикация не выполнена: отметьте, что вы понимаете последствия. " + risk, "error")
        return redirect(url_for("admin.prompt_replay", run_id=run.id), 303)
    settings = load_from_db().to_dict()
    previous = settings["system_prompt"]
    row = save_bot_settings({**settings, "system_prompt": run.prompt}, current_user.username)
    db.session.add(AuditLog(username=current_user.username, action="prompt_publish", at=utcnow(),
                            details={"replay": run.id, "settings_version": row.id, "confirmed": risk,
                                     "previous_chars": len(previous), "chars": len(run.prompt)}))
    db.session.commit()
    ttl = current_app.config["SHARED_STATE_TTL"]
    flash(f"Новая системная инструкция опубликована (версия настроек №{row.id}). Следующие звонки получат её "
          f"на всех серверах в течение {str(ttl).replace('.', ',')} с.", "success")
    return redirect(url_for("admin.settings"), 303)
