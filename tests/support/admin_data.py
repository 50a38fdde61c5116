"""Admin users, calls and signed-in clients for the admin-panel tests.

Calls are written through the ORM, as the call WebSocket writes them, so the
transcript index is filled by its flush hook, not by the tests.
"""
from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone

import pytest

from metrotest_bot.extensions import db
from metrotest_bot.models import AdminUser, Call, KBVersion, Turn

ADMIN = "admin"
PASSWORD = "верный-пароль-1"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def make_admin(app, username: str = ADMIN, password: str = PASSWORD) -> None:
    with app.app_context():
        user = AdminUser(username=username)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()


def make_call(app, started_at: datetime | None = None, turns=(), **fields) -> int:
    """A finished call with turns: (role, text) pairs or dicts of Turn columns. Returns its id."""
    started_at = started_at or datetime.now(timezone.utc) - timedelta(minutes=5)
    with app.app_context():
        call = Call(started_at=started_at, caller=fields.pop("caller", "+79120000001"),
                    outcome=fields.pop("outcome", "completed"), **fields)
        db.session.add(call)
        db.session.flush()
        for seq, spec in enumerate(turns):
            spec = dict(role=spec[0], text=spec[1]) if isinstance(spec, tuple) else dict(spec)
            spec.setdefault("kind", "speech" if spec["role"] == "caller" else "answer")
            spec.setdefault("created_at", started_at + timedelta(seconds=5 * seq + 1))
            db.session.add(Turn(call_id=call.id, seq=seq, **spec))
            call.n_turns = (call.n_turns or 0) + 1
        if call.duration_s is None and turns:
            call.ended_at = started_at + timedelta(seconds=5 * len(turns) + 2)
            call.duration_s = 5 * len(turns) + 2.0
        db.session.commit()
        return call.id


def csrf_token(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def upload_kb(client, data: bytes, filename: str, token: str | None = None):
    """A KB file sent through the panel's upload form; the response."""
    token = token or csrf_token(client.get("/logs-ui/kb").get_data(as_text=True))
    return client.post("/logs-ui/kb/upload", data={"csrf_token": token, "file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def upload_id(response) -> int:
    """The KB version an accepted upload created (its redirect names it)."""
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    return int(re.search(r"upload=(\d+)", response.headers["Location"]).group(1))


def kb_version(app, vid: int) -> KBVersion:
    """A KB version row as it is now, detached from the session."""
    with app.app_context():
        row = db.session.get(KBVersion, vid)
        db.session.expunge(row)
        return row


def sign_in(client, username: str = ADMIN, password: str = PASSWORD, **environ):
    token = csrf_token(client.get("/logs-ui/login").get_data(as_text=True))
    return client.post("/logs-ui/login", data={"username": username, "password": password, "csrf_token": token},
                       environ_base=environ)


@pytest.fixture
def admin_client(app):
    """A test client signed in as ADMIN."""
    make_admin(app)
    client = app.test_client()
    response = sign_in(client)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client
