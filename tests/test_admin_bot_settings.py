"""The bot's words page with the Flask test client: validation, versions, history, restore."""
import html as html_lib
import re

import pytest

from metrotest_bot.bot_settings import BotSettings, get_bot_settings, invalidate
from metrotest_bot.extensions import db
from metrotest_bot.models import BotSettingsVersion

from .support.admin_data import csrf_token


def form_values(html: str) -> dict:
    """The form as the browser would send it back: every textarea and input with its current value."""
    values = {m.group(1): m.group(2) for m in re.finditer(r'<textarea[^>]*name="([^"]+)"[^>]*>\r?\n?(.*?)</textarea>',
                                                          html, re.S)}
    for m in re.finditer(r'<input[^>]*name="([^"]+)"[^>]*>', html):
        value = re.search(r'value="([^"]*)"', m.group(0))
        values[m.group(1)] = value.group(1) if value else ""
    return {k: html_lib.unescape(v) for k, v in values.items()}


def save(client, **changes):
    values = form_values(client.get("/logs-ui/settings").get_data(as_text=True))
    values.update(changes)
    return client.post("/logs-ui/settings", data=values)


def in_force(app) -> BotSettings:
    with app.app_context():
        invalidate()  # this process's cache: read what the database holds now
        return get_bot_settings()


def test_form_shows_the_settings_in_force(app, admin_client):
    values = form_values(admin_client.get("/logs-ui/settings").get_data(as_text=True))
    defaults = BotSettings().to_dict()
    assert {k: values[k] for k in defaults if k != "operator_phone"} == \
        {k: v for k, v in defaults.items() if k != "operator_phone"}
    assert "Настройки ещё не меняли" in admin_client.get("/logs-ui/settings").get_data(as_text=True)


def test_save_makes_a_version_in_force_with_who_and_when(app, admin_client):
    response = save(admin_client, greeting="Добрый день! Метротест, голосовой помощник слушает.",
                    operator_phone="8 (343) 123-45-67")
    assert response.status_code == 303
    s = in_force(app)
    assert s.greeting == "Добрый день! Метротест, голосовой помощник слушает."
    assert s.operator_phone == "+73431234567"  # stored in one canonical form
    assert s.refusal == BotSettings().refusal  # the rest kept
    with app.app_context():
        rows = db.session.scalars(db.select(BotSettingsVersion)).all()
        assert [(r.created_by, r.created_at is not None) for r in rows] == [("admin", True)]
    html = admin_client.get("/logs-ui/settings").get_data(as_text=True)
    assert "Настройки сохранены (версия №1)" in html
    history = html.split("История изменений")[1]
    assert "admin" in history and "Приветствие, Номер оператора для перевода" in history


def test_sip_uri_is_an_operator_number(app, admin_client):
    assert save(admin_client, operator_phone="sip:operator@pbx.metrotest.ru").status_code == 303
    assert in_force(app).operator_phone == "sip:operator@pbx.metrotest.ru"
    assert save(admin_client, operator_phone="").status_code == 303  # empty: transfers off
    assert in_force(app).operator_phone == ""


@pytest.mark.parametrize("field, value, message", [
    ("greeting", "   ", "Заполните это поле"),
    ("refusal", "", "Заполните это поле"),
    ("goodbye", "до свидания " * 40, "не должно содержать более 300 символов"),
    ("system_prompt", "x" * 4001, "более 4000 символов"),
    ("operator_phone", "позвоните Ивану", "не похоже на номер телефона или SIP-адрес"),
    ("operator_phone", "123", "не похоже на номер телефона"),
    ("operator_phone", "sip:без-домена", "не похоже на номер телефона"),
])
def test_invalid_input_is_refused_and_kept(app, admin_client, field, value, message):
    response = save(admin_client, **{field: value, "transfer_phrase": "Соединяю, минуту."})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html and "настройки не сохранены" in html
    assert "Соединяю, минуту." in html  # what was typed is not lost
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(BotSettingsVersion.id))) == 0


def test_no_change_makes_no_version(app, admin_client):
    response = save(admin_client)
    assert response.status_code == 303
    assert "Изменений нет" in admin_client.get("/logs-ui/settings").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(BotSettingsVersion.id))) == 0


def test_restore_an_earlier_version(app, admin_client):
    save(admin_client, greeting="Первое приветствие.")
    save(admin_client, greeting="Второе приветствие.", goodbye="Пока!")
    assert in_force(app).greeting == "Второе приветствие."
    html = admin_client.get("/logs-ui/settings").get_data(as_text=True)
    response = admin_client.post("/logs-ui/settings/versions/1/restore", data={"csrf_token": csrf_token(html)})
    assert response.status_code == 303
    s = in_force(app)
    assert (s.greeting, s.goodbye) == ("Первое приветствие.", BotSettings().goodbye)
    assert "Восстановлены настройки версии №1 (сохранены как версия №3)" in \
        admin_client.get("/logs-ui/settings").get_data(as_text=True)
    assert admin_client.post("/logs-ui/settings/versions/1/restore").status_code == 400  # no CSRF token


def test_csrf_required(app, admin_client):
    values = form_values(admin_client.get("/logs-ui/settings").get_data(as_text=True))
    values.pop("csrf_token")
    values["greeting"] = "Взлом"
    assert admin_client.post("/logs-ui/settings", data=values).status_code == 400
    assert in_force(app).greeting != "Взлом"
