"""Caller context from the company's CRM (interface; the CRM helper implements adapters).

The voice session calls `lookup_caller(number)` at setup; it never takes longer
than CRM_TIMEOUT_MS and returns None when no CRM is configured, the caller is
unknown, or the CRM is slow or failing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class CallerInfo:
    name: str | None = None  # full name as the CRM has it
    first_name: str | None = None
    patronymic: str | None = None
    last_name: str | None = None
    company: str | None = None
    manager_name: str | None = None
    manager_phone: str | None = None  # transfer target for this client, when set
    notes: str | None = None  # never spoken aloud
    source: str | None = None  # bitrix24 | amocrm | webhook
    raw: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def lookup_caller(number: str | None) -> CallerInfo | None:
    """Placeholder until the adapters land: no CRM configured."""
    return None


def greeting_for(info: CallerInfo | None, greeting: str) -> str:
    """The greeting, addressed to the caller by name and patronymic when known."""
    return greeting
