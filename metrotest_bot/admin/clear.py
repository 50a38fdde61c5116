"""Clearing the call log: a page that asks for confirmation, then POST with confirm=yes."""
from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import and_, delete, func, select, true, update

from ..extensions import db
from ..models import OUTCOME_IN_PROGRESS, AnswerReview, AuditLog, Call, Turn
from ..search import get_index
from ..timeutil import utcnow
from . import bp
from .forms import ClearForm

ACTION = "clear_calls"
# A call still in progress may be live: its turns keep coming, so it is kept.
LIVE_FOR = timedelta(hours=3)


def _live_call_ids() -> list[int]:
    return list(db.session.scalars(select(Call.id).where(
        and_(Call.outcome == OUTCOME_IN_PROGRESS, Call.started_at >= utcnow() - LIVE_FOR))))


def clear_log(username: str | None) -> dict:
    """Delete every call but live ones, their turns and their index entries; audit it."""
    keep = _live_call_ids()
    doomed = Call.id.not_in(keep) if keep else true()
    doomed_turns = Turn.call_id.not_in(keep) if keep else true()
    n_calls = db.session.scalar(select(func.count(Call.id)).where(doomed))
    n_turns = db.session.scalar(select(func.count(Turn.id)).where(doomed_turns))
    get_index().clear(keep=keep)
    # Answer marks (and the test questions they made) outlive the log: they keep their own copy.
    db.session.execute(update(AnswerReview).where(AnswerReview.turn_id.in_(select(Turn.id).where(doomed_turns)))
                       .values(turn_id=None))
    db.session.execute(delete(Turn).where(doomed_turns))
    db.session.execute(delete(Call).where(doomed))
    details = {"calls": n_calls, "turns": n_turns, "kept_live_calls": len(keep)}
    db.session.add(AuditLog(username=username, action=ACTION, details=details, at=utcnow()))
    db.session.commit()
    return details


@bp.route("/clear", methods=["GET", "POST"])
def clear():
    form = ClearForm()
    if form.validate_on_submit():
        done = clear_log(current_user.username)
        msg = f"Журнал очищен: удалено звонков — {done['calls']}, реплик — {done['turns']}."
        if done["kept_live_calls"]:
            msg += f" Идущие сейчас звонки ({done['kept_live_calls']}) сохранены."
        flash(msg, "success")
        return redirect(url_for("admin.calls"))
    # What the button deletes: calls in progress are kept, so they are not counted in.
    n_live = len(_live_call_ids())
    n_calls = db.session.scalar(select(func.count(Call.id))) - n_live
    history = db.session.scalars(
        select(AuditLog).where(AuditLog.action == ACTION).order_by(AuditLog.at.desc()).limit(10)).all()
    status = 400 if form.is_submitted() else 200
    return render_template("admin/clear.html", form=form, n_calls=n_calls, n_live=n_live, history=history), status
