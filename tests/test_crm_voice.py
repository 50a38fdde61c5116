"""Caller context end to end: a real WebSocket to gunicorn (gevent worker), a local fake CRM.

Known callers are greeted by name and transferred to their own manager, unknown
ones are greeted normally, a slow or dead CRM costs the greeting no more than
the budget, and the call log keeps what the CRM said.
"""
import json
import time
import uuid

import pytest
import websocket

from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.extensions import db
from metrotest_bot.models import Call
from tests.support.admin_data import make_admin, sign_in
from tests.support.fake_crm import (
    BITRIX_MANAGER_PHONE, SECRET_NOTE, UNKNOWN_PHONE, WEBHOOK_MANAGER_PHONE, WEBHOOK_PHONE,
)
from tests.support.live_server import free_port

pytestmark = pytest.mark.timeout(180)

OPERATOR = "+73430000000"
DEFAULT_GREETING = BotSettings().greeting


class Call_:
    """The scenario's side of one call: JSON text frames over a real WebSocket."""

    def __init__(self, server, timeout=15.0):
        self.ws = websocket.create_connection(f"{server.ws_url}?token={server.token}", subprotocols=["chat"],
                                              timeout=timeout)
        self.call_id = f"crm-{uuid.uuid4().hex[:10]}"
        self.frames = []

    def send(self, frame):
        self.ws.send(json.dumps(frame, ensure_ascii=False))

    def recv(self):
        frame = json.loads(self.ws.recv())
        self.frames.append(frame)
        return frame

    def setup(self, caller):
        """Send setup; return (greeting text, seconds until it arrived)."""
        started = time.monotonic()
        self.send({"type": "setup", "callId": self.call_id, "from": caller, "to": "+73432000000"})
        pieces = [self.recv()]
        while not pieces[-1].get("last"):  # the greeting comes a sentence a frame, as answers do
            pieces.append(self.recv())
        assert all(f["type"] == "text" and f["answerId"] == "greeting" for f in pieces), pieces
        return " ".join(f["text"] for f in pieces if f["text"]), time.monotonic() - started

    def until(self, predicate):
        while True:
            frame = self.recv()
            if predicate(frame):
                return frame

    def ask(self, text):
        self.send({"type": "prompt", "text": text, "last": True})
        return self.until(lambda f: f["type"] in ("text", "transfer", "end") and f.get("last", True))

    def press(self, digit):
        self.send({"type": "dtmf", "digit": digit})
        return self.until(lambda f: f["type"] in ("transfer", "end", "text"))

    def hangup(self):
        try:
            self.send({"type": "hangup", "reason": "test"})
            self.ws.close()
        except (OSError, websocket.WebSocketException):
            pass


def logged_call(server, vox_call_id, wait=10.0):
    """The call's row once the call is finished (the server finalizes it after hangup)."""
    deadline = time.monotonic() + wait
    with server.app.app_context():
        while True:
            call = db.session.execute(db.select(Call).where(Call.vox_call_id == vox_call_id)).scalar_one_or_none()
            if call is not None and (call.outcome != "in_progress" or time.monotonic() > deadline):
                db.session.expunge(call)
                return call
            db.session.remove()
            if time.monotonic() > deadline:
                return call
            time.sleep(0.1)


@pytest.fixture
def bitrix_server(live_server_factory, fake_crm, fake_openai):
    return live_server_factory(**fake_crm.settings("bitrix24"), OPERATOR_PHONE=OPERATOR,
                               OPENAI_API_KEY="sk-local-test", OPENAI_BASE_URL=fake_openai.base_url)


def test_known_caller_greeted_by_name_logged_and_sent_to_own_manager(bitrix_server, fake_crm, fake_openai):
    call = Call_(bitrix_server)
    greeting, _ = call.setup("79123456789")  # Voximplant's caller id comes without "+"
    assert greeting.startswith("Здравствуйте, Иван Петрович!")
    assert greeting.count("Здравствуйте") == 1
    assert "Метротест" in greeting  # the configured greeting follows

    # The LLM is told who is calling (company, manager), never the CRM's notes.
    answer = call.ask("Когда работает отдел продаж?")
    assert answer["type"] == "text"
    prompts = [json.dumps(r.get("messages"), ensure_ascii=False) for r in fake_openai.requests]
    assert prompts, f"the answer went through the LLM: {call.frames}"
    assert "ООО «УралСпецСтрой»" in prompts[-1] and "Анна Смирнова" in prompts[-1]
    assert "Иван Петрович" in prompts[-1] and "Сидоров" not in prompts[-1]  # addressed as in the greeting
    assert SECRET_NOTE not in prompts[-1]

    transfer = call.press("0")
    assert transfer["type"] == "transfer"
    assert transfer["to"] == BITRIX_MANAGER_PHONE  # the client's own manager, not the general operator
    call.hangup()

    spoken = json.dumps(call.frames, ensure_ascii=False)
    assert SECRET_NOTE not in spoken and "Анна Смирнова" not in greeting

    row = logged_call(bitrix_server, call.call_id)
    assert row.caller_name == "Сидоров Иван Петрович"
    assert row.caller_company == "ООО «УралСпецСтрой»"
    assert row.crm_data["source"] == "bitrix24" and row.crm_data["manager_phone"] == BITRIX_MANAGER_PHONE
    assert row.transferred_to == BITRIX_MANAGER_PHONE

    # The admin's call list and call page show who called.
    make_admin(bitrix_server.app)
    admin = bitrix_server.app.test_client()
    assert sign_in(admin).status_code == 302
    for page in ("/logs-ui/", f"/logs-ui/calls/{row.id}"):
        html = admin.get(page).get_data(as_text=True)
        assert "Сидоров Иван Петрович" in html and "ООО «УралСпецСтрой»" in html, page


