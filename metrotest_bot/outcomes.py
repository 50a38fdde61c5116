"""How a call ended, in Russian: outcome and end-reason labels for the panel, exports and reports.

No Flask here: the post-call report (reports/) and the admin panel both use it.
"""
from __future__ import annotations

from .models import (OUTCOME_COMPLETED, OUTCOME_ERROR, OUTCOME_HANGUP, OUTCOME_IN_PROGRESS, OUTCOME_LOST,
                     OUTCOME_NO_OPERATOR, OUTCOME_TRANSFER_FAILED, OUTCOME_TRANSFERRED)

OUTCOME_LABELS = {
    OUTCOME_IN_PROGRESS: "идёт",
    OUTCOME_COMPLETED: "завершён",
    OUTCOME_TRANSFERRED: "переведён на сотрудника",
    OUTCOME_TRANSFER_FAILED: "перевод не удался",
    OUTCOME_NO_OPERATOR: "просил оператора, перевод недоступен",
    OUTCOME_HANGUP: "абонент положил трубку",
    OUTCOME_LOST: "связь прервалась",
    OUTCOME_ERROR: "ошибка",
}

# The `hangup` reasons of the VoxEngine scenario and the server's own end reasons (voice/session.py).
REASON_LABELS = {
    "caller": "абонент положил трубку",
    "caller_hangup": "абонент положил трубку",
    "caller hung up": "абонент положил трубку",
    "operator_hangup": "сотрудник завершил разговор",
    "transferred": "сотрудник принял звонок",
    "transfer_failed": "сотрудник не ответил",
    "no_operator": "номер оператора не задан",
    "silence": "абонент молчал",
    "goodbye": "бот попрощался",
    "end": "бот завершил звонок",
    "socket closed": "соединение с сервером закрылось",
    "idle timeout": "долго не было активности",
    "server shut down": "сервер перезапускался",
    "server error": "ошибка сервера",
}
OTHER_REASON = "другая причина"


def outcome_label(value: str | None) -> str:
    return OUTCOME_LABELS.get(value or "", "—" if not value else "другой итог")


def reason_label(value: str | None) -> str:
    """An end reason in Russian; an unknown (free-form) reason is never shown raw."""
    if not value:
        return ""
    return REASON_LABELS.get(value.strip().lower(), OTHER_REASON)
