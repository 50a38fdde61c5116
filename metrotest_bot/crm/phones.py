"""Phone numbers: one canonical form (+7XXXXXXXXXX) and the forms CRMs store.

Callers arrive as "+79123456789", "79123456789", "89123456789", SIP URIs and
the like; CRM cards hold whatever a manager typed: "8 (912) 345-67-89",
"+7 912 345 67 89". Lookups use the canonical form and search with the
stored forms the CRM is likely to have.
"""
from __future__ import annotations

import re

_EXTENSION = re.compile(r"(доб|ext|вн|#|,|;).*$", re.IGNORECASE)
_SIP = re.compile(r"^(?:sips?|tel):([^@;]+)", re.IGNORECASE)


def normalize_phone(raw: str | None) -> str | None:
    """The number as +<country><number>, Russian numbers as +7XXXXXXXXXX.

    None for what cannot be a caller's full number: empty, "anonymous",
    short internal extensions, local numbers without a city code.
    """
    if not raw:
        return None
    text = str(raw).strip()
    sip = _SIP.match(text)
    if sip:
        text = sip.group(1)
    text = _EXTENSION.sub("", text)
    plus = text.lstrip().startswith("+")
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    if not plus and digits.startswith("810") and len(digits) > 11:
        return "+" + digits[3:]  # 8-10: the Russian international prefix
    if not plus and digits.startswith("00") and len(digits) > 10:
        return "+" + digits[2:]
    if len(digits) == 11 and digits[0] in "78" and (plus is False or digits[0] == "7"):
        return "+7" + digits[1:]
    if len(digits) == 10 and not plus and digits[0] in "3489":
        return "+7" + digits  # national number without the trunk prefix
    if plus and 8 <= len(digits) <= 15:
        return "+" + digits
    if not plus and 11 <= len(digits) <= 15:
        return "+" + digits
    return None


def transfer_target(value: str | None) -> str | None:
    """A number to bridge a caller to: a phone in canonical form, or a SIP URI as given."""
    if not value:
        return None
    value = str(value).strip()
    if re.match(r"^sips?:[^\s@]+@[^\s]+$", value, re.IGNORECASE):
        return value
    return normalize_phone(value)


def is_russian(phone: str) -> bool:
    return phone.startswith("+7") and len(phone) == 12


def national(phone: str) -> str:
    """The ten digits after +7 (the whole number without + for others)."""
    return phone[2:] if is_russian(phone) else phone.lstrip("+")


def stored_forms(phone: str, limit: int = 20) -> list[str]:
    """Forms of a canonical number a CRM card is likely to hold, canonical first."""
    if not is_russian(phone):
        digits = phone.lstrip("+")
        return [phone, digits][:limit]
    n = national(phone)
    code, a, b, c = n[:3], n[3:6], n[6:8], n[8:]
    forms = [
        phone, "7" + n, "8" + n, n,
        f"+7 ({code}) {a}-{b}-{c}", f"8 ({code}) {a}-{b}-{c}",
        f"+7 {code} {a}-{b}-{c}", f"8 {code} {a}-{b}-{c}",
        f"+7 {code} {a} {b} {c}", f"8 {code} {a} {b} {c}",
        f"+7({code}){a}-{b}-{c}", f"8({code}){a}-{b}-{c}",
        f"+7-{code}-{a}-{b}-{c}", f"8-{code}-{a}-{b}-{c}",
    ]
    return forms[:limit]


def same_number(a: str | None, b: str | None) -> bool:
    na, nb = normalize_phone(a), normalize_phone(b)
    return bool(na) and na == nb


def masked(phone: str | None) -> str:
    """For logs: enough to tell calls apart, not the whole number."""
    if not phone:
        return "-"
    return phone[:5] + "***" + phone[-2:] if len(phone) > 7 else "***"
