"""Out-of-range inputs answer a page, never a 500 (issue #13): huge page numbers and ids,
dates from year 1 to year 9999, on the call list, the search, analytics and the CSV
export, whose stream must not break off mid-response. SQLite and PostgreSQL."""
import csv
import io
import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from .support.admin_data import ADMIN, PASSWORD, csrf_token, make_admin, make_call

HUGE = "99999999999999999999"
EXTREME_DATES = {"date_from": "0001-01-01", "date_to": "9999-12-31"}


@pytest.fixture
def two_calls(app):
    old = make_call(app, datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc), [("caller", "Доставка в Казань?"),
                                                                          ("bot", "Да, доставляем.")])
    new = make_call(app, None, [("caller", "Сколько стоит доставка?"), ("bot", "Бесплатно.")])
    return old, new


def call_ids(html: str) -> set[int]:
    return {int(i) for i in re.findall(r"/logs-ui/calls/(\d+)", html)}


@pytest.mark.parametrize("query", [
    {"page": HUGE}, {"page": "-" + HUGE}, {"page": "abc"}, {"page": "1e9"},
    {"page": HUGE, "q": "доставка"},
    {**EXTREME_DATES, "page": HUGE},
])
def test_call_list_never_fails_on_a_page_number(admin_client, two_calls, query):
    response = admin_client.get("/logs-ui/", query_string=query, follow_redirects=True)
    assert response.status_code == 200
    assert call_ids(response.get_data(as_text=True))  # the last page, not an empty one


def test_a_page_past_the_end_goes_to_the_last_page(admin_client, two_calls):
    response = admin_client.get("/logs-ui/", query_string={"page": "7", "q": "доставка"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/logs-ui/?q=%D0%B4%D0%BE%D1%81%D1%82%D0%B0%D0%B2%D0%BA%D0%B0"
    response = admin_client.get("/logs-ui/", query_string={"page": HUGE, **EXTREME_DATES}, follow_redirects=True)
    assert call_ids(response.get_data(as_text=True)) == set(two_calls)


def test_extreme_dates_mean_everything(admin_client, two_calls):
    for extra in ({}, {"q": "доставка"}):
        response = admin_client.get("/logs-ui/", query_string={**EXTREME_DATES, **extra})
        assert response.status_code == 200
        assert call_ids(response.get_data(as_text=True)) == set(two_calls)


@pytest.mark.parametrize("query", [{"date_from": "9999-12-31"}, {"date_to": "0001-01-01"},
                                   {"date_from": "9999-12-30", "date_to": "9999-12-31", "q": "доставка"}])
def test_dates_beyond_any_call_find_nothing(admin_client, two_calls, query):
    response = admin_client.get("/logs-ui/", query_string=query)
    assert response.status_code == 200
    assert call_ids(response.get_data(as_text=True)) == set()


def _csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))


@pytest.mark.parametrize("extra", [{}, {"q": "доставка"}])
def test_export_with_extreme_dates_is_complete(admin_client, two_calls, extra):
    response = admin_client.get("/logs-ui/export.csv", query_string={**EXTREME_DATES, **extra, "page": HUGE})
    assert response.status_code == 200
    rows = _csv_rows(response.get_data())  # reading the stream to its end raises if it breaks off
    assert len(rows) == 1 + 4  # header and two turns of each call
    assert {int(r[0]) for r in rows[1:]} == set(two_calls)


def test_analytics_with_extreme_dates(admin_client, two_calls):
    for query in (EXTREME_DATES, {"date_to": "0001-01-01"}, {"date_from": "9999-12-31"},
                  {"date_from": "0001-01-01"}, {"date_to": "9999-12-31"}):
        assert admin_client.get("/logs-ui/analytics", query_string=query).status_code == 200, query


def test_huge_ids_are_not_found_rather_than_errors(admin_client):
    for path in (f"/logs-ui/calls/{HUGE}", f"/logs-ui/calls/{2**31}", f"/logs-ui/kb/versions/{HUGE}/status",
                 f"/logs-ui/kb/versions/{HUGE}/file"):
        assert admin_client.get(path).status_code == 404, path
    assert admin_client.get(f"/logs-ui/calls/{2**31 - 1}").status_code == 404
    token = csrf_token(admin_client.get("/logs-ui/kb").get_data(as_text=True))
    for path in (f"/logs-ui/kb/versions/{HUGE}/activate", f"/logs-ui/settings/versions/{HUGE}/restore"):
        assert admin_client.post(path, data={"csrf_token": token}).status_code == 404, path
    for upload in (HUGE, "١٢", "-1"):
        assert admin_client.get("/logs-ui/kb", query_string={"upload": upload}).status_code == 200


@pytest.mark.timeout(120)
def test_served_export_stream_ends_properly(live_server):
    """Under gunicorn: the whole CSV arrives, the chunked stream closes cleanly."""
    make_admin(live_server.app)
    for i in range(3):
        make_call(live_server.app, datetime.now(timezone.utc) - timedelta(days=i), [("caller", f"Вопрос {i}")])
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        token = csrf_token(client.get("/logs-ui/login").text)
        assert client.post("/logs-ui/login", data={"username": ADMIN, "password": PASSWORD,
                                                   "csrf_token": token}).status_code == 302
        response = client.get("/logs-ui/export.csv", params={**EXTREME_DATES, "page": HUGE})
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
        rows = _csv_rows(response.content)
        assert len(rows) == 4
        page = client.get("/logs-ui/", params={**EXTREME_DATES, "page": HUGE}, follow_redirects=True)
        assert page.status_code == 200 and len(call_ids(page.text)) == 3
