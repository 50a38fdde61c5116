"""Clearing the call log: confirmation page, CSRF, confirm=yes, audit, index cleared, live calls kept."""
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from metrotest_bot.extensions import db
from metrotest_bot.models import AuditLog, Call, Turn
from metrotest_bot.search.sql import TranscriptTerm

from .support.admin_data import ADMIN, csrf_token, make_call


def counts(app):
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (Call, Turn, TranscriptTerm))


def test_clear_asks_then_clears_and_audits(app, admin_client):
    for i in range(3):
        make_call(app, datetime(2025, 3, 1, 9, i, tzinfo=timezone.utc), [("caller", "Доставка в Казань"), ("bot", "Да")])
    page = admin_client.get("/logs-ui/clear")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Будут удалены все записи звонков (3)" in html
    assert 'name="confirm"' in html and 'value="yes"' in html
    token = csrf_token(html)

    # Without the confirmation nothing is deleted.
    refused = admin_client.post("/logs-ui/clear", data={"csrf_token": token})
    assert refused.status_code == 400 and "Отметьте подтверждение" in refused.get_data(as_text=True)
    assert admin_client.post("/logs-ui/clear", data={"csrf_token": token, "confirm": "y"}).status_code == 400
    # Without the CSRF token nothing is deleted either.
    assert admin_client.post("/logs-ui/clear", data={"confirm": "yes"}).status_code == 400
    assert counts(app)[:2] == (3, 6) and counts(app)[2] > 0

    done = admin_client.post("/logs-ui/clear", data={"csrf_token": token, "confirm": "yes"}, follow_redirects=True)
    assert "Журнал очищен: удалено звонков — 3, реплик — 6." in done.get_data(as_text=True)
    assert counts(app) == (0, 0, 0)
    assert "Ничего не найдено" in admin_client.get("/logs-ui/?q=казани").get_data(as_text=True)
    with app.app_context():
        entry = db.session.scalar(select(AuditLog))
        assert entry.username == ADMIN and entry.action == "clear_calls"
        assert entry.details["calls"] == 3 and entry.at is not None
    assert "удалено звонков 3" in admin_client.get("/logs-ui/clear").get_data(as_text=True)


def test_a_live_call_survives_clearing(app, admin_client):
    make_call(app, datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc), [("caller", "Старый звонок про пресс")])
    live = make_call(app, datetime.now(timezone.utc) - timedelta(minutes=2), [("caller", "Идёт разговор про пресс")],
                     outcome="in_progress")
    token = csrf_token(admin_client.get("/logs-ui/clear").get_data(as_text=True))
    html = admin_client.post("/logs-ui/clear", data={"csrf_token": token, "confirm": "yes"},
                             follow_redirects=True).get_data(as_text=True)
    assert "Идущие сейчас звонки (1) сохранены." in html
    assert counts(app)[:2] == (1, 1)
    assert f'data-call-id="{live}"' in admin_client.get("/logs-ui/?q=прессом").get_data(as_text=True)
