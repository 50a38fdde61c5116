"""Calls are found by who called: the caller's name and company (from the CRM) and number.

The admin's call list with the Flask test client (SQL index), the call log's
own writer (as the voice session writes a call at setup), and the
Elasticsearch call documents through the local fake at the network boundary.
"""
import re
from datetime import datetime, timezone

from sqlalchemy import select

from metrotest_bot.extensions import db
from metrotest_bot.models import Call
from metrotest_bot.search import DateRange, get_index
from metrotest_bot.search.elastic import word_clauses
from metrotest_bot.search.lemmas import call_query_terms, phone_terms
from metrotest_bot.search.sql import TranscriptTerm
from metrotest_bot.voice.calllog import CallLog

from .support.admin_data import make_admin, make_call, sign_in
from .support.call_log import eventually

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)
NAME, COMPANY = "Иван Петрович Сидоров", "ООО Бетонлаб"


def rows(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'class="call-row" data-call-id="(\d+)"', html)]


def listed(client, q: str) -> list[int]:
    response = client.get("/logs-ui/", query_string={"q": q})
    assert response.status_code == 200
    return rows(response.get_data(as_text=True))


def test_the_call_list_finds_calls_by_caller_name_company_and_number(app, admin_client):
    known = make_call(app, T0, [("caller", "Здравствуйте, нужен пресс.")], caller="+79123456789",
                      caller_name=NAME, caller_company=COMPANY)
    other = make_call(app, T0.replace(hour=10), [("caller", "Сидоров просил перезвонить насчёт пресса.")],
                      caller="+73430001122", caller_name="Анна Смирнова", caller_company="АО Прочность")
    assert listed(admin_client, "сидорова") == [other, known]  # by name, and by what was said
    assert listed(admin_client, "бетонлаб") == [known]
    assert listed(admin_client, "Ивана Петровича") == [known]
    assert listed(admin_client, "бетонлаба пресс") == [known]  # name and transcript words together
    assert listed(admin_client, "бетонлаб доставка") == []  # every word still has to match
    for number in ("+7 (912) 345-67-89", "8 912 345 67 89", "89123456789", "9123456789", "79123456789"):
        assert listed(admin_client, number) == [known], number
    assert listed(admin_client, "смирнова прочность") == [other]
    html = admin_client.get("/logs-ui/", query_string={"q": "бетонлаб"}).get_data(as_text=True)
    assert "<mark>Бетонлаб</mark>" in html  # the list shows why the call matched


def test_a_call_logged_by_the_voice_session_is_found_by_its_caller(app, admin_client):
    log = CallLog(app)  # what the call WebSocket does at setup, with the CRM's answer
    log.start(vox_call_id="vox-1", vox_session_id="s-1", caller="79123456789", dialled="+73430000000",
              crm_data={"name": NAME, "company": COMPANY}, caller_name=NAME, caller_company=COMPANY)
    log.caller_turn("Какие сроки поставки?", seq=log.next_seq())
    log.finish("completed")
    assert log.flush()
    assert listed(admin_client, "сидорова") == [log.call_id]
    assert listed(admin_client, "Бетонлаб") == [log.call_id]
    assert listed(admin_client, "+7 912 345-67-89") == [log.call_id]


def test_a_name_learned_later_is_indexed_and_reindex_keeps_it(app):
    cid = make_call(app, T0, [("caller", "Нужен пресс")], caller=None)
    with app.app_context():
        db.session.get(Call, cid).caller_company = "ООО Бетонлаб"
        db.session.commit()
        assert get_index().search("бетонлаб", DateRange(), 10, 0).call_ids == [cid]
        before = set(db.session.scalars(select(TranscriptTerm.lemma).where(TranscriptTerm.call_id == cid)))
        get_index().reindex_all()
        after = set(db.session.scalars(select(TranscriptTerm.lemma).where(TranscriptTerm.call_id == cid)))
    assert {"бетонлаб", "пресс"} <= after and after == before


def test_phone_forms():
    assert phone_terms("+7 (912) 345-67-89") == ["79123456789", "89123456789", "9123456789"]
    assert phone_terms("sip:anonymous@voximplant") == [] and phone_terms(None) == []
    assert call_query_terms("+7 912 345-67-89 пресс") == [frozenset({"9123456789"}), frozenset({"пресс", "пресса"})]
    assert call_query_terms("1 250 000") == [frozenset({"1"}), frozenset({"250"}), frozenset({"000"})]  # no phone
    assert word_clauses("и в на") == []


# -- Elasticsearch (the local fake) --------------------------------------------------------


def test_elasticsearch_finds_calls_by_caller(es_app, fake_elasticsearch):
    known = make_call(es_app, T0, [("caller", "Нужен пресс")], caller="+79123456789",
                      caller_name=NAME, caller_company=COMPANY)
    other = make_call(es_app, T0.replace(hour=10), [("caller", "Нужен пресс")], caller="+73430001122")
    eventually(lambda: {str(known), str(other)} <= set(fake_elasticsearch.docs("mt-calls")))
    index = get_index(es_app)

    def found(q):
        with es_app.app_context():
            page = index.search(q, DateRange(), 10, 0)
        assert index.last_backend == "elasticsearch"
        return page.call_ids

    # The fake does no stemming: «сидорова» finds «Сидоров» through its dictionary form.
    assert found("сидорова") == [known]
    assert found("бетонлаб пресс") == [known]
    assert found("+7 (912) 345-67-89") == [known]
    assert found("бетонлаб доставка") == []
    assert found("пресс") == [other, known]

    make_admin(es_app)
    client = es_app.test_client()
    sign_in(client)
    assert listed(client, "сидорова") == [known]
