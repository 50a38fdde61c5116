"""The admin panel in real Chromium against the really served app (gunicorn, gevent).

A call is made over the call WebSocket, then found, filtered, opened,
exported and cleared in the browser. Screenshots go to test-artifacts/.
"""
import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from metrotest_bot.extensions import db
from metrotest_bot.models import Call
from metrotest_bot.timeutil import to_local

from .support.admin_data import ADMIN, PASSWORD, make_admin, make_call
from .support.browser import screenshot, sign_in_browser
from .support.ws_client import CallClient, text_of

pytestmark = pytest.mark.timeout(240)

CALLER = "+79125550101"
QUESTION = "Здравствуйте, вы доставляете испытательные машины в Казань?"


def make_ws_call(server) -> list[dict]:
    call = CallClient.connect(server)
    try:
        call.setup(caller=CALLER)
        frames = call.ask(QUESTION)
        call.hangup()
    finally:
        call.close()
    return frames


def wait_for_call_end(app, caller, timeout=15):
    """The hangup is processed after the socket closes; wait until the call is finalized."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.app_context():
            row = db.session.scalar(select(Call).where(Call.caller == caller))
            if row is not None and row.outcome != "in_progress":
                return row.id
            db.session.remove()
        time.sleep(0.1)
    raise AssertionError("the call was not finalized")


def test_admin_works_through_a_real_call(live_server, page):
    app = live_server.app
    make_admin(app)
    answer = text_of(make_ws_call(live_server))
    assert answer
    call_id = wait_for_call_end(app, CALLER)
    # An older call from the database, for the date filter.
    week_ago = datetime.now(timezone.utc) - timedelta(days=7)
    old_id = make_call(app, week_ago, [("caller", "Нужен твердомер для лаборатории")], caller="+73430000042")
    with app.app_context():
        today = to_local(datetime.now(timezone.utc)).date()
        old_day = to_local(week_ago).date()

    sign_in_browser(page, live_server.url, ADMIN, PASSWORD)
    page.wait_for_url("**/logs-ui/")
    rows = page.locator("tr.call-row")
    assert rows.count() == 2
    assert rows.first.get_attribute("data-call-id") == str(call_id)  # newest first
    assert CALLER in rows.first.inner_text()
    screenshot(page, "admin-calls")

    # Search with another word form: «казани» finds «Казань».
    page.fill("input[name=q]", "казани")
    page.click("button:has-text('Найти')")
    page.wait_for_url("**q=*")
    assert page.locator("tr.call-row").count() == 1
    assert page.locator("tr.snippet-row mark").first.inner_text() == "Казань"
    screenshot(page, "admin-search")

    # Filter by date (the company's days).
    page.goto(f"{live_server.url}/logs-ui/?date_from={old_day}&date_to={old_day}")
    assert [r.get_attribute("data-call-id") for r in page.locator("tr.call-row").all()] == [str(old_id)]
    page.goto(f"{live_server.url}/logs-ui/")
    page.fill("input[name=date_from]", today.isoformat())
    page.click("button:has-text('Найти')")
    page.wait_for_url("**date_from=*")
    assert [r.get_attribute("data-call-id") for r in page.locator("tr.call-row").all()] == [str(call_id)]

    # Open the call: the question and the spoken answer, in order.
    page.click(f"tr[data-call-id='{call_id}'] a")
    page.wait_for_url(f"**/logs-ui/calls/{call_id}*")
    turns = page.locator("li.turn")
    texts = [t.inner_text() for t in turns.all()]
    assert any(QUESTION in t for t in texts)
    assert turns.first.locator(".tag").first.inner_text() == "приветствие"
    assert CALLER in page.locator(".call-meta").inner_text()
    screenshot(page, "admin-call")

    # Download the CSV of the current list.
    page.goto(f"{live_server.url}/logs-ui/?q=казани")
    with page.expect_download() as info:
        page.click("a:has-text('Скачать CSV')")
    raw = open(info.value.path(), "rb").read()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))
    header, body = table[0], table[1:]
    assert {r[0] for r in body} == {str(call_id)}
    text_col = header.index("Текст")
    assert any(QUESTION == r[text_col] for r in body)
    assert len(body) >= 3  # greeting, question, answer

    # Clear with confirmation: first without ticking the box.
    page.click("a:has-text('Очистить журнал')")
    page.click("button:has-text('Очистить журнал')")
    assert "Отметьте подтверждение" in page.inner_text("main")
    page.check("input[name=confirm]")
    page.click("button:has-text('Очистить журнал')")
    page.wait_for_url("**/logs-ui/")
    assert "Журнал очищен: удалено звонков — 2" in page.inner_text("main")
    assert page.locator("tr.call-row").count() == 0

    # Signing out ends the session.
    page.click("button:has-text('Выйти')")
    page.wait_for_url("**/logs-ui/login")
    page.goto(f"{live_server.url}/logs-ui/")
    assert "/logs-ui/login" in page.url


def test_anonymous_refused_wrong_password_then_throttled(live_server_factory, page):
    live_server = live_server_factory(LOGIN_BACKOFF_SECONDS=60)  # a wait the test cannot outlast by accident
    make_admin(live_server.app)
    page.goto(f"{live_server.url}/logs-ui/calls/1")
    assert "/logs-ui/login?next=" in page.url
    assert "Войдите, чтобы открыть эту страницу." in page.inner_text("body")
    response = page.request.get(f"{live_server.url}/logs-ui/export.csv", max_redirects=0)
    assert response.status == 302

    for _ in range(3):
        sign_in_browser(page, live_server.url, ADMIN, "неправильный")
        assert "Неверное имя пользователя или пароль." in page.inner_text("body")
    sign_in_browser(page, live_server.url, ADMIN, "неправильный")
    assert "Слишком много неудачных попыток входа. Подождите 1 мин" in page.inner_text("body")
    sign_in_browser(page, live_server.url, ADMIN, PASSWORD)  # from this address, not even the right password
    assert "Слишком много неудачных попыток входа" in page.inner_text("body")
    screenshot(page, "admin-throttled")
    page.goto(f"{live_server.url}/logs-ui/")
    assert "/logs-ui/login" in page.url


def test_phone_layout(live_server, browser):
    """On a phone-sized screen the list turns into cards with labels, without a sideways scroll."""
    make_admin(live_server.app)
    make_call(live_server.app, None, [("caller", "Сколько стоит пресс?")], caller="+79120000888",
              caller_name="Мария", caller_company="Лаборатория")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        phone = context.new_page()
        sign_in_browser(phone, live_server.url, ADMIN, PASSWORD)
        phone.wait_for_url("**/logs-ui/")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        assert phone.locator("table.calls thead").is_hidden()
        assert "Абонент" in phone.locator("tr.call-row td").nth(1).evaluate(
            "el => getComputedStyle(el, '::before').content")
        screenshot(phone, "admin-calls-phone")
    finally:
        context.close()
