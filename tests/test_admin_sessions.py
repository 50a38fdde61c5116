"""Sessions that end (issue #13, ASVS 3.3): sign-out and a password change end them on
the server, a session has an absolute lifetime besides the idle one, and the cookie's
Secure and SameSite flags come from the environment."""
from datetime import timedelta

import urllib.request

import pytest
from sqlalchemy import func, select, update

import config
from metrotest_bot import create_app
from metrotest_bot.extensions import db
from metrotest_bot.models import AdminSession, AuditLog
from metrotest_bot.timeutil import as_utc, utcnow

from .support.admin_data import ADMIN, PASSWORD, csrf_token, make_admin, sign_in
from .support.apps import dispose

NEW_PASSWORD = "зелёный трамвай 42"


def copy_of(app, client):
    """Another client holding a copy of `client`'s session cookie (as a thief would)."""
    cookie = client.get_cookie("session")
    other = app.test_client()
    other.set_cookie("session", cookie.value, domain=cookie.domain, path="/")
    return other


def opens_panel(client) -> bool:
    response = client.get("/logs-ui/")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def sign_out(client):
    token = csrf_token(client.get("/logs-ui/").get_data(as_text=True))
    assert client.post("/logs-ui/logout", data={"csrf_token": token}).status_code == 302


def test_a_cookie_copied_before_sign_out_opens_nothing_after_it(app, admin_client):
    stolen = copy_of(app, admin_client)
    assert opens_panel(stolen)
    sign_out(admin_client)
    assert not opens_panel(admin_client)
    assert not opens_panel(stolen)
    with app.app_context():
        assert db.session.scalar(select(AdminSession.ended_at)) is not None


def test_sign_out_ends_only_its_own_session(app, admin_client):
    other_browser = app.test_client()
    assert sign_in(other_browser).status_code == 302
    sign_out(admin_client)
    assert opens_panel(other_browser)


def test_create_admin_password_reset_ends_earlier_sessions(app, admin_client):
    stolen = copy_of(app, admin_client)
    result = app.test_cli_runner().invoke(args=["create-admin", ADMIN, "--password", NEW_PASSWORD])
    assert result.exit_code == 0, result.output
    assert "сеансы этого пользователя завершены: 1" in result.output
    assert not opens_panel(admin_client) and not opens_panel(stolen)
    assert sign_in(app.test_client(), password=NEW_PASSWORD).status_code == 302


def change_password(client, current, new, repeat=None):
    token = csrf_token(client.get("/logs-ui/password").get_data(as_text=True))
    return client.post("/logs-ui/password", data={"csrf_token": token, "current": current, "new": new,
                                                  "repeat": new if repeat is None else repeat})


def test_password_change_in_the_panel_ends_the_other_sessions(app, admin_client):
    other_browser = app.test_client()
    assert sign_in(other_browser).status_code == 302
    stolen = copy_of(app, admin_client)

    response = change_password(admin_client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302, response.get_data(as_text=True)
    page = admin_client.get("/logs-ui/").get_data(as_text=True)
    assert "Пароль изменён" in page  # this browser goes on, on a new session
    assert not opens_panel(other_browser) and not opens_panel(stolen)
    assert sign_in(app.test_client()).status_code == 401  # the old password is gone
    assert sign_in(app.test_client(), password=NEW_PASSWORD).status_code == 302
    with app.app_context():
        audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "password_change"))
        assert audit.username == ADMIN and audit.details == {"sessions_ended": 2}


@pytest.mark.parametrize("current, new, repeat, message", [
    ("не-тот-пароль-совсем", NEW_PASSWORD, None, "Текущий пароль неверен."),
    (PASSWORD, "12345678", None, "Пароль слишком короткий"),
    (PASSWORD, "qwerty123456", None, "слишком распространён"),
    (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "Пароли не совпадают."),
    (PASSWORD, PASSWORD, None, "совпадает с текущим"),
])
def test_password_change_refusals_keep_everything(app, admin_client, current, new, repeat, message):
    other_browser = app.test_client()
    assert sign_in(other_browser).status_code == 302
    response = change_password(admin_client, current, new, repeat)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert opens_panel(admin_client) and opens_panel(other_browser)
    assert sign_in(app.test_client()).status_code == 302


