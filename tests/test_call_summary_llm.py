"""The post-call summary worded by the LLM when one is configured (issue 15, point 5).

The real `openai` client against the local OpenAI-compatible server: the summary comes from the
model after the call, the webhook carries it; on a model error, a timeout or an empty answer the
extractive summary stays. On the served app (gunicorn, gevent): the call never waits for it.
"""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from metrotest_bot.extensions import db
from metrotest_bot.models import Call, CallWebhook
from metrotest_bot.reports import finalize_call, llm_summary
from metrotest_bot.reports.webhook import sender
from metrotest_bot.timeutil import utcnow

from .support.admin_data import make_admin, make_call, sign_in
from .support.apps import llm_app_context
from .support.call_log import eventually, finished_call
from .support.live_server import serving
from .support.ws_client import CallClient

pytestmark = pytest.mark.timeout(180)

MODEL_SUMMARY = "Абонент спросил о стоимости доставки и получил ответ; звонок завершён."
QUESTION = "Сколько стоит доставка?"
EXTRACTIVE = f"Вопросы (1): «{QUESTION}» — ответ дан. Итог: завершён."


@pytest.fixture
def llm_app(tmp_path, database_url, fake_openai, webhook_receiver):
    with llm_app_context(tmp_path / "data", database_url, fake_openai, CALL_SUMMARY_TIMEOUT=0.5,
                         CALL_WEBHOOK_URL=webhook_receiver.url + "/h", CALL_WEBHOOK_RETRY_BASE=0.0) as app:
        yield app
        llm_summary.summarizer(app).stop()
        sender(app).stop()


def ended_call(app) -> int:
    cid = make_call(app, turns=[("caller", QUESTION),
                                {"role": "bot", "text": "Доставка по Екатеринбургу — 1 500 рублей.",
                                 "question": QUESTION, "answered": True}])
    with app.app_context():
        assert finalize_call(db.session, cid, app.config) is True  # work after the commit: wake
        db.session.commit()
    return cid


def state(app, cid):
    with app.app_context():
        call = db.session.get(Call, cid)
        hooks = db.session.scalars(select(CallWebhook).where(CallWebhook.call_id == cid)).all()
        return call.summary, call.summary_source, len(hooks)


def summary_requests(fake_openai) -> list[dict]:
    return [r for r in fake_openai.requests if not r.get("stream")]


def test_the_summary_comes_from_the_model_and_the_webhook_carries_it(llm_app, fake_openai, webhook_receiver):
    fake_openai.answer = MODEL_SUMMARY
    cid = ended_call(llm_app)
    # At the call's end: the extractive summary, the model's pending, the webhook waiting for it.
    assert state(llm_app, cid) == (EXTRACTIVE, "pending", 0)

    assert llm_summary.summarizer(llm_app).summarize_due() == 1
    assert state(llm_app, cid)[:2] == (MODEL_SUMMARY, "llm")
    [request] = summary_requests(fake_openai)
    assert request["model"] == "local-model" and request["max_tokens"] <= 200
    system, user = request["messages"]
    assert "одно-два коротких предложения" in system["content"] and "по-русски" in system["content"]
    assert f"Абонент: {QUESTION}" in user["content"] and "Итог звонка: завершён." in user["content"]

    [hook] = eventually(webhook_receiver.delivered)  # queued with the summary, and the sender woken
    assert hook.json()["summary"] == MODEL_SUMMARY and hook.json()["logId"] == cid
    assert llm_summary.summarizer(llm_app).summarize_due() == 0  # nothing left


