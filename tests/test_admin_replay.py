"""Replay before publishing (issue 15, part 1).

Uploads are candidates: replayed on the callers' recent questions and the saved test questions
against the KB in force, the diff shown, published with one click — or, when the upload would
shrink the KB in force below half its passages or refusals would rise, only with a confirmation.
The test client covers the rules; Chromium the two pages a person sees; a timing of 200
questions offline.
"""
import re
import time
from pathlib import Path

import pytest

from metrotest_bot.admin import kb_jobs, replay
from metrotest_bot.extensions import db
from metrotest_bot.models import AuditLog, KBVersion, ReplayRun, TestQuestion

from .support.admin_data import ADMIN, PASSWORD, csrf_token, make_admin, make_call, sign_in, upload_id, upload_kb
from .support.apps import dispose, make_app
from .support.browser import screenshot, sign_in_browser
from .support.kb_samples import PRICE_A, QUESTION, kb_a_cp1251, spoken_answer
from .support.live_server import serving
from .support.ws_client import ask_in_a_call

SAMPLE_KB = Path(__file__).resolve().parents[1] / "metrotest_bot" / "rag" / "sample_kb" / "metrotest_sample.txt"
WARRANTY_Q = "Какая гарантия на оборудование?"
HOURS_Q = "До скольки работает отдел продаж?"
WARRANTY_FACT = "24 месяца"


def sample_without(section: str) -> bytes:
    """The sample KB with one `=== section ===` dropped."""
    text = SAMPLE_KB.read_text(encoding="utf-8")
    kept = re.sub(rf"=== {section} ===\n.*?(?=\n===|\n©)", "", text, flags=re.S)
    assert kept != text
    return kept.encode("utf-8")


@pytest.fixture
def held_app(tmp_path, database_url):
    """The production rules: every upload a candidate, a shrink below half confirmed."""
    app = make_app(tmp_path / "data", database_url, KB_HOLD_UPLOADS=True, KB_CONFIRM_SHRINK_RATIO=0.5)
    yield app
    dispose(app)


@pytest.fixture
def held_client(held_app):
    make_admin(held_app)
    client = held_app.test_client()
    assert sign_in(client).status_code == 302
    return client


def upload(client, data: bytes, filename: str) -> int:
    vid = upload_id(upload_kb(client, data, filename))
    kb_jobs.wait(vid)
    replay.wait()
    return vid


def version(app, vid: int) -> KBVersion:
    with app.app_context():
        row = db.session.get(KBVersion, vid)
        db.session.expunge(row)
        return row


def last_run(app, vid: int) -> ReplayRun:
    with app.app_context():
        row = replay.latest_run(vid)
        db.session.expunge(row)
        return row


