"""The bot's words (/logs-ui/settings): prompt, greeting, fixed phrases, operator number.

Each save is a new BotSettingsVersion row (who, when); the newest is in
force. Workers re-read it within SHARED_STATE_TTL (bot_settings.py), so the
next call on any worker uses it. With an LLM configured a new system prompt
is not saved here but proposed: replayed first, published from its page
(prompt_replay.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..bot_settings import BotSettings, defaults, load_from_db, save_bot_settings
from ..phones import transfer_target
from ..extensions import db
from ..models import BotSettingsVersion
from ..rag.generate import llm_enabled
from . import bp, prompt_replay
from .forms import RussianForm
from .ranges import MAX_ID

HISTORY_SHOWN = 30
REQUIRED = "Заполните это поле: бот не может произнести пустую фразу."


def _strip(value):
    # Browsers send a textarea's line breaks as CRLF: the stored "\n" must compare equal to what
    # comes back untouched, or the first save lists the default prompt as changed.
    return value.replace("\r\n", "\n").replace("\r", "\n").strip() if isinstance(value, str) else value


def _phrase(label: str, max_len: int, description: str = "", rows: int = 4):
    return TextAreaField(label, validators=[DataRequired(REQUIRED), Length(max=max_len)], filters=[_strip],
                         description=description, render_kw={"rows": rows, "maxlength": max_len})


class SettingsForm(RussianForm):
    greeting = _phrase("Приветствие", 500, "Первая фраза бота в каждом звонке.")
    refusal = _phrase("Фраза, когда ответа нет в базе знаний", 500,
                      "Бот говорит её вместо ответа, если в базе знаний ничего не нашлось.")
    transfer_phrase = _phrase("Фраза перед переводом на сотрудника", 300)
    no_operator_phrase = _phrase("Фраза, когда перевести нельзя", 500,
                                 "Если номер оператора не задан или перевод невозможен.")
    goodbye = _phrase("Прощание", 300)
    reprompt = _phrase("Переспрос, когда абонент молчит", 300)
    error_phrase = _phrase("Фраза при технической ошибке", 300)
    cut_short_phrase = _phrase("Фраза, если модель замолчала посреди ответа", 300)
    operator_phone = StringField(
        "Номер оператора для перевода", validators=[Optional(), Length(max=128)], filters=[_strip],
        description="Телефон (например, +7 343 000-00-00) или SIP-адрес (sip:operator@pbx.example.ru). "
                    "Пусто — перевод отключён.",
        render_kw={"placeholder": "+7 343 000-00-00 или sip:operator@pbx.example.ru", "maxlength": 128})
    system_prompt = _phrase("Системная инструкция для LLM", 4000,
                            "Как LLM должна отвечать: тон, длина, ограничения. Фрагменты базы знаний добавляются "
                            "к ней автоматически.", rows=16)

    def validate_operator_phone(self, field):
        if field.data and transfer_target(field.data) is None:
            raise ValidationError("Это не похоже на номер телефона или SIP-адрес. Пример: +7 343 000-00-00 "
                                  "или sip:operator@pbx.example.ru.")

    def values(self) -> dict:
        data = {name: getattr(self, name).data or "" for name in BotSettings.field_names() if hasattr(self, name)}
        if data.get("operator_phone"):
            data["operator_phone"] = transfer_target(data["operator_phone"])  # one canonical form
        return data


LABELS = {name: SettingsForm.__dict__[name].args[0] for name in BotSettings.field_names()
          if name in SettingsForm.__dict__}


@dataclass
class HistoryEntry:
    row: BotSettingsVersion
    changed: list[str]  # labels of the fields this save changed
    values: dict


def history() -> list[HistoryEntry]:
    rows = db.session.scalars(select(BotSettingsVersion).order_by(BotSettingsVersion.id.desc())
                              .limit(HISTORY_SHOWN + 1)).all()
    base = defaults().to_dict()
    out = []
    for i, row in enumerate(rows[:HISTORY_SHOWN]):
        values = {**base, **{k: v for k, v in (row.data or {}).items() if v is not None}}
        if i + 1 < len(rows):
            before = {**base, **{k: v for k, v in (rows[i + 1].data or {}).items() if v is not None}}
        else:
            before = None if len(rows) > HISTORY_SHOWN else base
        changed = [LABELS.get(k, k) for k in LABELS if before is not None and values.get(k) != before.get(k)]
        out.append(HistoryEntry(row=row, changed=changed, values=values))
    return out


@bp.app_template_filter("seconds")
def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:g}".replace(".", ",")


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    in_force = load_from_db().to_dict()  # not this worker's cached copy: the page shows the database
    form = SettingsForm(data=in_force)
    llm = llm_enabled(current_app.config)
    if form.validate_on_submit():
        data = form.values()
        changed = {k for k, v in data.items() if in_force.get(k) != v}
        if not changed:
            flash("Изменений нет: настройки остались прежними.", "info")
            return redirect(url_for("admin.settings"), 303)
        candidate = None
        if llm and "system_prompt" in changed:
            # The prompt shapes every answer: a candidate, replayed before it goes live (prompt_replay.py).
            candidate, data["system_prompt"] = data["system_prompt"], in_force["system_prompt"]
            changed.discard("system_prompt")
        if changed:
            row = save_bot_settings({**in_force, **data}, current_user.username)
            ttl = current_app.config["SHARED_STATE_TTL"]
            flash(f"Настройки сохранены (версия №{row.id}). Следующие звонки получат их на всех серверах "
                  f"в течение {seconds(ttl)} с.", "success")
        if candidate is not None:
            run_id = prompt_replay.propose(candidate, current_user.username)
            flash("Новая системная инструкция ещё не действует: сначала она проверяется на вопросах абонентов. "
                  "Посмотрите, что изменится, и опубликуйте её.", "info")
            return redirect(url_for("admin.prompt_replay", run_id=run_id), 303)
        if "system_prompt" in changed:
            flash("LLM не подключена: системная инструкция сохранена, но на ответы бота сейчас не влияет.", "info")
        return redirect(url_for("admin.settings"), 303)
    status = 400 if form.is_submitted() else 200
    return render_template("admin/settings.html", form=form, history=history(), llm_configured=llm,
                           candidate=prompt_replay.waiting_candidate() if llm else None), status


@bp.route(f"/settings/versions/<int(max={MAX_ID}):version_id>/restore", methods=["POST"])
def settings_restore(version_id: int):
    RussianForm().validate_on_submit()  # CSRFProtect has checked the token already
    row = db.session.get(BotSettingsVersion, version_id)
    if row is None:
        flash("Такой версии настроек нет.", "error")
        return redirect(url_for("admin.settings"), 303)
    data = {**load_from_db().to_dict(), **{k: v for k, v in (row.data or {}).items() if v is not None}}
    new = save_bot_settings(data, current_user.username)
    flash(f"Восстановлены настройки версии №{row.id} (сохранены как версия №{new.id}).", "success")
    return redirect(url_for("admin.settings"), 303)
