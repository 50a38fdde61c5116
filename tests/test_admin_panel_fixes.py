"""The smaller panel defects of issue #15: phone numbers as text in the CSV, long questions clipped in
«Частые вопросы», the caller's characters kept in «Вопросы без ответа», taller settings boxes, a first
save that lists only what changed (browsers send CRLF), the no-LLM hint, the clear page's count without
calls in progress, the KB page's index label in Russian."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone

from metrotest_bot.bot_settings import DEFAULT_SYSTEM_PROMPT
from metrotest_bot.extensions import db
from metrotest_bot.models import BotSettingsVersion

from .support.admin_data import ADMIN, PASSWORD, csrf_token, make_admin, make_call
from .support.browser import phone_tab, screenshot, sign_in_browser
from .test_admin_bot_settings import form_values

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def refused(question: str) -> list:
    return [("caller", question), {"role": "bot", "text": "К сожалению, нет ответа.", "answered": False,
                                   "question": question}]


def test_csv_writes_phone_numbers_as_text_and_still_neutralises_formulas(app, admin_client):
    make_call(app, NOW - timedelta(minutes=3), [("caller", "+7 912 000-00-01 мой номер")], caller="+79120000001",
              dialled="+7 (343) 000-12-12", transferred_to="+73430001210")
    make_call(app, NOW - timedelta(minutes=2), [("caller", "Алло")], caller="=cmd|' /C calc'!A0")
    table = list(csv.reader(io.StringIO(admin_client.get("/logs-ui/export.csv").get_data().decode("utf-8-sig"),
                                        newline=""), delimiter=";"))
    col = {name: i for i, name in enumerate(table[0])}
    evil, phone = table[1], table[2]
    # ="…" is text in Excel, LibreOffice and Google Sheets: the leading plus survives.
    assert phone[col["Номер абонента"]] == '="+79120000001"'
    assert phone[col["Набранный номер"]] == '="+7 (343) 000-12-12"'
    assert phone[col["Перевод на"]] == '="+73430001210"'
    assert phone[col["Текст"]] == "'+7 912 000-00-01 мой номер"  # speech, not a number: neutralised as before
    assert evil[col["Номер абонента"]] == "'=cmd|' /C calc'!A0"  # never a live formula


def test_frequent_questions_clip_a_5000_character_prompt(app, admin_client):
    long_question = "Сколько стоит поверка " + "очень " * 830 + "длинного вопроса"
    assert len(long_question) > 5000
    make_call(app, NOW - timedelta(minutes=3), [("caller", long_question), {
        "role": "bot", "text": "Поверка от 5 000 рублей.", "answered": True, "question": long_question}])
    html = admin_client.get("/logs-ui/analytics").get_data(as_text=True)
    shown = re.findall(r'<span class="question-text">([^<]*)</span>', html)
    assert shown and all(len(s) <= 300 for s in shown) and shown[0].endswith("…")
    assert shown[0].startswith("Сколько стоит поверка очень")
    assert "очень " * 100 not in html


def test_unanswered_questions_keep_the_callers_characters(app, admin_client):
    make_call(app, NOW - timedelta(minutes=3), refused("=SUM(A1)") + refused("(2+3) сколько будет?"))
    html = admin_client.get("/logs-ui/analytics").get_data(as_text=True)
    table = html.split('id="unanswered"')[1]
    shown = re.findall(r'<span class="question-text">([^<]*)</span>', table)
    assert sorted(shown) == sorted(["=SUM(A1)", "(2+3) сколько будет"])  # only the closing «?» dropped


def test_settings_boxes_are_taller_and_the_no_llm_hint_shows(app, admin_client):
    html = admin_client.get("/logs-ui/settings").get_data(as_text=True)
    rows = dict(re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*rows="(\d+)"', html)
                or [(n, r) for r, n in re.findall(r'<textarea[^>]*rows="(\d+)"[^>]*name="([^"]+)"', html)])
    assert int(rows["greeting"]) >= 4 and int(rows["system_prompt"]) >= 16
    assert "LLM не подключена" in html


def test_no_hint_when_an_llm_is_configured(app, admin_client):
    app.config["OPENAI_API_KEY"] = "sk-test"
    assert "LLM не подключена" not in admin_client.get("/logs-ui/settings").get_data(as_text=True)


def test_the_first_save_lists_only_what_changed_though_the_browser_sends_crlf(app, admin_client):
    values = form_values(admin_client.get("/logs-ui/settings").get_data(as_text=True))
    # As a browser submits a textarea: every line break as CRLF.
    values = {k: v.replace("\n", "\r\n") for k, v in values.items()}
    same = admin_client.post("/logs-ui/settings", data=values, follow_redirects=True).get_data(as_text=True)
    assert "Изменений нет" in same
    values["greeting"] = "Метротест, добрый день!"
    html = admin_client.post("/logs-ui/settings", data=values, follow_redirects=True).get_data(as_text=True)
    history = html.split("История изменений")[1]
    changed = re.search(r'data-label="Что изменено">\s*([^<]*)', history).group(1).strip()
    assert changed == "Приветствие"
    with app.app_context():
        row = db.session.scalar(db.select(BotSettingsVersion))
        assert row.data["system_prompt"] == DEFAULT_SYSTEM_PROMPT  # stored with "\n", as the default


def test_the_clear_page_does_not_count_a_call_in_progress(app, admin_client):
    for i in range(2):
        make_call(app, NOW - timedelta(hours=1, minutes=i), [("caller", "Алло")])
    make_call(app, NOW - timedelta(minutes=1), [("caller", "Алло")], outcome="in_progress", duration_s=None)
    html = admin_client.get("/logs-ui/clear").get_data(as_text=True)
    assert "Будут удалены все записи звонков (2)" in html
    assert "Звонки, которые идут прямо сейчас (1), сохранятся и в это число не входят." in html
    done = admin_client.post("/logs-ui/clear", data={"csrf_token": csrf_token(html), "confirm": "yes"},
                             follow_redirects=True).get_data(as_text=True)
    assert "удалено звонков — 2" in done and "Идущие сейчас звонки (1) сохранены." in done


def test_the_kb_page_names_its_index_in_russian(app, admin_client):
    html = admin_client.get("/logs-ui/kb").get_data(as_text=True)
    assert "индекс default-" not in html and "индекс исходной базы" in html


def test_settings_in_chromium_first_save_and_screenshots(live_server, page, browser):
    make_admin(live_server.app)
    sign_in_browser(page, live_server.url, ADMIN, PASSWORD)
    page.wait_for_url("**/logs-ui/")
    page.goto(f"{live_server.url}/logs-ui/settings")
    assert page.locator(".no-llm-hint").is_visible()
    prompt_box = page.locator("textarea[name=system_prompt]").bounding_box()
    greeting_box = page.locator("textarea[name=greeting]").bounding_box()
    assert prompt_box["height"] > 300 and greeting_box["height"] > 80  # 16 and 4 lines
    screenshot(page, "admin-settings-fixes")
    page.fill("textarea[name=greeting]", "Метротест, добрый день! Слушаю вас.")
    page.click("button:has-text('Сохранить')")
    page.wait_for_selector(".alert-success")
    row = page.locator("tr.settings-version").first
    assert row.locator("td[data-label='Что изменено']").inner_text().split("\n")[0].strip() == "Приветствие"

    with phone_tab(browser, live_server.url, ADMIN, PASSWORD) as tab:
        tab.goto(f"{live_server.url}/logs-ui/settings")
        assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        screenshot(tab, "admin-settings-fixes-phone")
