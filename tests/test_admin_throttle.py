"""Sign-in throttling slows an attacker without locking the real admin out (issue #13):
a growing wait per (user name, address) and per address, never a per-user lockout."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from metrotest_bot.extensions import db
from metrotest_bot.models import LoginAttempt
from metrotest_bot.timeutil import as_utc

from .support.admin_data import ADMIN, PASSWORD, make_admin, sign_in
from .support.apps import dispose, make_app

ATTACKER = "10.6.6.6"
ADMIN_ADDR = "10.0.0.2"


@pytest.fixture
def slow_app(tmp_path, database_url):
    """Waits long enough that the test's own speed does not matter: 60 s doubling to 900 s."""
    app = make_app(tmp_path / "d", database_url, LOGIN_BACKOFF_SECONDS=60, LOGIN_BACKOFF_MAX_SECONDS=900)
    make_admin(app)
    yield app
    dispose(app)


def attempt(app, password, username=ADMIN, addr=ATTACKER):
    return sign_in(app.test_client(), username, password, REMOTE_ADDR=addr)


def rewind(app, seconds: float):
    """Move every recorded attempt back in time, as if the clock had run on."""
    with app.app_context():  # row by row: SQLite cannot subtract an interval from a stored time
        for row in db.session.scalars(select(LoginAttempt)):
            row.at = as_utc(row.at) - timedelta(seconds=seconds)
        db.session.commit()


def n_attempts(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(LoginAttempt.id)))


def test_an_attacker_hammering_does_not_keep_the_admin_out(app):
    make_admin(app)
    statuses = [attempt(app, f"guess-{i}").status_code for i in range(30)]
    assert statuses[:3] == [401, 401, 401]
    assert 429 in statuses
    # The real admin, from the office, signs in at once.
    assert attempt(app, PASSWORD, addr=ADMIN_ADDR).status_code == 302
    # Also with a typo first: the attacker's failures are not counted against this address.
    assert attempt(app, "опечатка", addr="10.0.0.3").status_code == 401
    assert attempt(app, PASSWORD, addr="10.0.0.3").status_code == 302


def test_the_wait_doubles_then_stays_at_the_maximum_and_the_password_is_not_checked(slow_app):
    for _ in range(3):
        assert attempt(slow_app, "неверно").status_code == 401
    waits = []
    for _ in range(6):
        response = attempt(slow_app, "неверно")
        assert response.status_code == 429
        assert "Слишком много неудачных попыток входа. Подождите" in response.get_data(as_text=True)
        waits.append(int(response.headers["Retry-After"]))
        # While the wait runs, even the right password is refused and not even tried.
        before = n_attempts(slow_app)
        assert attempt(slow_app, PASSWORD).status_code == 429
        assert n_attempts(slow_app) == before
        rewind(slow_app, waits[-1] + 1)
    assert waits == [60, 120, 240, 480, 900, 900]
    # When the wait is over the right password works, and resets the count.
    assert attempt(slow_app, PASSWORD).status_code == 302
    assert attempt(slow_app, "неверно").status_code == 401


def test_unknown_user_names_are_throttled_alike(slow_app):
    for name in (ADMIN, "nobody"):
        statuses = [attempt(slow_app, "x" * 12, username=name, addr=f"10.2.2.{len(name)}").status_code
                    for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]


def test_an_address_guessing_across_user_names_slows_down(tmp_path, database_url):
    app = make_app(tmp_path / "d", database_url, LOGIN_FREE_FAILURES_PER_IP=4, LOGIN_BACKOFF_SECONDS=60)
    try:
        make_admin(app)
        statuses = [attempt(app, "x", username=f"user{i}").status_code for i in range(6)]
        assert statuses == [401, 401, 401, 401, 429, 429]
        assert attempt(app, PASSWORD).status_code == 429  # this address, any name
        assert attempt(app, PASSWORD, addr=ADMIN_ADDR).status_code == 302  # another address: at once
    finally:
        dispose(app)


def test_failures_are_forgotten_after_the_window(slow_app):
    for _ in range(4):
        attempt(slow_app, "неверно")
    assert attempt(slow_app, PASSWORD).status_code == 429
    rewind(slow_app, 24 * 3600 + 60)
    assert attempt(slow_app, "неверно").status_code == 401  # counted afresh
