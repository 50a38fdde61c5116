"""Russian labels and display formats, as Jinja filters for every admin template."""
from __future__ import annotations

from datetime import datetime

from ..models import (OUTCOME_COMPLETED, OUTCOME_ERROR, OUTCOME_HANGUP, OUTCOME_IN_PROGRESS, OUTCOME_LOST,
                      OUTCOME_TRANSFER_FAILED, OUTCOME_TRANSFERRED, ROLE_BOT, ROLE_CALLER)
from ..timeutil import to_local
from . import bp

OUTCOME_LABELS = {
    OUTCOME_IN_PROGRESS: "идёт",
    OUTCOME_COMPLETED: "завершён",
    OUTCOME_TRANSFERRED: "переведён на сотрудника",
    OUTCOME_TRANSFER_FAILED: "перевод не удался",
    OUTCOME_HANGUP: "абонент положил трубку",
    OUTCOME_LOST: "связь прервалась",
    OUTCOME_ERROR: "ошибка",
}
ROLE_LABELS = {ROLE_CALLER: "Абонент", ROLE_BOT: "Бот"}
KIND_LABELS = {
    "speech": "", "answer": "", "dtmf": "нажата клавиша", "greeting": "приветствие", "transfer": "перевод",
    "goodbye": "прощание", "reprompt": "переспрос", "system": "служебное",
}
SOURCE_LABELS = {"llm": "ответ LLM", "offline": "ответ из базы знаний", "refusal": "отказ", "phrase": "фраза"}


@bp.app_template_filter("outcome")
def outcome_label(value: str | None) -> str:
    return OUTCOME_LABELS.get(value or "", value or "—")


@bp.app_template_filter("role")
def role_label(value: str | None) -> str:
    return ROLE_LABELS.get(value or "", value or "—")


@bp.app_template_filter("kind")
def kind_label(value: str | None) -> str:
    return KIND_LABELS.get(value or "", value or "")


@bp.app_template_filter("source")
def source_label(value: str | None) -> str:
    return SOURCE_LABELS.get(value or "", value or "")


@bp.app_template_filter("localtime")
def localtime(dt: datetime | None, fmt: str = "%d.%m.%Y %H:%M") -> str:
    """A stored UTC time in the company's zone (COMPANY_TZ)."""
    local = to_local(dt)
    return local.strftime(fmt) if local else "—"


@bp.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@bp.app_template_filter("ms")
def ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 10_000:
        return f"{value / 1000:.1f} с".replace(".", ",")
    return f"{int(round(value))} мс"


@bp.app_template_filter("num")
def num(value: int | None) -> str:
    """1234567 -> '1 234 567' (a thin space groups digits, as Russian typography does)."""
    return "—" if value is None else f"{value:,}".replace(",", "\u202f")


@bp.app_template_filter("score")
def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}".replace(".", ",")
