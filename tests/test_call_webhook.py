"""The end-of-call webhook: a real call on the served app (gunicorn, gevent), its report POSTed to a
local HTTP server, signed; retried with backoff when that server fails; never delaying the call."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from metrotest_bot.extensions import db
from metrotest_bot.models import WEBHOOK_FAILED, WEBHOOK_PENDING, CallWebhook
from metrotest_bot.reports import finalize_call
from metrotest_bot.reports.webhook import backoff_s, sender, signature

from .support.admin_data import make_call
from .support.apps import dispose, make_app
from .support.call_log import eventually, finished_call
from .support.live_server import serving
from .support.ws_client import CallClient

pytestmark = pytest.mark.timeout(180)

SECRET = "hook-secret-ключ"
RETRY_BASE = 0.3
ANSWERED_QUESTION = "Сколько стоит доставка?"
UNANSWERED_QUESTION = "Какая сейчас погода на Марсе?"
CALLER, DIALLED = "+79120000777", "+73430000000"


def valid_signature(received) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(received.headers.get("X-Metrotest-Signature", ""), expected)


@pytest.fixture(scope="module")
def server(tmp_path_factory, webhook_receiver_server):
    with serving(tmp_path_factory.mktemp("call-webhook"), OPERATOR_PHONE=None,
                 CALL_WEBHOOK_URL=webhook_receiver_server.url + "/hooks/calls", CALL_WEBHOOK_SECRET=SECRET,
                 CALL_WEBHOOK_RETRY_BASE=RETRY_BASE, CALL_WEBHOOK_POLL=1) as srv:
        yield srv


def outbox_rows(server) -> list:
    with server.app.app_context():
        try:
            return [(r.call_id, r.status, r.attempts, r.last_error) for r in db.session.scalars(select(CallWebhook))]
        finally:
            db.session.remove()


def make_ws_call(server, *questions, hangup=True) -> str:
    call = CallClient.connect(server)
    try:
        call.setup(caller=CALLER, dialled=DIALLED)
        for q in questions:
            call.ask(q)
        if hangup:
            call.hangup(reason="caller_hangup")
            call.expect_closed()
    finally:
        call.close()
    return call.call_id


def test_a_finished_call_is_posted_signed_with_its_summary(server, webhook_receiver):
    vox_id = make_ws_call(server, ANSWERED_QUESTION, UNANSWERED_QUESTION)
    snap = finished_call(server, vox_id)
    got = eventually(webhook_receiver.delivered, timeout=15)
    assert len(got) == 1 and got[0].path == "/hooks/calls"
    hook = got[0]
    assert valid_signature(hook), hook.headers
    assert hook.headers["Content-Type"].startswith("application/json")
    body = hook.json()
    assert (body["callId"], body["from"], body["to"], body["outcome"]) == (vox_id, CALLER, DIALLED, "hangup")
    started = datetime.fromisoformat(body["startedAt"].replace("Z", "+00:00"))
    ended = datetime.fromisoformat(body["endedAt"].replace("Z", "+00:00"))
    assert started.tzinfo is not None and timedelta(0) < ended - started < timedelta(seconds=60)

    # The summary is extractive: each question, answered or not, and the outcome; stored with the call.
    assert body["summary"] == snap.summary
    assert f"«{ANSWERED_QUESTION}» — ответ дан" in body["summary"]
    assert f"«{UNANSWERED_QUESTION}» — нет ответа в базе знаний" in body["summary"]
    assert body["summary"].endswith("Итог: абонент положил трубку.")

    turns = body["turns"]
    assert [(t["role"], t["text"]) for t in turns[1:4:2]] == [("caller", ANSWERED_QUESTION),
                                                              ("caller", UNANSWERED_QUESTION)]
    answers = [t for t in turns if t["kind"] == "answer"]
    assert [a["answered"] for a in answers] == [True, False] and all(a["text"] for a in answers)
    assert turns[0]["kind"] == "greeting" and turns[0]["answered"] is None
    assert len(turns) == len(snap.turns)
    eventually(lambda: outbox_rows(server) == [], timeout=5)  # delivered reports leave the outbox


def test_a_receiver_failing_with_500_gets_the_report_again_with_backoff(server, webhook_receiver):
    webhook_receiver.fail_next = 2
    vox_id = make_ws_call(server, ANSWERED_QUESTION)
    finished_call(server, vox_id)
    eventually(webhook_receiver.delivered, timeout=20)
    tries = webhook_receiver.requests
    assert [r.status for r in tries] == [500, 500, 200]
    assert len({r.body for r in tries}) == 1 and all(valid_signature(r) for r in tries)  # the same signed report
    assert tries[0].json()["callId"] == vox_id
    first_gap, second_gap = tries[1].at - tries[0].at, tries[2].at - tries[1].at
    assert first_gap >= RETRY_BASE * 0.9 and second_gap >= 2 * RETRY_BASE * 0.9  # exponential backoff
    eventually(lambda: outbox_rows(server) == [], timeout=5)


def test_a_dead_receiver_never_delays_the_call_and_gets_the_report_when_back(server, webhook_receiver):
    webhook_receiver.stop()  # connection refused from now on
    try:
        started = time.monotonic()
        vox_id = make_ws_call(server, ANSWERED_QUESTION)
        snap = finished_call(server, vox_id)
        assert time.monotonic() - started < 10  # the call ends as usual
        assert snap.summary and "ответ дан" in snap.summary
        # The report waits in the durable outbox, retried and with its last error.
        rows = eventually(lambda: [r for r in outbox_rows(server) if r[2] >= 2], timeout=10)
        assert rows[0][0] == snap.id and rows[0][1] == WEBHOOK_PENDING and rows[0][3]
        health = json.load(urllib.request.urlopen(server.url + "/healthz", timeout=10))
        assert health["call_webhook"] == {"pending": 1, "failed": 0}
    finally:
        webhook_receiver.start()
    got = eventually(webhook_receiver.delivered, timeout=20)
    assert got[0].json()["callId"] == vox_id and valid_signature(got[0])
    eventually(lambda: outbox_rows(server) == [], timeout=5)


def test_a_caller_who_asked_for_a_person_without_an_operator_number_is_reported_as_such(server, webhook_receiver):
    call = CallClient.connect(server)
    try:
        call.setup(caller=CALLER)
        call.prompt("соедините с оператором")
        call.answer()  # the no-operator phrase: how to reach the office
        call.hangup(reason="caller_hangup")
        call.expect_closed()
    finally:
        call.close()
    snap = finished_call(server, call.call_id)
    assert snap.outcome == "no_operator"
    body = eventually(webhook_receiver.delivered, timeout=15)[0].json()
    assert body["outcome"] == "no_operator"
    assert body["summary"] == "Вопросов не было. Итог: просил оператора, перевод недоступен."


# --- the outbox in process: no URL, giving up, backoff ---------------------------------------

@pytest.fixture
def hook_app(tmp_path, database_url, webhook_receiver):
    app = make_app(tmp_path / "data", database_url, CALL_WEBHOOK_URL=webhook_receiver.url + "/h",
                   CALL_WEBHOOK_SECRET=SECRET, CALL_WEBHOOK_RETRY_BASE=0.0, CALL_WEBHOOK_MAX_ATTEMPTS=3)
    yield app
    sender(app).stop()
    dispose(app)


def finish(app, call_id) -> bool:
    with app.app_context():
        queued = finalize_call(db.session, call_id, app.config)
        db.session.commit()
        return queued


def test_without_a_url_nothing_is_queued_but_the_summary_is_stored(app):
    cid = make_call(app, turns=[("caller", "Где вы находитесь?"),
                                {"role": "bot", "text": "Екатеринбург.", "question": "Где вы находитесь?",
                                 "answered": True}])
    assert finish(app, cid) is False
    with app.app_context():
        assert db.session.scalars(select(CallWebhook)).all() == []
        from metrotest_bot.models import Call

        assert db.session.get(Call, cid).summary == (
            "Вопросы (1): «Где вы находитесь?» — ответ дан. Итог: завершён.")


def test_a_report_is_given_up_after_the_last_attempt(hook_app, webhook_receiver):
    webhook_receiver.fail_next = 10
    cid = make_call(hook_app, turns=[("caller", "Алло")])
    assert finish(hook_app, cid) is True
    s = sender(hook_app)
    for _ in range(3):
        assert s.deliver_due() == 0
    assert [r.status for r in webhook_receiver.requests] == [500, 500, 500]
    with hook_app.app_context():
        row = db.session.scalar(select(CallWebhook))
        assert (row.status, row.attempts, row.last_error) == (WEBHOOK_FAILED, 3, "HTTP 500")
    assert s.deliver_due() == 0 and len(webhook_receiver.requests) == 3  # given up: no more tries
    assert hook_app.test_client().get("/healthz").get_json()["call_webhook"] == {"pending": 0, "failed": 1}


def test_two_senders_never_deliver_one_report_twice(hook_app, webhook_receiver, tmp_path, database_url):
    """Workers and machines share the outbox: a row is claimed by one of them per attempt."""
    other = make_app(tmp_path / "other", database_url, CALL_WEBHOOK_URL=hook_app.config["CALL_WEBHOOK_URL"],
                     CALL_WEBHOOK_SECRET=SECRET)
    try:
        ids = [make_call(hook_app, turns=[("caller", f"вопрос {i}")]) for i in range(6)]
        for cid in ids:
            finish(hook_app, cid)
        import threading

        results = []
        threads = [threading.Thread(target=lambda a=a: results.append(sender(a).deliver_due()))
                   for a in (hook_app, other)]
        [t.start() for t in threads]
        [t.join(30) for t in threads]
        assert sum(results) == 6
        got = sorted(r.json()["logId"] for r in webhook_receiver.delivered())
        assert got == sorted(ids)
    finally:
        dispose(other)


def test_backoff_doubles_up_to_its_cap():
    assert [backoff_s(n, 5, 60) for n in (1, 2, 3, 4, 5, 6)] == [5, 10, 20, 40, 60, 60]
    assert signature("k", b"{}") == "sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
