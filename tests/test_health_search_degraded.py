"""/healthz and the call list say when the transcript search is degraded.

Elasticsearch is the local fake at the network boundary, answering 503 or
refusing connections; calls are written by the call log's own code.
"""
import pytest

from metrotest_bot.voice.calllog import CallLog

from .support.admin_data import make_admin, sign_in
from .support.call_log import eventually

NOTICE = "Поиск по Elasticsearch недоступен, результаты из базы данных"


@pytest.fixture
def app(es_app):
    return es_app


def log_call(app) -> int:
    log = CallLog(app)
    log.start(vox_call_id="vox-1", vox_session_id="s-1", caller="+79120000000", dialled="+73430000000")
    log.caller_turn("Сколько стоит доставка в Казань?", seq=log.next_seq())
    log.finish("completed")
    assert log.flush()
    return log.call_id


def health(app) -> dict:
    response = app.test_client().get("/healthz")
    body = response.get_json()
    assert body["search_backend"] == "elasticsearch" and body["llm_mode"] == "offline"
    # The probe's verdict is the KB's and the database's, never the transcript search's: calls are
    # answered and the panel works on SQL. (The fake serves no KB index, hence 503 here.)
    assert (response.status_code, body["status"]) == ((200, "ok") if body["kb_passages"] else (503, "degraded"))
    assert body["checks"] == {"database": "ok"}
    return body["transcript_search"]


def calls_page(client, q: str) -> str:
    response = client.get("/logs-ui/", query_string={"q": q} if q else None)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize("outage", ["unavailable", "refuse"])
def test_healthz_and_the_call_list_report_a_degraded_search(app, fake_elasticsearch, outage):
    call_id = log_call(app)
    eventually(lambda: health(app) == {"backend": "elasticsearch", "degraded": False, "outbox_pending": 0,
                                       "outbox_last_error": None})
    make_admin(app)
    client = app.test_client()
    assert sign_in(client).status_code == 302
    html = calls_page(client, "казани")
    assert f"/logs-ui/calls/{call_id}" in html and NOTICE not in html

    fake_elasticsearch.set_mode(outage)
    # Found by asking Elasticsearch (at most check_every_s after the last answer), before any search
    # or write has failed.
    eventually(lambda: health(app)["degraded"], timeout=5)
    second = log_call(app)
    status = eventually(lambda: (s := health(app))["outbox_last_error"] and s)
    assert status["degraded"] is True and status["outbox_pending"] > 0
    if outage == "unavailable":
        assert "503" in status["outbox_last_error"]

    html = calls_page(client, "казани")
    assert NOTICE in html
    assert f"/logs-ui/calls/{call_id}" in html and f"/logs-ui/calls/{second}" in html  # from SQL, complete
    assert NOTICE not in calls_page(client, "")  # no search, nothing to say

    fake_elasticsearch.set_mode("ok")
    eventually(lambda: health(app) == {"backend": "elasticsearch", "degraded": False, "outbox_pending": 0,
                                       "outbox_last_error": None}, timeout=15)
    html = eventually(lambda: (h := calls_page(client, "казани")) and NOTICE not in h and h)
    assert f"/logs-ui/calls/{second}" in html
