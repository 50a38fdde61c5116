"""The generic webhook adapter: GET ?phone=… answering a JSON object."""
from metrotest_bot.crm import lookup_caller
from tests.support.fake_crm import SECRET_NOTE, UNKNOWN_PHONE, WEBHOOK_MANAGER_PHONE, WEBHOOK_PHONE


def test_known_caller(fake_crm):
    info = lookup_caller("8-903-555-66-77", config=fake_crm.settings("webhook"))
    assert info.name == "Петров Алексей Николаевич"
    assert info.address == "Алексей Николаевич"
    assert info.company == "АО «Металлтест»"
    assert info.manager_name == "Елена Васильевна Белова"
    assert info.manager_phone == WEBHOOK_MANAGER_PHONE
    assert info.notes == SECRET_NOTE  # kept for the call log, never spoken
    method, path, query, _, headers = fake_crm.calls("/crm/caller")[0]
    assert (method, query["phone"]) == ("GET", WEBHOOK_PHONE)
    assert "Authorization" not in headers


def test_token_is_sent_as_bearer(fake_crm):
    fake_crm.webhook_token = "hook-token"
    assert lookup_caller(WEBHOOK_PHONE, config=fake_crm.settings("webhook")).company == "АО «Металлтест»"
    assert fake_crm.calls("/crm/caller")[0][4]["Authorization"] == "Bearer hook-token"


def test_unknown_is_404(fake_crm):
    assert lookup_caller(UNKNOWN_PHONE, config=fake_crm.settings("webhook")) is None


def test_url_with_its_own_query(fake_crm):
    settings = fake_crm.settings("webhook", CRM_URL=fake_crm.webhook_url + "?source=voice")
    assert lookup_caller(WEBHOOK_PHONE, config=settings) is not None
    assert fake_crm.calls("/crm/caller")[0][2] == {"source": "voice", "phone": WEBHOOK_PHONE}


def test_empty_or_strange_answers(fake_crm):
    fake_crm.webhook_records[WEBHOOK_PHONE] = {"name": "", "company": None}
    assert lookup_caller(WEBHOOK_PHONE, config=fake_crm.settings("webhook")) is None
    fake_crm.webhook_records[UNKNOWN_PHONE] = {"name": {"nested": 1}, "company": ["x"], "manager_phone": "доб. 5",
                                               "first_name": "Иван"}
    info = lookup_caller(UNKNOWN_PHONE, config=fake_crm.settings("webhook"))
    assert info.address == "Иван" and info.company is None and info.manager_phone is None


def test_sip_manager_target(fake_crm):
    fake_crm.webhook_records[WEBHOOK_PHONE]["manager_phone"] = "sip:belova@pbx.metrotest.ru"
    assert lookup_caller(WEBHOOK_PHONE, config=fake_crm.settings("webhook")).manager_phone == "sip:belova@pbx.metrotest.ru"


def test_overlong_values_fit_the_call_log(fake_crm):
    fake_crm.webhook_records[WEBHOOK_PHONE]["company"] = "ООО " + "Очень длинное название " * 30
    fake_crm.webhook_records[WEBHOOK_PHONE]["manager_phone"] = "sip:" + "m" * 200 + "@pbx.example.ru"
    info = lookup_caller(WEBHOOK_PHONE, config=fake_crm.settings("webhook"))
    assert len(info.company) <= 255 and info.company.endswith("…")
    assert info.manager_phone is None