def post(client, url: str, **data):
    token = csrf_token(client.get("/logs-ui/kb").get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


def asked(app, *questions):
    for q in questions:
        make_call(app, turns=[("caller", q), {"role": "bot", "text": "…", "question": q, "answered": True}])


def test_a_tiny_upload_is_held_until_confirmed_and_calls_keep_the_kb_in_force(held_app, held_client):
    app, client = held_app, held_client
    asked(app, HOURS_Q)
    before = spoken_answer(app, HOURS_Q)
    vid = upload(client, kb_a_cp1251(), "tiny.txt")
    row = version(app, vid)
    assert (row.status, row.active, row.n_passages) == ("ready", False, 3)
    assert "меньше 50% действующей базы (13 фрагм.)" in row.held_reason
    assert spoken_answer(app, HOURS_Q) == before and PRICE_A not in spoken_answer(app)  # still the sample KB

    html = client.get(f"/logs-ui/kb?upload={vid}").get_data(as_text=True)
    assert "upload-held" in html and "ещё не действует" in html and f"/kb/versions/{vid}/replay" in html

    run = last_run(app, vid)  # the replay started by itself
    assert run.status == "done" and run.result["counts"]["newly_refused"] == 1
    assert run.result["in_force"]["passages"] == 13 and run.result["candidate"]["passages"] == 3

    # Neither «make active» nor a plain publish puts it in force.
    response = post(client, f"/logs-ui/kb/versions/{vid}/activate")
    assert response.headers["Location"].endswith(f"/kb/versions/{vid}/replay")
    response = post(client, f"/logs-ui/kb/versions/{vid}/publish")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/kb/versions/{vid}/replay")
    assert not version(app, vid).active
    page = client.get(f"/logs-ui/kb/versions/{vid}/replay").get_data(as_text=True)
    assert "Публикация не выполнена" in page and "publish-risks" in page and 'name="confirm"' in page
    assert "Отказов станет больше: 1 из 1 вопросов вместо 0" in page

    response = post(client, f"/logs-ui/kb/versions/{vid}/publish", confirm="yes")
    assert response.status_code == 303 and response.headers["Location"].endswith("/logs-ui/kb")
    row = version(app, vid)
    assert row.active and row.held_reason is None
    assert PRICE_A in spoken_answer(app)
    with app.app_context():
        audit = db.session.scalar(db.select(AuditLog).order_by(AuditLog.id.desc()))
        assert audit.action == "kb_activate" and audit.details["version"] == vid and audit.details["confirmed"]


def test_a_candidate_that_drops_a_section_shows_its_questions_newly_refused(held_app, held_client):
    app, client = held_app, held_client
    asked(app, WARRANTY_Q, HOURS_Q, HOURS_Q.lower(), "Можно заказать пиццу?")
    vid = upload(client, sample_without("Гарантия"), "без гарантии.txt")
    row = version(app, vid)
    assert (row.active, row.n_passages) == (False, 12)
    assert row.held_reason == replay.CANDIDATE
    result = last_run(app, vid).result
    assert result["questions"] == 3  # distinct: the lower-case repeat is the same question
    assert result["counts"] == {"newly_refused": 1, "newly_answered": 0, "changed": 0, "same": 2}
    (changed,) = result["rows"]
    assert changed["question"] == WARRANTY_Q and changed["kind"] == "newly_refused"
    assert WARRANTY_FACT in changed["old"]["text"] and not changed["new"]["answered"]
    assert result["refused"] == {"in_force": 1, "candidate": 2}

    page = client.get(f"/logs-ui/kb/versions/{vid}/replay").get_data(as_text=True)
    assert 'data-kind="newly_refused"' in page and WARRANTY_Q in page
    assert "Отказов станет больше: 2 из 3 вопросов вместо 1" in page  # a rise in refusals: confirm
    assert post(client, f"/logs-ui/kb/versions/{vid}/publish").headers["Location"].endswith("/replay")
    assert not version(app, vid).active


def test_a_harmless_candidate_publishes_with_one_click_and_test_questions_are_replayed(held_app, held_client):
    app, client = held_app, held_client
    with app.app_context():
        db.session.add(TestQuestion(question=WARRANTY_Q, answerable=True, correct_fact=WARRANTY_FACT))
        db.session.commit()
    asked(app, HOURS_Q)
    vid = upload(client, sample_without("Поверка"), "без поверки.txt")
    result = last_run(app, vid).result
    assert (result["questions"], result["tests"], result["counts"]["same"]) == (2, 1, 2)
    page = client.get(f"/logs-ui/kb/versions/{vid}/replay").get_data(as_text=True)
    assert "publish-risks" not in page and "На этих вопросах ответы не меняются" in page
    response = post(client, f"/logs-ui/kb/versions/{vid}/publish")
    assert response.headers["Location"].endswith("/logs-ui/kb")
    assert version(app, vid).active


def test_replay_questions_are_the_last_n_distinct(app):
    for i in range(5):
        asked(app, f"вопрос номер {i}")
    asked(app, "Вопрос номер 4!")
    with app.app_context():
        assert [q for q, _ in replay.replay_questions(3)] == ["Вопрос номер 4!", "вопрос номер 3", "вопрос номер 2"]  # the newest phrasing
        assert replay.replay_questions(0) == []


def test_replay_status_json_and_restart(held_app, held_client):
    vid = upload(held_client, sample_without("Гарантия"), "g.txt")
    run = last_run(held_app, vid)
    status = held_client.get(f"/logs-ui/kb/replays/{run.id}/status").get_json()
    assert status == {"id": run.id, "status": "done", "progress": 1.0, "n_questions": 0, "error": None, "done": True}
    assert post(held_client, f"/logs-ui/kb/versions/{vid}/replay").status_code == 303
    replay.wait()
    assert last_run(held_app, vid).id == run.id + 1
    assert held_client.get("/logs-ui/kb/replays/999/status").status_code == 404


# --- timing ---------------------------------------------------------------------------------

def test_replay_of_200_questions_offline_under_10_s(app):
    from bench.replay import replay_timing

    seconds, n = replay_timing(app, 200)
    print(f"\nreplay of {n} questions offline, both KBs: {seconds:.2f} s")
    assert n == 200 and seconds < 10


# --- in Chromium ----------------------------------------------------------------------------

def upload_in_browser(page, url: str, name: str, data: bytes) -> str:
    page.goto(url + "/logs-ui/kb")
    page.set_input_files("#kb-file", files=[{"name": name, "mimeType": "text/plain", "buffer": data}])
    with page.expect_navigation():
        page.click("button:has-text('Загрузить и проиндексировать')")
    # Index, then replay against the KB in force: on a loaded CI machine this may take a while.
    return page.wait_for_selector(".upload-held, .upload-done, .upload-error", timeout=120_000).inner_text()


@pytest.mark.timeout(240)
def test_browser_tiny_upload_held_and_replay_diff_of_a_dropped_section(tmp_path_factory, page):
    with serving(tmp_path_factory.mktemp("replay"), SHARED_STATE_TTL=0.5) as srv:  # production defaults
        make_admin(srv.app)
        heard_before = ask_in_a_call(srv, WARRANTY_Q)
        assert "двадцать четыре" in heard_before or "24" in heard_before
        sign_in_browser(page, srv.url, ADMIN, PASSWORD)
        page.wait_for_url("**/logs-ui/")

        # A tiny upload: held, calls keep the KB in force.
        outcome = upload_in_browser(page, srv.url, "tiny.txt", kb_a_cp1251())
        assert "ещё не действует" in outcome and "меньше 50% действующей базы" in outcome
        screenshot(page, "replay-kb-held")
        assert ask_in_a_call(srv, WARRANTY_Q) == heard_before
        assert "7 500" not in ask_in_a_call(srv, QUESTION) and "семь тысяч пятьсот" not in ask_in_a_call(srv, QUESTION)
        page.click(".upload-held a.replay-link")
        page.wait_for_selector("table.replay-diff, .replay-counts")
        page.click("button.publish-button")  # the checkbox is required: the browser refuses to send
        assert "/replay" in page.url and page.locator(".replay-confirm input").count() == 1
        screenshot(page, "replay-tiny-confirm")
        assert ask_in_a_call(srv, WARRANTY_Q) == heard_before

        # A candidate without the warranty section: its question appears as newly refused.
        upload_in_browser(page, srv.url, "без гарантии.txt", sample_without("Гарантия"))
        page.click(".upload-held a.replay-link")
        row = page.wait_for_selector('tr.replay-row[data-kind="newly_refused"]', timeout=30_000)
        assert WARRANTY_Q in row.inner_text()
        assert "новый отказ" in row.inner_text()
        screenshot(page, "replay-diff")
        page.set_viewport_size({"width": 390, "height": 844})
        screenshot(page, "replay-diff-phone")
        page.set_viewport_size({"width": 1280, "height": 860})
        page.check(".replay-confirm input")
        page.click("button.publish-button")
        page.wait_for_url("**/logs-ui/kb")
        assert "Опубликована версия" in page.locator(".alert-success").inner_text()
        time.sleep(1)
        refused = ask_in_a_call(srv, WARRANTY_Q)
        assert refused != heard_before and "сотрудник" in refused


def test_a_candidate_indexed_on_another_machine_is_built_here_for_the_replay(held_app, held_client):
    from metrotest_bot.rag.engine import version_index_name
    from metrotest_bot.rag.stores import open_store

    vid = upload(held_client, sample_without("Гарантия"), "g.txt")
    with held_app.app_context():
        open_store(held_app.config, version_index_name(vid)).delete()  # as on a machine that never had it
    assert post(held_client, f"/logs-ui/kb/versions/{vid}/replay").status_code == 303
    replay.wait()
    run = last_run(held_app, vid)
    assert run.status == "done" and run.result["candidate"]["passages"] == 12
