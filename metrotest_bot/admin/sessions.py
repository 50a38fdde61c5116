"""Sign-in sessions kept on the server (AdminSession rows), so that they can end.

Flask's session cookie is signed but lives on the client: on its own, a copy
of it stays valid until it expires, whatever the server does. So the cookie
also carries a random token whose hash is a row here, and flask-login's user
loader accepts the cookie only while that row is open:

- sign-out ends the row: a cookie copied before it opens nothing;
- a password change ends every row of the user (`end_all`);
- a row ends after ADMIN_SESSION_MINUTES without a request (idle), and
  ADMIN_SESSION_MAX_HOURS after sign-in whatever the activity (absolute).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, session
from sqlalchemy import delete, or_, update

from ..extensions import db
from ..models import AdminSession
from ..timeutil import as_utc, utcnow

SESSION_KEY = "_admin_session"
# last_seen_at is written at most this often: not a database write per page view.
TOUCH_EVERY = timedelta(seconds=60)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def idle_limit() -> timedelta:
    return timedelta(minutes=int(current_app.config["ADMIN_SESSION_MINUTES"]))


def absolute_limit() -> timedelta:
    return timedelta(hours=float(current_app.config["ADMIN_SESSION_MAX_HOURS"]))


def start(user_id: int) -> None:
    """A new server-side session for a user who has just signed in; its token goes into the cookie."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(AdminSession(token_hash=_hash(token), user_id=user_id, created_at=now, last_seen_at=now))
    # Rows that can open nothing any more serve no one: keep the table small.
    db.session.execute(delete(AdminSession).where(or_(AdminSession.ended_at.is_not(None),
                                                      AdminSession.created_at < now - absolute_limit()))
                       .execution_options(synchronize_session=False))
    session[SESSION_KEY] = token


def is_open(user_id: int) -> bool:
    """Whether the cookie of this request belongs to an open session of this user."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        return False
    row = db.session.get(AdminSession, _hash(token))
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return False
    now = utcnow()
    if now - as_utc(row.created_at) > absolute_limit() or now - as_utc(row.last_seen_at) > idle_limit():
        return False
    if now - as_utc(row.last_seen_at) > TOUCH_EVERY:
        row.last_seen_at = now
        db.session.commit()
    return True


def end_current() -> None:
    token = session.pop(SESSION_KEY, None)
    if isinstance(token, str) and token:
        db.session.execute(update(AdminSession).where(AdminSession.token_hash == _hash(token))
                           .values(ended_at=utcnow()))


def end_all(user_id: int) -> int:
    """End every open session of a user (after a password change). Returns how many were open."""
    result = db.session.execute(update(AdminSession).where(AdminSession.user_id == user_id,
                                                           AdminSession.ended_at.is_(None))
                                .values(ended_at=utcnow()))
    return result.rowcount or 0
