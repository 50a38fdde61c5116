"""amoCRM adapter against a local server answering as amoCRM's API v4 does."""
from metrotest_bot.crm import lookup_caller
from tests.support.fake_crm import AMO_CONTACT_PHONE, SECRET_NOTE, UNKNOWN_PHONE


def test_known_contact(fake_crm):
    info = lookup_caller("8 (922) 123-45-67", config=fake_crm.settings("amocrm"))
    assert info is not None
    assert info.name == "Кузнецова Ольга Викторовна"
    assert info.address == "Ольга Викторовна"  # patronymic found in the full name
    assert info.company == "Лаборатория «СтройКонтроль»"
    assert info.manager_name == "Дмитрий Орлов"
    assert info.manager_phone is None  # amoCRM users carry no phone
    assert info.notes is None and SECRET_NOTE not in repr(info.to_dict())
    assert info.source == "amocrm"


def test_requests_carry_the_token_and_query(fake_crm):
    lookup_caller(AMO_CONTACT_PHONE, config=fake_crm.settings("amocrm"))
    paths = [c[1] for c in fake_crm.calls("/api/v4/")]
    assert paths == ["/api/v4/contacts", "/api/v4/companies/40318188", "/api/v4/users/112313"]
    method, _, query, _, headers = fake_crm.calls("/api/v4/contacts")[0]
    assert method == "GET"
    assert headers["Authorization"] == f"Bearer {fake_crm.amo_token}"
    assert query["query"] == "9221234567"  # a substring of +79…, 89…, 79… alike


def test_a_match_on_another_field_is_not_the_caller(fake_crm):
    # The query finds the contact through a note mentioning the number, not its phone field.
    contact = fake_crm.amo_contacts[403181]
    contact["custom_fields_values"][0]["values"] = [{"value": "+79220000000", "enum_code": "WORK"}]
    contact["custom_fields_values"][1]["values"] = [{"value": "перезвонить с 9221234567"}]
    assert lookup_caller(AMO_CONTACT_PHONE, config=fake_crm.settings("amocrm")) is None


def test_company_only(fake_crm):
    info = lookup_caller("+7 343 222-33-44", config=fake_crm.settings("amocrm"))
    assert info.company == "Лаборатория «СтройКонтроль»"
    assert info.address is None
    assert [c[1] for c in fake_crm.calls("/api/v4/")][:2] == ["/api/v4/contacts", "/api/v4/companies"]


def test_unknown_number_is_204(fake_crm):
    assert lookup_caller(UNKNOWN_PHONE, config=fake_crm.settings("amocrm")) is None
    assert [c[1] for c in fake_crm.calls("/api/v4/")] == ["/api/v4/contacts", "/api/v4/companies"]


def test_bad_token_is_no_context(fake_crm, caplog):
    settings = fake_crm.settings("amocrm", CRM_TOKEN="expired")
    assert lookup_caller(AMO_CONTACT_PHONE, config=settings) is None
    assert "401" in caplog.text


def test_missing_token_is_no_context_and_no_request(fake_crm, caplog):
    assert lookup_caller(AMO_CONTACT_PHONE, config=fake_crm.settings("amocrm", CRM_TOKEN=None)) is None
    assert fake_crm.calls("/api/v4/") == []
    assert "CRM_TOKEN" in caplog.text


def test_server_error_is_no_context(fake_crm):
    fake_crm.mode = "error500"
    assert lookup_caller(AMO_CONTACT_PHONE, config=fake_crm.settings("amocrm")) is None


def test_api_path_in_the_url_is_tolerated(fake_crm):
    settings = fake_crm.settings("amocrm", CRM_URL=fake_crm.amo_url + "/api/v4/")
    assert lookup_caller(AMO_CONTACT_PHONE, config=settings).company == "Лаборатория «СтройКонтроль»"
