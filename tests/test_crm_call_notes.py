"""CRM write-back (issue 15, point 5): after a call whose caller the CRM knew, a note with the
summary on the caller's card — Bitrix24 `crm.timeline.comment.add`, amoCRM
`POST /api/v4/{contacts|companies}/{id}/notes` — from the webhook's durable outbox, retried, never
delaying the call. The local fake CRM (tests/support/fake_crm.py) answers as the documented APIs."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from metrotest_bot.extensions import db
from metrotest_bot.models import WEBHOOK_PENDING, CallWebhook
from metrotest_bot.reports import finalize_call
from metrotest_bot.reports.webhook import sender

from .support.admin_data import make_call
from .support.apps import dispose, make_app
from .support.call_log import eventually, finished_call
from .support.fake_crm import AMO_TOKEN, BITRIX_CONTACT_PHONE, SECRET
from .support.live_server import serving
from .support.ws_client import CallClient

pytestmark = pytest.mark.timeout(180)

QUESTION = "Сколько стоит доставка?"
TURNS = [("caller", QUESTION), {"role": "bot", "text": "Доставка — 1 500 рублей.", "question": QUESTION,
                                "answered": True}]
SUMMARY = f"Вопросы (1): «{QUESTION}» — ответ дан. Итог: завершён."


@pytest.fixture
def crm_app(tmp_path, database_url, fake_crm, request):
    kind = getattr(request, "param", "bitrix24")
    app = make_app(tmp_path / "data", database_url, CALL_WEBHOOK_RETRY_BASE=0.0, **fake_crm.settings(kind))
    yield app
    sender(app).stop()
    dispose(app)


def finish(app, **fields) -> int:
    cid = make_call(app, turns=TURNS, caller="+79123456789", **fields)
    with app.app_context():
        queued = finalize_call(db.session, cid, app.config)
        db.session.commit()
    sender(app).stop()  # the test delivers by hand, step by step
    return cid if queued else None


def outbox(app) -> list:
    with app.app_context():
        return [(r.target, r.status, r.attempts, r.last_error) for r in db.session.scalars(select(CallWebhook))]


def test_bitrix24_gets_a_timeline_comment_on_the_contact(crm_app, fake_crm):
    cid = finish(crm_app, crm_data={"source": "bitrix24", "raw": {"contact_id": "43", "company_id": "12"}},
                 duration_s=132.0)
    assert cid and outbox(crm_app) == [("crm", WEBHOOK_PENDING, 0, None)]
    sender(crm_app).deliver_due()
    [note] = fake_crm.notes
    assert (note["crm"], note["entity"], note["id"]) == ("bitrix24", "contact", 43)
    assert note["text"].startswith("Звонок голосовому помощнику ") and ", 2 мин 12 с, номер +79123456789." in note["text"]
    assert "Итог: завершён." in note["text"] and note["text"].endswith(SUMMARY)
    [(method, path, _, body, _)] = fake_crm.calls("crm.timeline.comment.add")
    assert method == "POST" and path == f"/rest/1/{SECRET}/crm.timeline.comment.add"
    assert set(body["fields"]) == {"ENTITY_ID", "ENTITY_TYPE", "COMMENT"}
    assert outbox(crm_app) == []  # delivered notes leave the outbox


@pytest.mark.parametrize("crm_app", ["amocrm"], indirect=True)
def test_amocrm_gets_a_common_note_on_the_contact(crm_app, fake_crm):
    assert finish(crm_app, crm_data={"source": "amocrm", "raw": {"contact_id": 403181}})
    sender(crm_app).deliver_due()
    [note] = fake_crm.notes
    assert (note["crm"], note["entity"], note["id"]) == ("amocrm", "contact", 403181)
    assert note["text"].endswith(SUMMARY)
    [(method, path, _, body, headers)] = fake_crm.calls("/notes")
    assert (method, path) == ("POST", "/api/v4/contacts/403181/notes")
    assert body == [{"note_type": "common", "params": {"text": note["text"]}}]
    assert headers["Authorization"] == f"Bearer {AMO_TOKEN}"


def test_a_failing_crm_gets_the_note_again_later(crm_app, fake_crm):
    fake_crm.mode = "error500"
    assert finish(crm_app, crm_data={"source": "bitrix24", "raw": {"contact_id": "43"}})
    assert sender(crm_app).deliver_due() == 0
    [(target, status, attempts, error)] = outbox(crm_app)
    assert (target, status, attempts) == ("crm", WEBHOOK_PENDING, 1) and error.startswith("HTTP 500")
    fake_crm.mode = "ok"
    assert sender(crm_app).deliver_due() == 1
    assert len(fake_crm.notes) == 1 and outbox(crm_app) == []


def test_a_card_the_crm_does_not_have_is_an_error_kept_for_the_admin(crm_app, fake_crm):
    assert finish(crm_app, crm_data={"source": "bitrix24", "raw": {"contact_id": "999"}})
    sender(crm_app).deliver_due()
    [(_, _, _, error)] = outbox(crm_app)
    assert "Not found" in error and fake_crm.notes == []


def test_unknown_callers_and_the_generic_webhook_leave_no_note(crm_app, fake_crm, tmp_path, database_url):
    assert finish(crm_app) is None  # no card found at setup
    other = make_app(tmp_path / "w", database_url, **fake_crm.settings("webhook"))
    try:
        assert finish(other, crm_data={"source": "webhook", "raw": {"phone": "+79035556677"}}) is None
    finally:
        dispose(other)
    off = make_app(tmp_path / "off", database_url, CRM_CALL_NOTES=False, **fake_crm.settings("bitrix24"))
    try:
        assert finish(off, crm_data={"source": "bitrix24", "raw": {"contact_id": "43"}}) is None
    finally:
        dispose(off)
    assert outbox(crm_app) == [] and fake_crm.notes == []


# --- served: a real call from a known Bitrix24 contact, the LLM wording the summary ------------

def test_served_a_known_callers_call_ends_at_once_and_leaves_the_models_summary_on_the_card(
        tmp_path_factory, fake_crm, fake_openai):
    summary = "Иван Петрович спросил о стоимости доставки и получил ответ."
    fake_openai.reply = lambda body: "Доставка стоит полторы тысячи рублей." if body.get("stream") else summary
    with serving(tmp_path_factory.mktemp("crm-notes"), OPENAI_API_KEY="sk-local", LLM_MODEL="local-model",
                 OPENAI_BASE_URL=fake_openai.base_url, **fake_crm.settings("bitrix24")) as srv:
        call = CallClient.connect(srv)
        try:
            call.setup(caller=BITRIX_CONTACT_PHONE)
            call.ask(QUESTION)
            fake_crm.delay = 3  # a slow CRM from now on: the call's end does not wait for it
            started = time.monotonic()
            call.hangup(reason="caller_hangup")
            call.expect_closed()
            assert time.monotonic() - started < 1.0
        finally:
            call.close()
        snap = finished_call(srv, call.call_id)
        assert snap.crm_data["raw"]["contact_id"] == "43"
        [note] = eventually(lambda: fake_crm.notes, timeout=20)
        assert (note["entity"], note["id"]) == ("contact", 43) and note["text"].endswith(summary)
        assert "Итог: абонент положил трубку." in note["text"]
