"""Russian labels and display formats, as Jinja filters for every admin template."""
from __future__ import annotations

from datetime import datetime

from ..models import ROLE_BOT, ROLE_CALLER
from ..outcomes import OUTCOME_LABELS, outcome_label as _outcome_label, reason_label as _reason_label  # noqa: F401
from ..timeutil import to_local
from . import bp

ROLE_LABELS = {ROLE_CALLER: "Абонент", ROLE_BOT: "Бот"}
KIND_LABELS = {
    "speech": "", "answer": "", "dtmf": "нажата клавиша", "greeting": "приветствие", "transfer": "перевод",
    "goodbye": "прощание", "reprompt": "переспрос", "system": "служебное",
}
SOURCE_LABELS = {"llm": "ответ LLM", "offline": "ответ из базы знаний", "refusal": "отказ", "phrase": "фраза"}


@bp.app_template_filter("outcome")
def outcome_label(value: str | None) -> str:
    return _outcome_label(value)


@bp.app_template_filter("end_reason")
def reason_label(value: str | None) -> str:
    return _reason_label(value)


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


@bp.app_template_filter("clip")
def clip(text: str | None, limit: int = 300) -> str:
    """A caller's words cut to `limit` characters with «…» (a 5,000-character prompt is not a table cell)."""
    text = text or ""
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