@pytest.mark.parametrize("trouble", ["error500", "hang", "empty", "no_answer_marker"])
def test_on_any_model_failure_the_extractive_summary_stays(llm_app, fake_openai, webhook_receiver, trouble):
    if trouble in ("error500", "hang"):
        fake_openai.mode = trouble
    else:
        fake_openai.answer = "" if trouble == "empty" else "НЕТ_ОТВЕТА"
    cid = ended_call(llm_app)
    started = time.monotonic()
    assert llm_summary.summarizer(llm_app).summarize_due() == 1
    assert time.monotonic() - started < 3  # CALL_SUMMARY_TIMEOUT=0.5 bounds a hanging model
    assert state(llm_app, cid)[:2] == (EXTRACTIVE, "extractive")
    assert len(summary_requests(fake_openai)) == 1  # no retries
    assert eventually(webhook_receiver.delivered)[0].json()["summary"] == EXTRACTIVE


def test_a_long_answer_is_cut_at_a_sentence(llm_app, fake_openai):
    fake_openai.answer = ("Абонент спросил о доставке. " * 30).strip()
    cid = ended_call(llm_app)
    llm_summary.summarizer(llm_app).summarize_due()
    summary, source, _ = state(llm_app, cid)
    assert source == "llm" and len(summary) <= llm_summary.MAX_CHARS and summary.endswith("доставке.")


def two_workers_summarize(llm_app, tmp_path, database_url, fake_openai) -> list[int]:
    """Two workers (apps on one database) look for due summaries at the same moment: what each handled."""
    with llm_app_context(tmp_path / "other", database_url, fake_openai,
                         CALL_WEBHOOK_URL=llm_app.config["CALL_WEBHOOK_URL"]) as other:
        done = []
        threads = [threading.Thread(target=lambda a=a: done.append(llm_summary.summarizer(a).summarize_due()))
                   for a in (llm_app, other)]
        [t.start() for t in threads]
        [t.join(30) for t in threads]
    return done


def test_two_workers_summarize_a_call_once(llm_app, fake_openai, tmp_path, database_url, webhook_receiver):
    fake_openai.answer = MODEL_SUMMARY
    fake_openai.first_token_delay = 0.2  # both workers look while the first is still waiting for the model
    llm_app.config["CALL_SUMMARY_TIMEOUT"] = 5  # about claiming a call once, not the timeout: no 0.3 s margin
    cids = [ended_call(llm_app) for _ in range(3)]
    done = two_workers_summarize(llm_app, tmp_path, database_url, fake_openai)
    assert sum(done) == 3 and len(summary_requests(fake_openai)) == 3
    assert [state(llm_app, c)[:2] for c in cids] == [(MODEL_SUMMARY, "llm")] * 3
    hooks = eventually(lambda: len(webhook_receiver.delivered()) >= 3 and webhook_receiver.delivered())
    assert sorted(h.json()["logId"] for h in hooks) == cids  # each call's report queued once


def test_a_call_that_ended_long_ago_is_summarized_once(llm_app, fake_openai, tmp_path, database_url,
                                                      webhook_receiver):
    """Closed by the abandoned-call sweep, or replayed from a spool: it ended minutes ago, but a claim
    made now is fresh — a second worker must not take it again, nor queue its report twice."""
    fake_openai.answer = MODEL_SUMMARY
    fake_openai.first_token_delay = 0.3
    llm_app.config["CALL_SUMMARY_TIMEOUT"] = 5  # about claiming a call once, not the timeout
    cid = ended_call(llm_app)
    with llm_app.app_context():
        db.session.execute(update(Call).where(Call.id == cid).values(ended_at=utcnow() - timedelta(minutes=20)))
        db.session.commit()
    done = two_workers_summarize(llm_app, tmp_path, database_url, fake_openai)
    assert sum(done) == 1 and len(summary_requests(fake_openai)) == 1
    assert state(llm_app, cid)[:2] == (MODEL_SUMMARY, "llm")
    hooks = eventually(lambda: webhook_receiver.delivered())
    time.sleep(0.5)  # a second report, were one queued, would be on its way by now
    assert [h.json()["logId"] for h in webhook_receiver.delivered()] == [cid] == [h.json()["logId"] for h in hooks]


