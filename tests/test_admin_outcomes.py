"""Call outcomes in the panel: the list filtered by outcome (`?outcome=`) and sorted (`?sort=`), the
same filter in the CSV export, Russian labels for outcomes and end reasons, outcome counts in analytics;
and the filter UI in real Chromium against the served app, with screenshots at desktop and phone size."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest

from .support.admin_data import ADMIN, PASSWORD, make_admin, make_call
from .support.browser import phone_tab, screenshot, sign_in_browser

NOW = datetime.now(timezone.utc).replace(microsecond=0)

# outcome -> (minutes ago, duration s, end reason, turns); one call each, plus a refused question below.
CALLS = {
    "completed": (10, 95.0, "goodbye", [("caller", "Где вы находитесь?"), ("bot", "Екатеринбург."),
                                        ("caller", "Спасибо, до свидания"), ("bot", "Всего доброго!")]),
    "transferred": (20, 300.0, "transferred", [("caller", "Соедините с оператором"), ("bot", "Соединяю.")]),
    "transfer_failed": (30, 70.0, "transfer_failed", [("caller", "Позовите менеджера"), ("bot", "Соединяю.")]),
    "no_operator": (40, 40.0, "caller", [("caller", "Хочу поговорить с человеком"),
                                         ("bot", "Сейчас я не могу вас соединить.")]),
    "hangup": (50, 12.0, "caller_hangup", [("caller", "Алло")]),
    "lost": (60, 25.0, "socket closed", [("caller", "Доставка в Казань?"), ("bot", "Да.")]),
    "error": (70, 5.0, "server error", [("caller", "Сколько стоит пресс?")]),
}
OUTCOME_TITLES = {
    "completed": "завершён", "transferred": "переведён на сотрудника", "transfer_failed": "перевод не удался",
    "no_operator": "просил оператора, перевод недоступен", "hangup": "абонент положил трубку",
    "lost": "связь прервалась", "error": "ошибка",
}


def make_outcome_calls(app) -> dict[str, int]:
    ids = {}
    for outcome, (ago, duration, reason, turns) in CALLS.items():
        ids[outcome] = make_call(app, NOW - timedelta(minutes=ago), turns, outcome=outcome, end_reason=reason,
                                 duration_s=duration, caller=f"+7912000{ago:04d}",
                                 summary=f"Вопросы (1): «{turns[0][1]}» — ответ дан. Итог: {OUTCOME_TITLES[outcome]}.")
    # A call with a refused question: `unanswered` finds it, whatever its outcome.
    ids["unanswered"] = make_call(app, NOW - timedelta(minutes=80), [
        ("caller", "Какая погода на Марсе?"),
        {"role": "bot", "text": "К сожалению, у меня нет точного ответа.", "answered": False,
         "question": "Какая погода на Марсе?"}], outcome="completed", n_unanswered=1, duration_s=33.0)
    return ids


def listed(html: str) -> list[int]:
    import re

    return [int(x) for x in re.findall(r'<tr class="call-row" data-call-id="(\d+)"', html)]


def expected(ids, outcome) -> list[int]:
    """The refused-question call ended as «completed»: that filter lists it too (it is older)."""
    return [ids["completed"], ids["unanswered"]] if outcome == "completed" else [ids[outcome]]


@pytest.mark.parametrize("outcome", [*CALLS, "unanswered"])
def test_each_outcome_filter_lists_exactly_its_calls(app, admin_client, outcome):
    ids = make_outcome_calls(app)
    html = admin_client.get(f"/logs-ui/?outcome={outcome}").get_data(as_text=True)
    assert listed(html) == expected(ids, outcome)
    assert f"Найдено звонков: {len(expected(ids, outcome))}." in html
    # The select keeps the choice, and the CSV link keeps the filter.
    assert f'<option selected value="{outcome}">' in html
    assert f"/logs-ui/export.csv?outcome={outcome}" in html


def test_no_filter_lists_every_call(app, admin_client):
    make_outcome_calls(app)
    html = admin_client.get("/logs-ui/").get_data(as_text=True)
    assert len(listed(html)) == 8 and "Всего звонков: 8." in html


def test_an_unknown_outcome_says_so_and_filters_nothing(app, admin_client):
    make_outcome_calls(app)
    html = admin_client.get("/logs-ui/?outcome=banana").get_data(as_text=True)
    assert "Нет такого итога звонка" in html and len(listed(html)) == 8
    assert admin_client.get("/logs-ui/export.csv?outcome=banana").status_code == 400


@pytest.mark.parametrize("sort, expected", [
    ("newest", ["completed", "transferred", "transfer_failed", "no_operator", "hangup", "lost", "error", "unanswered"]),
    ("oldest", ["unanswered", "error", "lost", "hangup", "no_operator", "transfer_failed", "transferred", "completed"]),
    ("longest", ["transferred", "completed", "transfer_failed", "no_operator", "unanswered", "lost", "hangup", "error"]),
    ("shortest", ["error", "hangup", "lost", "unanswered", "no_operator", "transfer_failed", "completed", "transferred"]),
])
def test_sorting_by_time_and_duration(app, admin_client, sort, expected):
    ids = make_outcome_calls(app)
    assert listed(admin_client.get(f"/logs-ui/?sort={sort}").get_data(as_text=True)) == [ids[k] for k in expected]


def test_sorting_by_turns_and_with_a_search(app, admin_client):
    ids = make_outcome_calls(app)
    most = listed(admin_client.get("/logs-ui/?sort=most_turns").get_data(as_text=True))
    assert most[0] == ids["completed"]  # 4 turns
    assert set(most[-2:]) == {ids["hangup"], ids["error"]}  # 1 turn each
    fewest = listed(admin_client.get("/logs-ui/?sort=fewest_turns").get_data(as_text=True))
    assert fewest[-1] == ids["completed"]
    # With a search: the matches, filtered by outcome and ordered in SQL.
    both = listed(admin_client.get("/logs-ui/?q=соедините&outcome=transferred").get_data(as_text=True))
    assert both == [ids["transferred"]]
    assert listed(admin_client.get("/logs-ui/?q=соедините&outcome=hangup").get_data(as_text=True)) == []
    by_len = listed(admin_client.get("/logs-ui/?q=доставка&sort=longest").get_data(as_text=True))
    assert by_len == [ids["lost"]]


def parse_csv(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))


def test_the_csv_export_honours_the_outcome_filter_and_carries_the_summary(app, admin_client):
    ids = make_outcome_calls(app)
    table = parse_csv(admin_client.get("/logs-ui/export.csv?outcome=no_operator").get_data())
    header, body = table[0], table[1:]
    col = {name: i for i, name in enumerate(header)}
    assert {r[col["Звонок"]] for r in body} == {str(ids["no_operator"])} and len(body) == 2
    assert body[0][col["Итог"]] == "просил оператора, перевод недоступен"
    assert body[0][col["Итог разговора"]].startswith("Вопросы (1): «Хочу поговорить с человеком»")
    unanswered = parse_csv(admin_client.get("/logs-ui/export.csv?outcome=unanswered").get_data())[1:]
    assert {r[0] for r in unanswered} == {str(ids["unanswered"])}
    searched = parse_csv(admin_client.get("/logs-ui/export.csv?q=соедините&outcome=transfer_failed").get_data())[1:]
    assert searched == []
    searched = parse_csv(admin_client.get("/logs-ui/export.csv?q=менеджера&outcome=transfer_failed").get_data())[1:]
    assert {r[0] for r in searched} == {str(ids["transfer_failed"])}


def test_labels_are_russian_on_the_list_and_the_call_page(app, admin_client):
    ids = make_outcome_calls(app)
    html = admin_client.get("/logs-ui/").get_data(as_text=True)
    for title in OUTCOME_TITLES.values():
        assert f">{title}</span>" in html
    assert 'class="call-summary">Вопросы (1): «Где вы находитесь?» — ответ дан. Итог: завершён.<' in html
    page = admin_client.get(f"/logs-ui/calls/{ids['no_operator']}").get_data(as_text=True)
    assert "просил оператора, перевод недоступен" in page and "(caller)" not in page
    assert "абонент положил трубку" in page  # the end reason «caller», in Russian
    lost = admin_client.get(f"/logs-ui/calls/{ids['lost']}").get_data(as_text=True)
    assert "(соединение с сервером закрылось)" in lost and "socket closed" not in lost
    odd = make_call(app, NOW, [("caller", "Алло")], outcome="hangup", end_reason="weird_vendor_code")
    odd_page = admin_client.get(f"/logs-ui/calls/{odd}").get_data(as_text=True)
    assert "(другая причина)" in odd_page and "weird_vendor_code" not in odd_page


def test_analytics_counts_each_outcome_with_a_link_to_its_calls(app, admin_client):
    make_outcome_calls(app)
    html = admin_client.get("/logs-ui/analytics").get_data(as_text=True)
    assert "просили оператора, перевод недоступен (1)" in html
    assert 'data-stat="no_operator"><span class="stat-value">12,5 %' in html  # 1 of 8 calls
    for outcome in [*CALLS, "unanswered"]:
        assert f'<li data-outcome="{outcome}"><a href="/logs-ui/?outcome={outcome}&amp;date_from=' in html, outcome


# --- in the browser ---------------------------------------------------------------------------

def test_the_outcome_filter_and_sorting_in_chromium(live_server, page, browser):
    app = live_server.app
    make_admin(app)
    ids = make_outcome_calls(app)
    sign_in_browser(page, live_server.url, ADMIN, PASSWORD)
    page.wait_for_url("**/logs-ui/")
    assert page.locator("tr.call-row").count() == 8
    for outcome in [*CALLS, "unanswered"]:
        page.select_option("select[name=outcome]", outcome)
        page.click("button:has-text('Найти')")
        page.wait_for_url(f"**outcome={outcome}*")
        rows = page.locator("tr.call-row")
        assert [r.get_attribute("data-call-id") for r in rows.all()] == [str(i) for i in expected(ids, outcome)]
        if outcome != "unanswered":
            assert rows.first.locator(".badge").inner_text() == OUTCOME_TITLES[outcome]
    screenshot(page, "admin-outcome-filter")

    page.select_option("select[name=outcome]", "")
    page.select_option("select[name=sort]", "longest")
    page.click("button:has-text('Найти')")
    page.wait_for_url("**sort=longest*")
    assert page.locator("tr.call-row").first.get_attribute("data-call-id") == str(ids["transferred"])
    assert page.locator("tr.summary-row").count() == 7  # the summary under each call that has one
    screenshot(page, "admin-outcomes-sorted")

    # The CSV link exports what is listed.
    page.select_option("select[name=outcome]", "lost")
    page.click("button:has-text('Найти')")
    page.wait_for_url("**outcome=lost*")
    with page.expect_download() as info:
        page.click("a:has-text('Скачать CSV')")
    body = parse_csv(open(info.value.path(), "rb").read())[1:]
    assert {r[0] for r in body} == {str(ids["lost"])}

    page.goto(f"{live_server.url}/logs-ui/analytics")
    page.click("li[data-outcome=no_operator] a")
    page.wait_for_url("**outcome=no_operator*")
    assert [r.get_attribute("data-call-id") for r in page.locator("tr.call-row").all()] == [str(ids["no_operator"])]
    page.goto(f"{live_server.url}/logs-ui/analytics")
    screenshot(page, "admin-analytics-outcomes")

    with phone_tab(browser, live_server.url, ADMIN, PASSWORD) as tab:
        tab.goto(f"{live_server.url}/logs-ui/?outcome=no_operator")
        assert tab.locator("tr.call-row").count() == 1
        assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # no sideways scroll
        screenshot(tab, "admin-outcome-filter-phone")
        tab.goto(f"{live_server.url}/logs-ui/analytics")
        screenshot(tab, "admin-analytics-outcomes-phone")
