"""Replaying a change of the system prompt (issue 15, point 1): with an LLM configured a new prompt
is a candidate, replayed through the model against the prompt in force, shown as a diff and
published with one click (a rise in refusals confirmed); offline it is saved directly, with a note
that it affects no answer. The local OpenAI-compatible server is the model; Chromium the admin."""
from __future__ import annotations

import time

import pytest

from metrotest_bot.admin import replay
from metrotest_bot.bot_settings import DEFAULT_SYSTEM_PROMPT, load_from_db
from metrotest_bot.extensions import db
from metrotest_bot.models import AuditLog, BotSettingsVersion, ReplayRun

from .support.admin_data import ADMIN, PASSWORD, csrf_token, make_admin, sign_in
from .support.apps import dispose, make_app
from .support.browser import phone_tab, screenshot, sign_in_browser
from .support.live_server import serving
from .support.ws_client import ask_in_a_call
from .test_admin_replay import asked

pytestmark = pytest.mark.timeout(240)

DELIVERY_Q = "Сколько стоит доставка?"
HOURS_Q = "До скольки работает отдел продаж?"
WARRANTY_Q = "Какая гарантия на оборудование?"
NARROW_PROMPT = "Ты помощник «Метротеста». Отвечай только на вопросы о доставке, на остальные — НЕТ_ОТВЕТА."
POLITE_PROMPT = DEFAULT_SYSTEM_PROMPT + "\n- Будь особенно вежлив."
ANSWER = "Сейчас расскажу: это есть в базе знаний."


def model_reply(body) -> str:
    """A model that follows its instruction: the narrow prompt answers deliveries only."""
    system, question = body["messages"][0]["content"], body["messages"][-1]["content"]
    if system.startswith(NARROW_PROMPT) and question != DELIVERY_Q:
        return "НЕТ_ОТВЕТА"
    return ANSWER


@pytest.fixture
def llm_app(tmp_path, database_url, fake_openai):
    app = make_app(tmp_path / "data", database_url, OPENAI_API_KEY="sk-local", OPENAI_BASE_URL=fake_openai.base_url,
                   LLM_MODEL="local-model", FIRST_SPEECH_DEADLINE=10, REPLAY_LLM_CONCURRENCY=2)
    fake_openai.reply = model_reply
    make_admin(app)
    yield app
    dispose(app)


def settings_form(client, **changes) -> dict:
    html = client.get("/logs-ui/settings").get_data(as_text=True)
    with client.application.app_context():
        values = load_from_db().to_dict()
    return {"csrf_token": csrf_token(html), **values, **changes}


def signed_in(app):
    client = app.test_client()
    assert sign_in(client).status_code == 302
    return client


def run_of(app, run_id) -> ReplayRun:
    with app.app_context():
        run = db.session.get(ReplayRun, run_id)
        db.session.expunge(run)
        return run


def test_a_narrower_prompt_is_a_candidate_its_new_refusals_shown_and_confirmed(llm_app, fake_openai):
    app, client = llm_app, signed_in(llm_app)
    asked(app, DELIVERY_Q, HOURS_Q, WARRANTY_Q)
    greeting = "Здравствуйте! Это «Метротест», слушаю вас."
    response = client.post("/logs-ui/settings", data=settings_form(client, system_prompt=NARROW_PROMPT,
                                                                     greeting=greeting))
    assert response.status_code == 303 and "/logs-ui/settings/prompt/" in response.headers["Location"]
    run_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    replay.wait()
    with app.app_context():
        in_force = load_from_db()
        assert in_force.greeting == greeting  # the other fields are saved at once
        assert in_force.system_prompt == DEFAULT_SYSTEM_PROMPT  # the prompt is not, yet

    run = run_of(app, run_id)
    assert run.status == "done" and run.prompt == NARROW_PROMPT and run.version_id is None
    result = run.result
    assert result["questions"] == 3 and result["llm"]["model"] == "local-model"
    assert result["prompt_in_force"] == DEFAULT_SYSTEM_PROMPT
    refused = sorted(r["question"] for r in result["rows"] if r["kind"] == "newly_refused")
    assert refused == sorted([HOURS_Q, WARRANTY_Q]) and result["counts"]["same"] == 1
    systems = {r["messages"][0]["content"].split("\n")[0][:30] for r in fake_openai.requests}
    assert systems == {DEFAULT_SYSTEM_PROMPT[:30], NARROW_PROMPT[:30]}  # both prompts went to the model

    page = client.get(f"/logs-ui/settings/prompt/{run_id}").get_data(as_text=True)
    assert "Проверка новой системной инструкции" in page and "ждёт публикации" in page
    assert 'data-kind="newly_refused"' in page and "С новой инструкцией" in page
    assert "Отказов станет больше: 2 из 3 вопросов вместо 0" in page
    assert "Новая системная инструкция ждёт публикации" in client.get("/logs-ui/settings").get_data(as_text=True)

    token = csrf_token(page)
    response = client.post(f"/logs-ui/settings/prompt/{run_id}/publish", data={"csrf_token": token})
    assert response.headers["Location"].endswith(f"/settings/prompt/{run_id}")  # refused: confirm first
    with app.app_context():
        assert load_from_db().system_prompt == DEFAULT_SYSTEM_PROMPT
    response = client.post(f"/logs-ui/settings/prompt/{run_id}/publish", data={"csrf_token": token, "confirm": "yes"})
    assert response.headers["Location"].endswith("/logs-ui/settings")
    with app.app_context():
        live = load_from_db()
        assert (live.system_prompt, live.greeting) == (NARROW_PROMPT, greeting)
        audit = db.session.scalar(db.select(AuditLog).order_by(AuditLog.id.desc()))
        assert audit.action == "prompt_publish" and audit.details["replay"] == run_id and audit.details["confirmed"]
    page = client.get(f"/logs-ui/settings/prompt/{run_id}").get_data(as_text=True)
    assert "действует" in page and "publish-button" not in page