def test_a_claim_whose_worker_died_is_taken_again(llm_app, fake_openai):
    fake_openai.answer = MODEL_SUMMARY
    cid = ended_call(llm_app)
    with llm_app.app_context():
        db.session.execute(update(Call).where(Call.id == cid).values(summary_source="working",
                                                                     summary_claimed_at=utcnow()))
        db.session.commit()
    assert llm_summary.summarizer(llm_app).summarize_due() == 0  # a fresh claim: its worker is at it
    with llm_app.app_context():
        db.session.execute(update(Call).where(Call.id == cid).values(
            summary_claimed_at=utcnow() - timedelta(minutes=6)))
        db.session.commit()
    assert llm_summary.summarizer(llm_app).summarize_due() == 1  # claimed 5 minutes ago: its worker died
    assert state(llm_app, cid)[:2] == (MODEL_SUMMARY, "llm")


def test_without_an_llm_or_with_it_switched_off_the_summary_is_extractive_at_once(
        tmp_path, database_url, fake_openai, app):
    with llm_app_context(tmp_path / "off", database_url, fake_openai, CALL_SUMMARY_LLM=False) as off:
        for each in (app, off):
            cid = make_call(each, turns=[("caller", QUESTION), {"role": "bot", "text": "1 500 рублей.",
                                                                "question": QUESTION, "answered": True}])
            with each.app_context():
                assert finalize_call(db.session, cid, each.config) is False
                db.session.commit()
            assert state(each, cid) == (EXTRACTIVE, "extractive", 0)
    assert fake_openai.requests == []


# --- served: gunicorn with the gevent worker, a real call -------------------------------------

def test_served_the_call_ends_at_once_and_the_model_summary_reaches_list_and_webhook(
        tmp_path_factory, fake_openai, webhook_receiver):
    def reply(body):
        if body.get("stream"):
            return "Доставка по Екатеринбургу стоит полторы тысячи рублей."
        if slow_summary.is_set():
            time.sleep(4)  # past CALL_SUMMARY_TIMEOUT
        return MODEL_SUMMARY

    slow_summary = threading.Event()
    fake_openai.reply = reply
    with serving(tmp_path_factory.mktemp("summary-llm"), OPENAI_API_KEY="sk-local", OPENAI_BASE_URL=fake_openai.base_url,
                 LLM_MODEL="local-model", CALL_SUMMARY_TIMEOUT=1, CALL_WEBHOOK_URL=webhook_receiver.url + "/h",
                 CALL_WEBHOOK_SECRET="s", CALL_WEBHOOK_POLL=1) as srv:
        vox_ids = []
        for slow in (False, True):
            if slow:
                slow_summary.set()
            call = CallClient.connect(srv)
            try:
                call.setup(caller="+79120000777")
                call.ask(QUESTION)
                started = time.monotonic()
                call.hangup(reason="caller_hangup")
                call.expect_closed()
                assert time.monotonic() - started < 1.0  # the model's summary is no part of the call
            finally:
                call.close()
            vox_ids.append(call.call_id)
            eventually(lambda: finished_call(srv, call.call_id).summary_source in ("llm", "extractive"), 15)

        fast, slow = (finished_call(srv, v) for v in vox_ids)
        assert (fast.summary, fast.summary_source, slow.summary_source) == (MODEL_SUMMARY, "llm", "extractive")
        hooks = eventually(lambda: len(webhook_receiver.delivered()) == 2 and webhook_receiver.delivered(), 15)
        by_call = {h.json()["callId"]: h.json()["summary"] for h in hooks}
        assert by_call[fast.vox_call_id] == MODEL_SUMMARY
        assert by_call[slow.vox_call_id].startswith(f"Вопросы (1): «{QUESTION}» — ответ дан.")  # timed out

        make_admin(srv.app)
        admin = srv.app.test_client()
        assert sign_in(admin).status_code == 302
        assert MODEL_SUMMARY in admin.get("/logs-ui/").get_data(as_text=True)
        csv = admin.get("/logs-ui/export.csv").get_data(as_text=True)
        assert MODEL_SUMMARY in csv
