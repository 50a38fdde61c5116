"""Throttling of sign-in failures, by user name and by address (LoginAttempt rows).

A user name is locked after LOGIN_MAX_FAILURES failures within
LOGIN_WINDOW_MINUTES since its last successful sign-in; an address after
LOGIN_MAX_FAILURES_PER_IP. While locked, the password is not even checked.
The rows live in SQL, so every worker and machine sees the same counts.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from ..extensions import db
from ..models import LoginAttempt
from ..timeutil import as_utc, utcnow

DEFAULTS = {"LOGIN_MAX_FAILURES": 5, "LOGIN_MAX_FAILURES_PER_IP": 20, "LOGIN_WINDOW_MINUTES": 15}


def _setting(name: str) -> int:
    return int(current_app.config.get(name, DEFAULTS[name]))


def _window() -> timedelta:
    return timedelta(minutes=_setting("LOGIN_WINDOW_MINUTES"))


def _lock_left(column, value: str, limit: int) -> timedelta | None:
    now = utcnow()
    start = now - _window()
    last_ok = db.session.scalar(select(func.max(LoginAttempt.at)).where(column == value, LoginAttempt.success.is_(True)))
    if last_ok is not None:
        start = max(start, as_utc(last_ok))
    failures = db.session.scalars(
        select(LoginAttempt.at).where(column == value, LoginAttempt.success.is_(False), LoginAttempt.at > start)
        .order_by(LoginAttempt.at.desc()).limit(limit)).all()
    if len(failures) < limit:
        return None
    # Unlocks when the oldest of the last `limit` failures leaves the window.
    left = as_utc(failures[-1]) + _window() - now
    return left if left > timedelta(0) else None


def lock_left(username: str, ip: str) -> timedelta | None:
    """How long sign-in stays closed for this user name or address; None when open."""
    locks = [_lock_left(LoginAttempt.username, username[:64], _setting("LOGIN_MAX_FAILURES")),
             _lock_left(LoginAttempt.ip, ip[:64], _setting("LOGIN_MAX_FAILURES_PER_IP"))]
    locks = [lock for lock in locks if lock]
    return max(locks) if locks else None


def record(username: str, ip: str, success: bool) -> None:
    db.session.add(LoginAttempt(username=username[:64], ip=ip[:64], success=success, at=utcnow()))
    if success:  # old rows serve no one; keep the table small
        db.session.execute(delete(LoginAttempt).where(LoginAttempt.at < utcnow() - timedelta(days=2)))
    db.session.commit()


def minutes(left: timedelta) -> int:
    return max(1, -(-int(left.total_seconds()) // 60))
