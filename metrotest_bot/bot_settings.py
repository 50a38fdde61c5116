"""The bot's words (prompt, greeting, fixed phrases, operator number).

Read through the database with a short per-process cache, so a change made in
the admin panel on one worker is in force on every worker within seconds.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields

from cachetools import TTLCache
from flask import current_app

from .extensions import db
from .models import BotSettingsVersion

DEFAULT_SYSTEM_PROMPT = (
    "Ты — голосовой ассистент компании «Метротест», производителя испытательного оборудования. "
    "Ты говоришь с клиентом по телефону, твой ответ озвучит синтезатор речи.\n"
    "Правила:\n"
    "- Отвечай по-русски, коротко: одно-три простых предложения разговорной речи.\n"
    "- Используй только факты из фрагментов базы знаний ниже. Ничего не придумывай.\n"
    "- Если во фрагментах нет ответа, скажи, что не знаешь, и предложи соединить с сотрудником.\n"
    "- Без markdown, списков, скобок, эмодзи и ссылок; числа, цены и время пиши так, как их удобно произнести.\n"
    "- Не диктуй длинных перечислений: назови главное и предложи уточнить."
)


@dataclass(frozen=True)
class BotSettings:
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    greeting: str = "Здравствуйте! Вы позвонили в компанию «Метротест». Я голосовой помощник. Чем могу помочь?"
    refusal: str = "К сожалению, у меня нет точного ответа на этот вопрос. Могу соединить вас с сотрудником — скажите «оператор» или нажмите ноль."
    transfer_phrase: str = "Соединяю вас с сотрудником, оставайтесь на линии."
    no_operator_phrase: str = "Сейчас я не могу вас соединить. Позвоните, пожалуйста, в офис по номеру 8 800 000-12-12 в будни с 8:30 до 17:30 по екатеринбургскому времени."
    goodbye: str = "Спасибо за звонок! Всего доброго, до свидания."
    reprompt: str = "Вы меня слышите? Задайте, пожалуйста, ваш вопрос."
    error_phrase: str = "Извините, произошла техническая ошибка. Соединяю вас с сотрудником."
    cut_short_phrase: str = "Извините, на этом ответ прервался. Если нужно, скажите «оператор», и я соединю вас с сотрудником."
    operator_phone: str = ""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict:
        return asdict(self)


class _Cache:
    """This app's settings for SHARED_STATE_TTL seconds, and the last ones read, for when the database is away."""

    def __init__(self, ttl: float):
        self.lock = threading.Lock()  # cachetools' caches are not thread-safe
        self.fresh = TTLCache(maxsize=1, ttl=ttl) if ttl > 0 else None  # 0: read the database every time
        self.last: BotSettings | None = None


def _cache_for_app() -> _Cache:
    # Kept on the app object: tests create many apps in one process, each with its own TTL.
    app = current_app._get_current_object()
    cache = app.extensions.get("bot_settings_cache")
    if cache is None:
        cache = app.extensions.setdefault("bot_settings_cache", _Cache(float(app.config["SHARED_STATE_TTL"])))
    return cache


def defaults() -> BotSettings:
    return BotSettings(operator_phone=current_app.config.get("OPERATOR_PHONE") or "")


def load_from_db() -> BotSettings:
    base = defaults()
    row = db.session.execute(
        db.select(BotSettingsVersion).order_by(BotSettingsVersion.id.desc()).limit(1)
    ).scalar_one_or_none()
    if row is None:
        return base
    known = {k: v for k, v in (row.data or {}).items() if k in BotSettings.field_names() and v is not None}
    return BotSettings(**{**base.to_dict(), **known})


def get_bot_settings() -> BotSettings:
    """Settings in force, at most SHARED_STATE_TTL seconds old."""
    cache = _cache_for_app()
    with cache.lock:
        value = cache.fresh.get("settings") if cache.fresh is not None else None
    if value is not None:
        return value
    try:
        value = load_from_db()
    except Exception as exc:  # database briefly down: keep talking with what we had
        current_app.logger.warning("bot settings: database unavailable (%s), using cached/default values",
                                   exc.__class__.__name__)
        db.session.rollback()
        return cache.last or defaults()
    with cache.lock:
        if cache.fresh is not None:
            cache.fresh["settings"] = value
        cache.last = value
    return value


def save_bot_settings(data: dict, username: str | None) -> BotSettingsVersion:
    row = BotSettingsVersion(data={k: data[k] for k in BotSettings.field_names() if k in data}, created_by=username)
    db.session.add(row)
    db.session.commit()
    invalidate()
    return row


def invalidate() -> None:
    cache = _cache_for_app()
    with cache.lock:
        if cache.fresh is not None:
            cache.fresh.clear()
        cache.last = None
