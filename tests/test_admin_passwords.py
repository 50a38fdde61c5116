"""Admin passwords (issue #13, ASVS 2.1): at least 12 characters and not a common one,
for `flask create-admin` and the panel's password change; clear Russian refusals."""
import pytest
from sqlalchemy import select

from metrotest_bot.admin.passwords import MIN_LENGTH, common_passwords, policy_error
from metrotest_bot.extensions import db
from metrotest_bot.models import AdminUser

from .support.admin_data import sign_in


def create_admin(app, *args, input=None):
    return app.test_cli_runner().invoke(args=["create-admin", *args], input=input)


def users(app) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(AdminUser.username)))


@pytest.mark.parametrize("password, message", [
    ("12345678", "Пароль слишком короткий: нужно не меньше 12 символов (сейчас 8)."),
    ("короткий-11", "Пароль слишком короткий"),
    ("ab          cd", "Пароль слишком короткий"),  # runs of spaces count as one
    ("qwerty123456", "Этот пароль слишком распространён"),
    ("QWERTY123456", "Этот пароль слишком распространён"),  # case does not help
    ("йцукенгшщзхъ", "Этот пароль слишком распространён"),  # «qwerty» on a Russian keyboard
    ("1q2w3e4r5t6y", "Этот пароль слишком распространён"),
    ("aaaaaaaaaaaaaaaa", "повторяющихся символов"),
    ("абабабабабабаб", "повторяющихся символов"),
    ("olga.petrovna.k", "не должен совпадать с именем пользователя"),
    ("я" * 129, "Пароль слишком длинный"),
])
def test_create_admin_refuses_weak_passwords(app, password, message):
    result = create_admin(app, "olga.petrovna.k", "--password", password)
    assert result.exit_code != 0
    assert message in result.output
    assert users(app) == set()


def test_create_admin_refuses_a_weak_reset_and_keeps_the_old_password(app):
    assert create_admin(app, "olga", "--password", "длинный-пароль-1").exit_code == 0
    result = create_admin(app, "olga", "--password", "12345678")
    assert result.exit_code != 0 and "слишком короткий" in result.output
    assert sign_in(app.test_client(), "olga", "длинный-пароль-1").status_code == 302


def test_create_admin_accepts_a_long_uncommon_password_and_asks_twice(app):
    result = create_admin(app, "ivan", input="пароль-один-111\nдругой-пароль-22\nзелёный трамвай 42\nзелёный трамвай 42\n")
    assert result.exit_code == 0, result.output
    assert "создан" in result.output
    # Prompted again after a mismatch, and a weak one typed at the prompt is refused as well.
    result = create_admin(app, "petr", input="123456789012\n123456789012\n")
    assert result.exit_code != 0 and "слишком распространён" in result.output
    assert users(app) == {"ivan"}
    assert sign_in(app.test_client(), "ivan", "зелёный трамвай 42").status_code == 302


def test_the_shipped_list_holds_the_most_common_passwords():
    common = common_passwords()
    assert len(common) >= 1000
    for password in ("123456", "12345678", "password", "qwerty", "iloveyou", "1qaz2wsx3edc", "пароль"):
        assert password in common
    assert not any(p.startswith("#") for p in common)  # the file's comments are not passwords
    # Every 12+ character entry is refused by the list, not by length.
    long_ones = [p for p in common if len(p) >= MIN_LENGTH]
    assert len(long_ones) > 100
    assert all("распространён" in policy_error(p) for p in long_ones if len(set(p)) > 2 and len(p) <= 128)


def test_good_passphrases_pass():
    for password in ("зелёный трамвай 42", "Metrotest испытания 2026", "correct horse battery staple"):
        assert policy_error(password, "admin") is None
