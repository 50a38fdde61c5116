"""Sign-in throttling: a growing wait per (user name, address) and per address.

A per-user lockout would let anyone keep the real admin out by failing on
purpose. So failures are counted per (user name, address): an attacker's
address slows down, while the admin signing in from another address is not
affected. The first LOGIN_FREE_FAILURES failures cost nothing; each further
one doubles the wait before the next try (LOGIN_BACKOFF_SECONDS, 2×, 4×, …
up to LOGIN_BACKOFF_MAX_SECONDS). An address guessing across many user names
gets the same growing wait after LOGIN_FREE_FAILURES_PER_IP failures. A
successful sign-in resets the count of its pair and its address; failures
older than LOGIN_WINDOW_HOURS are forgotten. While a wait runs the password is
not even checked. The rows live in SQL, so every worker and machine sees the
same counts.
"""
from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from ..extensions import db
from ..models import LoginAttempt
from ..timeutil import as_utc, utcnow


def _config(name: str) -> float:
    return float(current_app.config[name])


def backoff(failures: int, free: int) -> timedelta:
    """The wait after `failures` failures in a row, the first `free` of which cost nothing."""
    extra = failures - free
    if extra <= 0:
        return timedelta(0)
    seconds = _config("LOGIN_BACKOFF_SECONDS") * 2 ** min(extra - 1, 40)
    return timedelta(seconds=min(seconds, _config("LOGIN_BACKOFF_MAX_SECONDS")))


def _wait_left(conds, free: int) -> timedelta:
    now = utcnow()
    start = now - timedelta(hours=_config("LOGIN_WINDOW_HOURS"))
    last_ok = db.session.scalar(select(func.max(LoginAttempt.at)).where(*conds, LoginAttempt.success.is_(True)))
    if last_ok is not None:
        start = max(start, as_utc(last_ok))
    n, last = db.session.execute(
        select(func.count(LoginAttempt.id), func.max(LoginAttempt.at))
        .where(*conds, LoginAttempt.success.is_(False), LoginAttempt.at > start)).one()
    if not n:
        return timedelta(0)
    return max(timedelta(0), as_utc(last) + backoff(n, free) - now)


def wait_left(username: str, ip: str) -> timedelta | None:
    """How long this user name from this address must wait before the next try; None when it may try now."""
    username, ip = username[:64], ip[:64]
    left = max(_wait_left([LoginAttempt.username == username, LoginAttempt.ip == ip],
                          int(_config("LOGIN_FREE_FAILURES"))),
               _wait_left([LoginAttempt.ip == ip], int(_config("LOGIN_FREE_FAILURES_PER_IP"))))
    return left if left > timedelta(0) else None


def begin(username: str, ip: str) -> LoginAttempt:
    """Record a try as failed before the password is checked, so that parallel tries
    see each other; `succeeded` turns it into a success."""
    attempt = LoginAttempt(username=username[:64], ip=ip[:64], success=False, at=utcnow())
    db.session.add(attempt)
    db.session.commit()
    return attempt


def succeeded(attempt: LoginAttempt) -> None:
    attempt.success = True
    # Old rows serve no one: keep the table small.
    window = timedelta(hours=_config("LOGIN_WINDOW_HOURS"))
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.at < utcnow() - max(window, timedelta(days=2)))
                       .execution_options(synchronize_session=False))
    db.session.commit()


def wait_text(left: timedelta) -> str:
    """«12 с» or «3 мин», rounded up."""
    seconds = max(1, -(-int(left.total_seconds() * 1000) // 1000))
    return f"{seconds} с" if seconds < 60 else f"{-(-seconds // 60)} мин"