def _age_sessions(app, **ago):
    with app.app_context():
        values = {column: utcnow() - delta for column, delta in ago.items()}
        db.session.execute(update(AdminSession).values(**values))
        db.session.commit()


def test_absolute_lifetime_ends_even_a_busy_session(app, admin_client):
    assert app.config["ADMIN_SESSION_MAX_HOURS"] == 12
    # Signed in 11 h 50 min ago and used all along: still open.
    _age_sessions(app, created_at=timedelta(hours=11, minutes=50), last_seen_at=timedelta(minutes=1))
    assert opens_panel(admin_client)
    # 12 h 10 min: closed, however recent the last request.
    _age_sessions(app, created_at=timedelta(hours=12, minutes=10), last_seen_at=timedelta(seconds=5))
    assert not opens_panel(admin_client)
    assert sign_in(admin_client).status_code == 302 and opens_panel(admin_client)


def test_idle_expiry_on_the_server_and_activity_keeps_a_session(app, admin_client):
    idle = timedelta(minutes=app.config["ADMIN_SESSION_MINUTES"])
    _age_sessions(app, last_seen_at=idle - timedelta(minutes=5))
    assert opens_panel(admin_client)
    with app.app_context():  # the request moved last_seen_at forward
        seen = as_utc(db.session.scalar(select(AdminSession.last_seen_at)))
        assert utcnow() - seen < timedelta(seconds=30)
    _age_sessions(app, last_seen_at=idle + timedelta(minutes=1))
    assert not opens_panel(admin_client)


def test_a_session_row_lost_or_forged_opens_nothing(app, admin_client):
    with app.app_context():
        db.session.execute(AdminSession.__table__.delete())
        db.session.commit()
    assert not opens_panel(admin_client)
    with admin_client.session_transaction() as sess:  # a signed cookie without a server session
        assert "_user_id" in sess
        sess["_admin_session"] = "made-up"
    assert not opens_panel(admin_client)


def test_old_session_rows_are_pruned_at_sign_in(app, admin_client):
    sign_out(admin_client)
    assert sign_in(admin_client).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AdminSession)) == 1


def test_cookie_flags_come_from_the_environment(tmp_path, database_url, monkeypatch):
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "true")
    monkeypatch.setenv("SESSION_COOKIE_SAMESITE", "strict")
    app = create_app(config.TestConfig(DATA_DIR=tmp_path / "d", SQLALCHEMY_DATABASE_URI=database_url))
    try:
        with app.app_context():
            db.create_all()
        make_admin(app)
        client = app.test_client()
        client.environ_base["wsgi.url_scheme"] = "https"  # Secure cookies travel over HTTPS only
        response = sign_in(client)
        assert response.status_code == 302
        cookie = response.headers["Set-Cookie"]
        assert "; Secure" in cookie and "SameSite=Strict" in cookie and "HttpOnly" in cookie
        assert client.get("/logs-ui/").status_code == 200
    finally:
        dispose(app)
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "perhaps")
    with pytest.raises(ValueError, match="SESSION_COOKIE_SECURE"):
        config.TestConfig(DATA_DIR=tmp_path / "e")
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "false")
    monkeypatch.setenv("SESSION_COOKIE_SAMESITE", "None")  # browsers drop it without Secure
    with pytest.raises(ValueError, match="needs SESSION_COOKIE_SECURE=true"):
        config.TestConfig(DATA_DIR=tmp_path / "e")


def test_default_cookie_is_not_secure_for_plain_http(app, client):
    make_admin(app)
    cookie = sign_in(client).headers["Set-Cookie"]
    assert "Secure" not in cookie and "SameSite=Lax" in cookie and "HttpOnly" in cookie


def test_secure_flag_reaches_the_served_app(live_server_factory):
    server = live_server_factory(SESSION_COOKIE_SECURE="1")
    with urllib.request.urlopen(server.url + "/logs-ui/login") as response:
        cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=") and "; Secure" in cookie