def test_unknown_caller_greeted_normally_and_sent_to_operator(bitrix_server, fake_crm):
    call = Call_(bitrix_server)
    greeting, _ = call.setup(UNKNOWN_PHONE)
    assert greeting == DEFAULT_GREETING
    assert fake_crm.calls("crm.duplicate.findbycomm"), "the CRM was asked"
    transfer = call.press("0")
    assert transfer["type"] == "transfer" and transfer["to"] == OPERATOR
    call.hangup()
    row = logged_call(bitrix_server, call.call_id)
    assert row.caller_name is None and row.caller_company is None and row.crm_data is None


@pytest.mark.parametrize("trouble", ["slow", "down"])
def test_slow_or_dead_crm_costs_at_most_the_budget(live_server_factory, fake_crm, trouble):
    budget_ms = 700
    settings = fake_crm.settings("bitrix24", CRM_TIMEOUT_MS=budget_ms)
    if trouble == "slow":
        fake_crm.delay = 30.0  # every CRM request takes far longer than the budget
    else:
        settings["CRM_URL"] = f"http://127.0.0.1:{free_port()}/rest/1/x/"
    server = live_server_factory(**settings, OPERATOR_PHONE=OPERATOR)

    call = Call_(server)
    greeting, waited = call.setup("+79123456789")
    assert greeting == DEFAULT_GREETING  # no context: the normal greeting
    # Budget plus generous room for a loaded 2-core machine; a CRM wait would be 30 s.
    assert waited < budget_ms / 1000 + 2.0
    if trouble == "slow":
        assert fake_crm.calls("crm.duplicate.findbycomm"), "the CRM was asked"

    # The call goes on: questions are answered, transfers go to the operator.
    answer = call.ask("Когда работает отдел продаж?")
    assert answer["type"] == "text" and answer["last"] is True
    assert call.press("0")["to"] == OPERATOR
    call.hangup()
    row = logged_call(server, call.call_id)
    assert row is not None and row.caller_name is None


def test_amocrm_caller(live_server_factory, fake_crm):
    server = live_server_factory(**fake_crm.settings("amocrm"), OPERATOR_PHONE=OPERATOR)
    call = Call_(server)
    greeting, _ = call.setup("8 922 123-45-67")
    assert greeting.startswith("Здравствуйте, Ольга Викторовна!")
    # amoCRM users carry no phone: the operator takes the transfer.
    assert call.press("0")["to"] == OPERATOR
    call.hangup()
    row = logged_call(server, call.call_id)
    assert (row.caller_name, row.caller_company) == ("Кузнецова Ольга Викторовна", "Лаборатория «СтройКонтроль»")
    assert fake_crm.calls("/api/v4/contacts")[0][4]["Authorization"] == f"Bearer {fake_crm.amo_token}"


def test_webhook_caller_and_repeat_call_from_cache(live_server_factory, fake_crm):
    server = live_server_factory(**fake_crm.settings("webhook"), OPERATOR_PHONE=OPERATOR)
    first = Call_(server)
    greeting, _ = first.setup(WEBHOOK_PHONE)
    assert greeting.startswith("Здравствуйте, Алексей Николаевич!")
    assert first.press("0")["to"] == WEBHOOK_MANAGER_PHONE
    first.hangup()
    row = logged_call(server, first.call_id)
    assert row.crm_data["notes"] == SECRET_NOTE  # kept in the log for staff…
    assert SECRET_NOTE not in json.dumps(first.frames, ensure_ascii=False)  # …never spoken

    # The same caller rings back: greeted by name from the cache, the CRM is not asked again.
    asked = len(fake_crm.calls("/crm/caller"))
    again = Call_(server)
    greeting, _ = again.setup("8 (903) 555-66-77")
    assert greeting.startswith("Здравствуйте, Алексей Николаевич!")
    assert len(fake_crm.calls("/crm/caller")) == asked
    again.hangup()
