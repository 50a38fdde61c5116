"""Phone numbers in every form a caller id or a CRM card has them come to one canonical form."""
import pytest

from metrotest_bot import phones


@pytest.mark.parametrize("raw", [
    "+79123456789", "79123456789", "89123456789", "9123456789",
    "8 (912) 345-67-89", "+7 (912) 345-67-89", "+7 912 345 67 89", "8-912-345-67-89",
    " +7(912)345-67-89 ", "sip:+79123456789@metrotest.voximplant.com", "tel:+7-912-345-67-89",
])
def test_russian_forms_normalize_to_one(raw):
    assert phones.normalize_phone(raw) == "+79123456789"


@pytest.mark.parametrize("raw, expected", [
    ("8 800 000-12-12", "+78000001212"),
    ("+7 (343) 200-00-06 доб. 105", "+73432000006"),
    ("(343) 200-00-06", "+73432000006"),
    ("+44 20 7946 0958", "+442079460958"),
    ("00441234567890", "+441234567890"),
    ("8 10 44 1234567890", "+441234567890"),
])
def test_other_forms(raw, expected):
    assert phones.normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "anonymous", "Unknown", "105", "2000006", "+7", "абв"])
def test_not_a_callers_number(raw):
    assert phones.normalize_phone(raw) is None


def test_stored_forms_cover_what_managers_type():
    forms = phones.stored_forms("+79123456789")
    assert forms[0] == "+79123456789"
    for typed in ("79123456789", "89123456789", "9123456789", "8 (912) 345-67-89", "+7 912 345-67-89"):
        assert typed in forms
    assert len(forms) <= 20  # Bitrix24's findbycomm takes at most 20 values
    assert all(phones.normalize_phone(f) == "+79123456789" for f in forms)


def test_transfer_target_keeps_sip_uris():
    assert phones.transfer_target("sip:manager@pbx.metrotest.ru") == "sip:manager@pbx.metrotest.ru"
    assert phones.transfer_target("8 (343) 300-00-07") == "+73433000007"
    assert phones.transfer_target("доб. 7") is None


def test_masked_hides_the_middle():
    assert phones.masked("+79123456789") == "+7912***89"
