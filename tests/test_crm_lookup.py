"""lookup_caller: settings, the time budget, the per-number cache."""
import time

import pytest

from metrotest_bot.crm import ADAPTERS, lookup_caller
from metrotest_bot.crm.cache import TTLCache
from tests.support.apps import dispose, make_app
from tests.support.fake_crm import AMO_CONTACT_PHONE, BITRIX_CONTACT_PHONE, UNKNOWN_PHONE, WEBHOOK_PHONE
from tests.support.live_server import free_port

KNOWN = {"bitrix24": BITRIX_CONTACT_PHONE, "amocrm": AMO_CONTACT_PHONE, "webhook": WEBHOOK_PHONE}
BUDGET_MS = 300
# Room for thread start-up on a loaded 2-core machine; far below the CRM's own delay.
SLACK_S = 0.5


def test_no_crm_configured_asks_nobody(fake_crm):
    for kind in (None, "", "none"):
        assert lookup_caller(BITRIX_CONTACT_PHONE, config={"CRM_KIND": kind, "CRM_URL": fake_crm.bitrix_url}) is None
    assert fake_crm.requests == []


def test_unknown_kind_is_logged_not_raised(fake_crm, caplog):
    assert lookup_caller(BITRIX_CONTACT_PHONE, config={"CRM_KIND": "salesforce", "CRM_URL": fake_crm.url}) is None
    assert "salesforce" in caplog.text and fake_crm.requests == []


def test_no_number_asks_nobody(fake_crm):
    for number in (None, "", "anonymous", "105"):
        assert lookup_caller(number, config=fake_crm.settings("bitrix24")) is None
    assert fake_crm.requests == []


def test_reads_the_app_config(fake_crm, tmp_path, database_url):
    app = make_app(tmp_path, database_url, **fake_crm.settings("webhook"))
    try:
        with app.app_context():
            assert lookup_caller(WEBHOOK_PHONE).company == "АО «Металлтест»"
    finally:
        dispose(app)


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
@pytest.mark.parametrize("mode", ["slow", "hang", "drip"])
def test_slow_crm_costs_no_more_than_the_budget(fake_crm, kind, mode):
    if mode == "slow":
        fake_crm.delay = 5.0
    else:
        fake_crm.mode = mode
    started = time.monotonic()
    info = lookup_caller(KNOWN[kind], config=fake_crm.settings(kind, CRM_TIMEOUT_MS=BUDGET_MS))
    elapsed = time.monotonic() - started
    assert info is None
    assert fake_crm.requests, "the CRM was asked"
    assert elapsed < BUDGET_MS / 1000 + SLACK_S


def test_a_crm_within_budget_is_waited_for(fake_crm):
    fake_crm.delay = 0.05  # four requests, 200 ms in all, budget 1.5 s
    info = lookup_caller(BITRIX_CONTACT_PHONE, config=fake_crm.settings("bitrix24", CRM_TIMEOUT_MS=1500))
    assert info is not None and info.address == "Иван Петрович"


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_crm_down_is_no_context(fake_crm, kind):
    dead = f"http://127.0.0.1:{free_port()}"
    url = {"bitrix24": dead + "/rest/1/x/", "amocrm": dead, "webhook": dead + "/caller"}[kind]
    started = time.monotonic()
    assert lookup_caller(KNOWN[kind], config=fake_crm.settings(kind, CRM_URL=url, CRM_TIMEOUT_MS=BUDGET_MS)) is None
    assert time.monotonic() - started < BUDGET_MS / 1000 + SLACK_S


def test_answers_are_cached_per_number(fake_crm):
    settings = fake_crm.settings("bitrix24")
    first = lookup_caller("+7 (912) 345-67-89", config=settings)
    asked = len(fake_crm.requests)
    again = lookup_caller("89123456789", config=settings)  # the same number, typed otherwise
    assert again == first and len(fake_crm.requests) == asked
    again.first_name = "Пётр"  # callers get copies
    assert lookup_caller(BITRIX_CONTACT_PHONE, config=settings).first_name == "Иван"


def test_unknown_is_cached_failures_are_not(fake_crm):
    settings = fake_crm.settings("bitrix24")
    assert lookup_caller(UNKNOWN_PHONE, config=settings) is None
    asked = len(fake_crm.requests)
    assert lookup_caller(UNKNOWN_PHONE, config=settings) is None
    assert len(fake_crm.requests) == asked

    fake_crm.mode = "error500"
    assert lookup_caller(BITRIX_CONTACT_PHONE, config=settings) is None
    fake_crm.mode = "ok"
    assert lookup_caller(BITRIX_CONTACT_PHONE, config=settings).first_name == "Иван"


def test_cache_off(fake_crm):
    settings = fake_crm.settings("webhook", CRM_CACHE_TTL=0)
    lookup_caller(WEBHOOK_PHONE, config=settings)
    lookup_caller(WEBHOOK_PHONE, config=settings)
    assert len(fake_crm.calls("/crm/caller")) == 2


def test_cache_is_bounded_and_expires():
    cache = TTLCache(max_size=3)
    for i in range(5):
        cache.put(i, i, ttl=60)
    assert len(cache) == 3 and cache.get(0) == (False, None) and cache.get(4) == (True, 4)
    cache.put("short", "x", ttl=0.01)
    time.sleep(0.02)
    assert cache.get("short") == (False, None)


def test_zero_budget_asks_nobody(fake_crm):
    assert lookup_caller(BITRIX_CONTACT_PHONE, config=fake_crm.settings("bitrix24", CRM_TIMEOUT_MS=0)) is None
    assert fake_crm.requests == []


def test_lookups_share_pooled_connections(fake_crm, monkeypatch):
    """A Bitrix24 lookup sends four requests; the process's one pool keeps their connection open."""
    accepted = []
    finish = fake_crm._server.finish_request
    monkeypatch.setattr(fake_crm._server, "finish_request",
                        lambda request, address: (accepted.append(address), finish(request, address)))
    settings = fake_crm.settings("bitrix24", CRM_CACHE_TTL=0)
    for _ in range(3):
        assert lookup_caller(BITRIX_CONTACT_PHONE, config=settings).address == "Иван Петрович"
    assert len(fake_crm.calls("/rest/")) >= 12
    assert len(accepted) <= 1  # none when an earlier test left the connection open in the pool


def test_a_lookup_on_a_kept_alive_connection_pays_no_nagle_delay(fake_crm):
    """Four requests on one pooled connection: a write held for a delayed ACK costs 40 ms each."""
    settings = fake_crm.settings("bitrix24", CRM_CACHE_TTL=0)
    lookup_caller(BITRIX_CONTACT_PHONE, config=settings)  # the connection is open from here on
    took = []
    for _ in range(9):
        started = time.monotonic()
        assert lookup_caller(BITRIX_CONTACT_PHONE, config=settings) is not None
        took.append(time.monotonic() - started)
    assert sorted(took)[4] < 0.08
