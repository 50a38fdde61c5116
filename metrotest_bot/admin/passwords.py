"""The password rule for admin accounts (OWASP ASVS 2.1): long, and not a common one.

At least MIN_LENGTH characters (runs of spaces count as one), at most
MAX_LENGTH, any characters; not in common_passwords.txt (the passwords an
attacker tries first), not the user name, not one or two characters
repeated. `flask create-admin` and the panel's password change both use it.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

MIN_LENGTH = 12
MAX_LENGTH = 128
COMMON_FILE = Path(__file__).with_name("common_passwords.txt")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def policy_error(password: str, username: str | None = None) -> str | None:
    """Why the password is refused, in Russian for the admin; None when it is acceptable."""
    length = len(re.sub(r"\s+", " ", password))
    if length < MIN_LENGTH:
        return f"Пароль слишком короткий: нужно не меньше {MIN_LENGTH} символов (сейчас {length})."
    if len(password) > MAX_LENGTH:
        return f"Пароль слишком длинный: не больше {MAX_LENGTH} символов."
    lowered = password.strip().lower()
    if lowered in common_passwords():
        return "Этот пароль слишком распространён: его подбирают первым. Придумайте другой."
    if username and lowered == username.strip().lower():
        return "Пароль не должен совпадать с именем пользователя."
    if len(set(lowered)) <= 2:
        return "Пароль из одного-двух повторяющихся символов легко подобрать. Придумайте другой."
    return None
