"""Sign-in, CSRF, expiring sessions, sign-out, `flask create-admin` (Flask test client).

Throttling: test_admin_throttle.py; server-side sessions: test_admin_sessions.py;
the password rule: test_admin_passwords.py."""
import time

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import select

from metrotest_bot.extensions import db
from metrotest_bot.models import AdminUser

from .support.admin_data import ADMIN, PASSWORD, csrf_token, make_admin, make_call, sign_in

PROTECTED = ["/logs-ui/", "/logs-ui/calls/1", "/logs-ui/export.csv", "/logs-ui/clear"]


@pytest.mark.parametrize("path", PROTECTED)
def test_anonymous_is_sent_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/logs-ui/login?next=")


def test_anonymous_post_changes_nothing(app, client):
    make_call(app, turns=[("caller", "Алло")])
    response = client.post("/logs-ui/clear", data={"confirm": "yes"})
    assert response.status_code in (302, 400)
    from metrotest_bot.models import Call
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Call.id))) == 1


def test_sign_in_form_and_success(app, client):
    make_admin(app)
    page = client.get("/logs-ui/login").get_data(as_text=True)
    for name in ("username", "password", "csrf_token"):
        assert f'name="{name}"' in page
    assert "Войти" in page

    response = sign_in(client)
    assert response.status_code == 302 and response.headers["Location"] == "/logs-ui/"
    assert "Expires=" in response.headers["Set-Cookie"]  # a permanent session: it expires
    assert client.get("/logs-ui/").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(AdminUser.last_login_at)) is not None


def test_sign_in_goes_back_to_the_page_asked_for_but_never_off_site(app, client):
    make_admin(app)
    token = csrf_token(client.get("/logs-ui/login").get_data(as_text=True))
    data = {"username": ADMIN, "password": PASSWORD, "csrf_token": token}
    response = client.post("/logs-ui/login?next=/logs-ui/clear", data=data)
    assert response.headers["Location"] == "/logs-ui/clear"

    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        other = app.test_client()
        token = csrf_token(other.get("/logs-ui/login").get_data(as_text=True))
        response = other.post(f"/logs-ui/login?next={target}", data={**data, "csrf_token": token})
        assert response.headers["Location"] == "/logs-ui/"


def test_sign_in_without_csrf_token_is_refused(app, client):
    make_admin(app)
    response = client.post("/logs-ui/login", data={"username": ADMIN, "password": PASSWORD})
    assert response.status_code == 400
    assert "Форма устарела" in response.get_data(as_text=True)
    assert client.get("/logs-ui/").status_code == 302


def test_wrong_password_and_unknown_user_get_the_same_answer(app, client):
    make_admin(app)
    wrong = sign_in(client, password="не-тот-пароль")
    unknown = sign_in(client, username="nobody")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Неверное имя пользователя или пароль." in response.get_data(as_text=True)
    assert client.get("/logs-ui/").status_code == 302


def test_sign_out_needs_post_with_csrf(admin_client):
    assert admin_client.get("/logs-ui/logout").status_code == 405
    assert admin_client.post("/logs-ui/logout").status_code == 400
    assert admin_client.get("/logs-ui/").status_code == 200
    token = csrf_token(admin_client.get("/logs-ui/").get_data(as_text=True))
    response = admin_client.post("/logs-ui/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/logs-ui/login"
    assert admin_client.get("/logs-ui/").status_code == 302


def test_session_expires(app, admin_client, monkeypatch):
    """A session cookie signed longer ago than PERMANENT_SESSION_LIFETIME is not accepted."""
    cookie = admin_client.get_cookie("session")
    session_data = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    lifetime = app.permanent_session_lifetime.total_seconds()
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time() - lifetime - 60))
    old = app.session_interface.get_signing_serializer(app).dumps(session_data)
    monkeypatch.undo()
    admin_client.set_cookie("session", old, domain=cookie.domain, path="/")
    assert admin_client.get("/logs-ui/").status_code == 302
    # The same session signed now is accepted: it was the age that counted.
    admin_client.set_cookie("session", app.session_interface.get_signing_serializer(app).dumps(session_data),
                            domain=cookie.domain, path="/")
    assert admin_client.get("/logs-ui/").status_code == 200


def test_create_admin_command(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-admin", "olga", "--password", "длинный-пароль"])
    assert result.exit_code == 0 and "создан" in result.output
    # Prompted twice when --password is omitted; a mismatch asks again.
    result = runner.invoke(args=["create-admin", "ivan"], input="пароль-один-1\nдругой-пароль\nпароль-номер-два\nпароль-номер-два\n")
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["create-admin", "petr", "--password", "short"])
    assert result.exit_code != 0 and "слишком короткий" in result.output
    result = runner.invoke(args=["create-admin", "olga", "--password", "новый-пароль-1"])
    assert result.exit_code == 0 and "новый пароль" in result.output
    with app.app_context():
        users = {u.username: u for u in db.session.scalars(select(AdminUser))}
        assert set(users) == {"olga", "ivan"}
        assert users["olga"].check_password("новый-пароль-1")
        assert users["ivan"].check_password("пароль-номер-два")
        assert users["ivan"].password_hash != "пароль-номер-два"  # hashed
    assert sign_in(app.test_client(), "ivan", "пароль-номер-два").status_code == 302