def test_a_harmless_prompt_change_publishes_with_one_click(llm_app, fake_openai):
    app, client = llm_app, signed_in(llm_app)
    asked(app, DELIVERY_Q, HOURS_Q)
    response = client.post("/logs-ui/settings", data=settings_form(client, system_prompt=POLITE_PROMPT))
    run_id = int(response.headers["Location"].rsplit("/", 1)[1])
    replay.wait()
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(BotSettingsVersion.id))) == 0  # nothing else changed
    page = client.get(f"/logs-ui/settings/prompt/{run_id}").get_data(as_text=True)
    assert "На этих вопросах ответы не меняются" in page and "publish-risks" not in page
    response = client.post(f"/logs-ui/settings/prompt/{run_id}/publish", data={"csrf_token": csrf_token(page)})
    assert response.headers["Location"].endswith("/logs-ui/settings")
    with app.app_context():
        assert load_from_db().system_prompt == POLITE_PROMPT


def test_offline_a_prompt_change_is_saved_directly_with_a_note(app, fake_openai):
    make_admin(app)
    client = signed_in(app)
    response = client.post("/logs-ui/settings", data=settings_form(client, system_prompt=NARROW_PROMPT),
                           follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "LLM не подключена: системная инструкция сохранена, но на ответы бота сейчас не влияет" in page
    with app.app_context():
        assert load_from_db().system_prompt == NARROW_PROMPT
        assert db.session.scalars(db.select(ReplayRun)).all() == []
    assert fake_openai.requests == []


def test_a_kb_run_is_no_prompt_candidate(llm_app):
    client = signed_in(llm_app)
    assert client.get("/logs-ui/settings/prompt/999").status_code == 404


# --- in Chromium, on the served app (gunicorn, gevent) ---------------------------------------

def test_browser_change_the_prompt_see_the_diff_publish(tmp_path_factory, page, browser, fake_openai):
    fake_openai.reply = model_reply
    with serving(tmp_path_factory.mktemp("prompt-replay"), SHARED_STATE_TTL=0.5, OPENAI_API_KEY="sk-local",
                 OPENAI_BASE_URL=fake_openai.base_url, LLM_MODEL="local-model", FIRST_SPEECH_DEADLINE=10,
                 CALL_SUMMARY_LLM="false") as srv:
        make_admin(srv.app)
        asked(srv.app, DELIVERY_Q, HOURS_Q, WARRANTY_Q)
        sign_in_browser(page, srv.url, ADMIN, PASSWORD)
        page.wait_for_url("**/logs-ui/")
        page.goto(srv.url + "/logs-ui/settings")
        assert "сначала проверяется на вопросах абонентов" in page.locator(".prompt-hint").inner_text()
        page.fill("textarea[name=system_prompt]", NARROW_PROMPT)
        with page.expect_navigation():
            page.click(".settings-form button[type=submit]")
        assert "/logs-ui/settings/prompt/" in page.url
        assert "ещё не действует" in page.locator(".alert-info").first.inner_text()
        row = page.wait_for_selector('tr.replay-row[data-kind="newly_refused"]', timeout=60_000)  # replay.js reloads
        assert "новый отказ" in row.inner_text()
        assert NARROW_PROMPT in page.locator(".prompt-candidate").inner_text()
        screenshot(page, "prompt-replay-diff")
        with phone_tab(browser, srv.url, ADMIN, PASSWORD) as phone:
            phone.goto(page.url)
            phone.wait_for_selector("table.replay-diff")
            screenshot(phone, "prompt-replay-diff-phone")
        assert ask_in_a_call(srv, HOURS_Q) == ANSWER  # calls keep the prompt in force meanwhile

        # The settings page keeps the prompt in force in its box and leads to the waiting candidate.
        page.goto(srv.url + "/logs-ui/settings")
        assert page.input_value("textarea[name=system_prompt]") == DEFAULT_SYSTEM_PROMPT
        assert "ждёт публикации" in page.locator(".candidate-note").inner_text()
        screenshot(page, "settings-prompt-candidate")
        with phone_tab(browser, srv.url, ADMIN, PASSWORD) as phone:
            phone.goto(srv.url + "/logs-ui/settings")
            phone.wait_for_selector(".candidate-note")
            screenshot(phone, "settings-prompt-candidate-phone")
        with page.expect_navigation():
            page.click("a.candidate-link")

        page.click("button.publish-button")  # the confirmation is required: the browser refuses to send
        assert "/settings/prompt/" in page.url
        page.check(".replay-confirm input")
        with page.expect_navigation():
            page.click("button.publish-button")
        assert page.url.endswith("/logs-ui/settings")
        assert "Новая системная инструкция опубликована" in page.locator(".alert-success").inner_text()
        screenshot(page, "prompt-published")
        time.sleep(1)  # SHARED_STATE_TTL
        fake_openai.requests.clear()
        refused = ask_in_a_call(srv, HOURS_Q)
        assert refused != ANSWER and "сотрудник" in refused  # the narrow prompt is in force: the model refuses
        assert fake_openai.requests[-1]["messages"][0]["content"].startswith(NARROW_PROMPT)
