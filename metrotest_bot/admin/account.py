"""The signed-in admin's own password (/logs-ui/password).

A change ends every other session of the user (ASVS 3.3.3): whoever knew or
copied the old credentials is out. The current browser gets a fresh session.
Wrong current passwords count towards sign-in throttling, so a left-open
panel cannot be used to guess the password.
"""
from __future__ import annotations

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from ..extensions import db
from ..models import AuditLog
from ..timeutil import utcnow
from . import bp, sessions, throttle
from .forms import PasswordChangeForm
from .passwords import policy_error

ACTION = "password_change"


def _change(form: PasswordChangeForm) -> tuple[int, str | None]:
    """(HTTP status, a message for the form) after a valid submission; 302 when done."""
    user = current_user._get_current_object()
    ip = request.remote_addr or "unknown"
    left = throttle.wait_left(user.username, ip)
    if left:
        return 429, f"Слишком много неудачных попыток. Подождите {throttle.wait_text(left)} и попробуйте снова."
    attempt = throttle.begin(user.username, ip)
    if not user.check_password(form.current.data):
        form.current.errors.append("Текущий пароль неверен.")
        return 400, None
    throttle.succeeded(attempt)
    error = policy_error(form.new.data, user.username)
    if error is None and form.new.data == form.current.data:
        error = "Новый пароль совпадает с текущим."
    if error:
        form.new.errors.append(error)
        return 400, None
    user.set_password(form.new.data)
    ended = sessions.end_all(user.id)
    sessions.start(user.id)  # this browser stays signed in, on a new session
    db.session.add(AuditLog(username=user.username, action=ACTION, details={"sessions_ended": ended}, at=utcnow()))
    db.session.commit()
    return 302, None


@bp.route("/password", methods=["GET", "POST"])
def password():
    form = PasswordChangeForm()
    status, error = 200, None
    if form.validate_on_submit():
        status, error = _change(form)
        if status == 302:
            flash("Пароль изменён. Все другие сеансы этого пользователя завершены.", "success")
            return redirect(url_for("admin.calls"))
    elif form.is_submitted():
        status = 400
    return make_response(render_template("admin/password.html", form=form, error=error), status)
