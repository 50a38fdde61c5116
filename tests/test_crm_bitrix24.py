"""Bitrix24 adapter against a local server answering as Bitrix24's REST API does."""
import json

from metrotest_bot.crm import lookup_caller
from tests.support.fake_crm import (
    BITRIX_COMPANY_PHONE, BITRIX_CONTACT_PHONE, BITRIX_JUNK_NAME_PHONE, BITRIX_MANAGER_PHONE, SECRET,
    SECRET_NOTE, UNKNOWN_PHONE,
)


def test_known_contact(fake_crm):
    info = lookup_caller("79123456789", config=fake_crm.settings("bitrix24"))
    assert info is not None
    assert (info.first_name, info.patronymic, info.last_name) == ("Иван", "Петрович", "Сидоров")
    assert info.address == "Иван Петрович"
    assert info.name == "Сидоров Иван Петрович"
    assert info.company == "ООО «УралСпецСтрой»"
    assert info.manager_name == "Анна Смирнова"
    assert info.manager_phone == BITRIX_MANAGER_PHONE
    assert info.source == "bitrix24"
    assert info.raw["contact_id"] == "43" and info.raw["manager_extension"] == "106"
    assert SECRET_NOTE not in json.dumps(info.to_dict(), ensure_ascii=False)  # COMMENTS are not taken at all


def test_requests_follow_the_documented_shapes(fake_crm):
    lookup_caller(BITRIX_CONTACT_PHONE, config=fake_crm.settings("bitrix24"))
    assert fake_crm.bitrix_methods() == ["crm.duplicate.findbycomm", "crm.contact.get", "crm.company.get", "user.get"]
    method, path, _, body, headers = fake_crm.calls("/rest/")[0]
    assert method == "POST" and path == f"/rest/1/{SECRET}/crm.duplicate.findbycomm"
    assert headers["Content-Type"] == "application/json"
    assert body["entity_type"] == "CONTACT" and body["type"] == "PHONE"
    # The card holds "8 (912) 345-67-89": found because several stored forms are asked for.
    assert "+79123456789" in body["values"] and "89123456789" in body["values"]
    assert fake_crm.calls("/rest/")[1][3] == {"id": 43}


def test_company_card_without_a_person(fake_crm):
    info = lookup_caller(BITRIX_COMPANY_PHONE, config=fake_crm.settings("bitrix24"))
    assert info.company == "НИИ Стройматериалов"
    assert info.address is None and info.name is None
    assert info.manager_name == "Павел Егоров"
    assert info.manager_phone is None  # only an inner extension: not a transfer target
    assert [c[3]["entity_type"] for c in fake_crm.calls("crm.duplicate.findbycomm")] == ["CONTACT", "COMPANY"]


def test_contact_named_like_a_department_is_not_addressed(fake_crm):
    info = lookup_caller(BITRIX_JUNK_NAME_PHONE, config=fake_crm.settings("bitrix24"))
    assert info.company == "ООО «УралСпецСтрой»"
    assert info.address is None


def test_unknown_number(fake_crm):
    assert lookup_caller(UNKNOWN_PHONE, config=fake_crm.settings("bitrix24")) is None
    # findbycomm answered {"result": []} twice (contacts, then companies); nothing else was asked.
    assert fake_crm.bitrix_methods() == ["crm.duplicate.findbycomm", "crm.duplicate.findbycomm"]


def test_missing_company_card_still_gives_the_person(fake_crm):
    # crm.company.get answers HTTP 400 {"error": "", "error_description": "Not found"}.
    fake_crm.bitrix_contacts[43]["COMPANY_ID"] = "777"
    info = lookup_caller(BITRIX_CONTACT_PHONE, config=fake_crm.settings("bitrix24"))
    assert info.address == "Иван Петрович"
    assert info.company is None
    assert info.manager_phone == BITRIX_MANAGER_PHONE


def test_wrong_webhook_secret_is_no_context(fake_crm, caplog):
    settings = fake_crm.settings("bitrix24", CRM_URL=fake_crm.bitrix_url.replace(SECRET, "wrong"))
    assert lookup_caller(BITRIX_CONTACT_PHONE, config=settings) is None
    assert "NO_AUTH_FOUND" in caplog.text


def test_server_error_is_no_context(fake_crm, caplog):
    fake_crm.mode = "error500"
    assert lookup_caller(BITRIX_CONTACT_PHONE, config=fake_crm.settings("bitrix24")) is None
    assert "INTERNAL_SERVER_ERROR" in caplog.text


def test_url_without_trailing_slash(fake_crm):
    settings = fake_crm.settings("bitrix24", CRM_URL=fake_crm.bitrix_url.rstrip("/"))
    assert lookup_caller(BITRIX_CONTACT_PHONE, config=settings).first_name == "Иван"
