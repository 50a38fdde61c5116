"""Sign-in and sign-out (flask-login); users are AdminUser rows with hashed passwords.

A signed-in cookie opens the panel only while its server-side session is open
(sessions.py); sign-in is throttled per user name and address (throttle.py).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from ..extensions import db, login_manager
from ..models import AdminUser
from ..timeutil import utcnow
from . import bp, sessions, throttle
from .forms import LoginForm

login_manager.login_view = "admin.login"
login_manager.login_message = "Войдите, чтобы открыть эту страницу."
login_manager.login_message_category = "info"
login_manager.needs_refresh_message = "Войдите ещё раз, чтобы продолжить."
login_manager.needs_refresh_message_category = "info"

BAD_CREDENTIALS = "Неверное имя пользователя или пароль."
_dummy_hash = None


@login_manager.user_loader
def load_user(user_id: str):
    try:
        uid = int(user_id)
    except (TypeError, ValueError):
        return None
    # The signed cookie alone is not enough: its session must still be open on the server.
    if not sessions.is_open(uid):
        return None
    return db.session.get(AdminUser, uid)


def _same_time_for_unknown_user(password: str) -> None:
    """Check a dummy hash, so an unknown name takes as long as a wrong password."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = AdminUser(password_hash=generate_password_hash("not-a-password"))
    _dummy_hash.check_password(password)


def _safe_next(target: str | None) -> str:
    """Only a path inside the panel: no open redirects to other sites."""
    if target:
        parts = urlsplit(target)
        home = url_for("admin.calls")
        if not parts.scheme and not parts.netloc and target.startswith(home):
            return target
    return url_for("admin.calls")


def _throttled(left) -> tuple[str, int]:
    return (f"Слишком много неудачных попыток входа. Подождите {throttle.wait_text(left)} "
            f"и попробуйте снова."), 429


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    error, status, retry_after = None, 200, None
    if form.validate_on_submit():
        username = form.username.data.strip()
        ip = request.remote_addr or "unknown"
        left = throttle.wait_left(username, ip)
        if left:
            (error, status), retry_after = _throttled(left), left
        else:
            attempt = throttle.begin(username, ip)
            user = db.session.scalar(select(AdminUser).where(AdminUser.username == username))
            if user is None:
                _same_time_for_unknown_user(form.password.data)
            if user is not None and user.check_password(form.password.data):
                throttle.succeeded(attempt)
                session.clear()  # nothing of an earlier session carries over into this one
                session.permanent = True  # the cookie expires after PERMANENT_SESSION_LIFETIME
                sessions.start(user.id)
                login_user(user)
                user.last_login_at = utcnow()
                db.session.commit()
                return redirect(_safe_next(request.args.get("next")))
            left = throttle.wait_left(username, ip)
            (error, status), retry_after = (_throttled(left), left) if left else ((BAD_CREDENTIALS, 401), None)
    elif request.method == "POST":
        status = 400
    response = make_response(render_template("admin/login.html", form=form, error=error), status)
    if retry_after:
        response.headers["Retry-After"] = str(max(1, round(retry_after.total_seconds())))
    return response


@bp.route("/logout", methods=["POST"])
def logout():
    # CSRFProtect has already checked the token: a cross-site page cannot sign anyone out.
    sessions.end_current()  # on the server: a copy of the cookie opens nothing any more
    db.session.commit()
    logout_user()
    session.clear()
    flash("Вы вышли из панели.", "info")
    return redirect(url_for("admin.login"))
