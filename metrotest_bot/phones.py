"""Phone numbers: one canonical form (E.164, +7XXXXXXXXXX) and the forms CRMs store.

Callers arrive as "+79123456789", "79123456789", "89123456789", SIP URIs and
the like; CRM cards hold whatever a manager typed: "8 (912) 345-67-89",
"+7 912 345 67 89". Lookups (crm) and the call search (search) use the
canonical form; CRM searches use the stored forms a card is likely to have.
Which digits make a real number is Google's libphonenumber's knowledge
(`phonenumbers`), kept up to date with the numbering plans: a national number
is read as Russian (trunk prefix 8, international prefix 8~10).
"""
from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

REGION = "RU"  # how a number without a country code is read
_EXTENSION = re.compile(r"(доб|ext|вн|#|,|;).*$", re.IGNORECASE)
_SIP = re.compile(r"^(?:sips?|tel):([^@;]+)", re.IGNORECASE)


def _parse(text: str, international: bool):
    """The number if libphonenumber knows it as a number in use; an international number
    of another plan may be merely possible (its ranges may be newer than the library)."""
    try:
        number = phonenumbers.parse(text, REGION)
    except NumberParseException:
        return None
    if phonenumbers.is_valid_number(number):
        return number
    if (international and number.country_code != 7
            and phonenumbers.is_possible_number_with_reason(number) == ValidationResult.IS_POSSIBLE):
        return number
    return None


def normalize_phone(raw: str | None) -> str | None:
    """The number in E.164 (+<country><number>), Russian numbers as +7XXXXXXXXXX.

    None for what cannot be a caller's full number: empty, "anonymous",
    short internal extensions, local numbers without a city code, numbers
    outside the numbering plan.
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
    if not plus and digits.startswith("00") and len(digits) > 10:
        plus, digits = True, digits[2:]  # 00: the international prefix of most of the world
    number = _parse("+" + digits if plus else digits, international=plus)
    if number is None and not plus:
        # A caller id from abroad often comes as its digits without the plus ("442079460958").
        number = _parse("+" + digits, international=True)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164) if number is not None else None


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
