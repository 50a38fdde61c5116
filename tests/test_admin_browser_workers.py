"""The admin panel in real Chromium against gunicorn with two gevent workers.

One live server for the module (two workers, so "every worker" is tested);
calls are made over the call WebSocket with websocket-client. Which worker
served a call is read from the server's log ("[pid] … call N started
(Voximplant call vox-…)"), so the tests know when both workers have
answered. Workers follow shared state within SHARED_STATE_TTL (0.5 s here):
after a change the tests wait that long once, then expect every call to
carry the change. Screenshots go to test-artifacts/.
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from dataclasses import dataclass

import pytest
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import select

from metrotest_bot.bot_settings import BotSettings
from metrotest_bot.extensions import db
from metrotest_bot.models import KBVersion
from metrotest_bot.rag.speech import speech_form

from .support.admin_data import ADMIN, PASSWORD, make_admin
from .support.browser import screenshot, sign_in_browser
from .support.call_log import eventually, finished_call
from .support.kb_samples import (BINARY_TXT, EXE, PRICE_A, PRICE_B, QUESTION, kb_a_cp1251, kb_b_markdown,
                                 kb_text)
from .support.live_server import serving
from .support.ws_client import CallClient, text_of

# What a caller hears of each KB's price (the `text` frames carry the speech form).
HEARD_A = speech_form(f"{PRICE_A} рублей")
HEARD_B = speech_form(f"{PRICE_B} рублей")

pytestmark = pytest.mark.timeout(300)

TTL = 0.5  # SHARED_STATE_TTL of the server
STALE = 5  # KB_JOB_STALE_SECONDS of the server
LIMIT = 10 * 1024 * 1024  # KB_MAX_UPLOAD_BYTES of the server
CALL_STARTED = re.compile(r"\[(\d+)\] \[INFO\] metrotest_bot\.voice\.session: call \S+ started \(Voximplant call (vox-\w+)\)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("admin2"), workers=2, SHARED_STATE_TTL=TTL,
                 KB_JOB_STALE_SECONDS=STALE, KB_MAX_UPLOAD_BYTES=LIMIT,
                 # uploads go live once indexed, as before the replay (tests/test_admin_replay.py has it)
                 KB_HOLD_UPLOADS="false", KB_CONFIRM_SHRINK_RATIO="0") as srv:
        make_admin(srv.app)
        yield srv


@pytest.fixture
def admin_page(server, page):
    sign_in_browser(page, server.url, ADMIN, PASSWORD)
    page.wait_for_url("**/logs-ui/")
    return page


def settle():
    """Every worker re-reads shared state (settings, the KB in force) at most TTL seconds later."""
    time.sleep(TTL * 1.5)


# --- calls over the WebSocket ---------------------------------------------------------------

@dataclass
class CallResult:
    pid: str
    greeting: str
    answer: str | None
    vox_call_id: str


def worker_of(server, vox_call_id: str) -> str:
    def find():
        for m in CALL_STARTED.finditer(server.log()):
            if m.group(2) == vox_call_id:
                return m.group(1)
        return None

    return eventually(find, timeout=10)


def make_call(server, question: str | None = None) -> CallResult:
    call = CallClient.connect(server)
    try:
        greeting = call.setup()["text"]
        answer = text_of(call.ask(question, timeout=20)) if question else None
        call.hangup()
    finally:
        call.close()
    finished_call(server, call.call_id)  # its log is whole (written within CALLLOG_FLUSH_MS of the hangup)
    return CallResult(worker_of(server, call.call_id), greeting, answer, call.call_id)


def calls_on_both_workers(server, question: str | None = None, timeout: float = 30) -> list[CallResult]:
    """Calls until two different workers have served at least one each (a worker gunicorn has
    just restarted may need a few seconds before it accepts calls)."""
    results: list[CallResult] = []
    deadline = time.monotonic() + timeout
    while len({r.pid for r in results}) < 2:
        assert time.monotonic() < deadline, f"one worker served all calls: {[r.pid for r in results]}"
        if results:
            time.sleep(0.05)
        results.append(make_call(server, question))
    return results


def open_calls_on_both_workers(server, timeout: float = 30) -> list[tuple[CallClient, str]]:
    """One call set up and left open on each worker: a call stays on the worker that accepted it."""
    kept: dict[str, CallClient] = {}
    deadline = time.monotonic() + timeout
    while len(kept) < 2:
        assert time.monotonic() < deadline, f"one worker accepted every call: {list(kept)}"
        call = CallClient.connect(server)
        call.setup()
        pid = worker_of(server, call.call_id)
        if pid in kept:
            call.hangup()
            call.close()
        else:
            kept[pid] = call
    return [(call, pid) for pid, call in kept.items()]


def last_pid_of(server, method: str, path: str) -> str:
    found = re.findall(rf'\[(\d+)\] \[INFO\] gunicorn\.access: \S+ "{method} {re.escape(path)} HTTP', server.log())
    assert found, f"no {method} {path} in the access log"
    return found[-1]


# --- the browser ------------------------------------------------------------------------------

def upload_in_browser(page, url: str, name: str, data: bytes, mime: str = "text/plain") -> str:
    """Upload through the form; wait until the page reports the outcome. Returns the outcome's text."""
    page.goto(url + "/logs-ui/kb")
    page.set_input_files("#kb-file", files=[{"name": name, "mimeType": mime, "buffer": data}])
    with page.expect_navigation():
        page.click("button:has-text('Загрузить и проиндексировать')")
    # A background job: the page polls the status and reloads itself when the job ends.
    outcome = page.wait_for_selector(".upload-done, .upload-error", timeout=60_000)
    return outcome.inner_text()


def active_version_id(server) -> int | None:
    with server.app.app_context():
        try:
            return db.session.scalar(select(KBVersion.id).where(KBVersion.active.is_(True)))
        finally:
            db.session.remove()


def test_kb_upload_bad_files_and_rollback(server, admin_page):
    page = admin_page
    assert HEARD_A not in make_call(server, QUESTION).answer  # the sample KB does not know it

    name_a = "База знаний — филиал Тагил.txt"
    outcome = upload_in_browser(page, server.url, name_a, kb_a_cp1251())
    assert f"Файл «{name_a}» проиндексирован (фрагментов: 3" in outcome and "теперь действует" in outcome
    version_a = active_version_id(server)
    row = page.locator(f"tr[data-version-id='{version_a}']")
    assert name_a in row.inner_text() and "cp1251" in row.inner_text() and "действует" in row.inner_text()
    assert "Стоимость выезда инженера в Нижний Тагил" in page.inner_text(".kb-content")
    screenshot(page, "admin-kb")
    settle()
    for result in calls_on_both_workers(server, QUESTION):
        assert HEARD_A in result.answer, result

    # Bad files: a clear message each, and calls still answer from the KB in force.
    for name, data, message in [
        ("пустой.txt", b"", "Файл пустой"),
        ("dump.txt", BINARY_TXT, "двоичные данные"),
        ("setup.exe", EXE, "Неподдерживаемый тип файла (.exe)"),
    ]:
        outcome = upload_in_browser(page, server.url, name, data, "application/octet-stream")
        assert message in outcome, outcome
        if name == "dump.txt":
            screenshot(page, "admin-kb-error")
        assert active_version_id(server) == version_a
        assert HEARD_A in make_call(server, QUESTION).answer

    # Too big: refused in the page before a byte is sent.
    page.goto(server.url + "/logs-ui/kb")
    page.set_input_files("#kb-file", files=[{"name": "огромный.txt", "mimeType": "text/plain",
                                             "buffer": b"a" * (LIMIT + 1)}])
    page.click("button:has-text('Загрузить и проиндексировать')")
    assert "Файл слишком большой: можно загрузить не больше 10 МБ" in page.inner_text(".upload-error")
    assert page.url == server.url + "/logs-ui/kb"
    with server.app.app_context():
        assert db.session.scalar(select(db.func.count(KBVersion.id)).where(KBVersion.filename == "огромный.txt")) == 0
        db.session.remove()

    # A second version (Markdown, UTF-8) replaces it ...
    outcome = upload_in_browser(page, server.url, "База B.md", kb_b_markdown(), "text/markdown")
    assert "теперь действует" in outcome
    settle()
    for result in calls_on_both_workers(server, QUESTION):
        assert HEARD_B in result.answer, result

    # ... and a rollback brings the first one back, on every worker.
    page.goto(server.url + "/logs-ui/kb")
    with page.expect_navigation():
        page.click(f"tr[data-version-id='{version_a}'] button:has-text('Сделать действующей')")
    assert f"Действует версия №{version_a}" in page.inner_text(".alert-success")
    assert active_version_id(server) == version_a
    settle()
    for result in calls_on_both_workers(server, QUESTION):
        assert HEARD_A in result.answer, result


def test_upload_cut_by_a_worker_restart_leaves_the_kb_in_force(server, admin_page):
    page = admin_page
    in_force = active_version_id(server)
    expected = make_call(server, QUESTION).answer
    # Big enough to take seconds to index (about 8 MB of distinct sections).
    big = "".join(kb_text(f"{i} {i % 1000:03d}").replace("Выезд инженера\n", f"Выезд инженера, заявка {i}\n")
                  for i in range(12_000)).encode("utf-8")
    open_calls = open_calls_on_both_workers(server)
    page.goto(server.url + "/logs-ui/kb")
    page.set_input_files("#kb-file", files=[{"name": "большая.txt", "mimeType": "text/plain", "buffer": big}])
    with page.expect_navigation():
        page.click("button:has-text('Загрузить и проиндексировать')")
    vid = int(re.search(r"upload=(\d+)", page.url).group(1))
    status_url = f"{server.url}/logs-ui/kb/versions/{vid}/status"
    eventually(lambda: page.request.get(status_url).json()["status"] == "indexing", timeout=30, interval=0.02)
    # Calls in progress on both workers, the indexing one included, keep being answered.
    for call, pid in open_calls:
        assert text_of(call.ask(QUESTION, timeout=20)) == expected, pid
        call.hangup()
        call.close()
    assert page.request.get(status_url).json()["status"] == "indexing", "indexing ended before the restart"
    worker = last_pid_of(server, "POST", "/logs-ui/kb/upload")  # the job runs in the worker that took the upload
    os.kill(int(worker), signal.SIGKILL)  # a crash; gunicorn starts a new worker

    def failed():
        try:
            s = page.request.get(status_url).json()  # the status view marks a job without heartbeat failed
        except PlaywrightError as exc:
            if "ECONNRESET" not in str(exc) and "socket hang up" not in str(exc):
                raise
            # Its pooled keep-alive connection went to the killed worker: ask again on a fresh one.
            cookies = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies(status_url))
            with urllib.request.urlopen(urllib.request.Request(status_url, headers={"Cookie": cookies}),
                                        timeout=10) as resp:
                s = json.load(resp)
        return s if s["status"] == "failed" else None

    status = eventually(failed, timeout=STALE * 4, interval=0.5)
    assert "Индексация прервалась" in status["error"]
    for attempt in range(3):
        try:
            page.goto(f"{server.url}/logs-ui/kb?upload={vid}")
            break
        except PlaywrightError as exc:
            # The page follows the job (static/admin/kb.js) and reloads itself once it has ended: that reload
            # may cut this navigation short. Navigate again once it is done.
            if "interrupted by another navigation" not in str(exc) or attempt == 2:
                raise
            page.wait_for_load_state()
    assert "Индексация прервалась" in page.inner_text(".upload-error")
    assert page.locator(f"tr[data-version-id='{vid}'] button:has-text('Повторить')").count() == 1
    assert active_version_id(server) == in_force
    for result in calls_on_both_workers(server, QUESTION):
        assert result.answer == expected, result


def test_greeting_change_reaches_the_next_call_on_another_worker(server, admin_page):
    page = admin_page
    old = BotSettings().greeting
    # Both workers have served a call, so each holds the old greeting in its cache.
    for result in calls_on_both_workers(server):
        assert result.greeting == old

    new = "Добрый день! Метротест, голосовой помощник. Спросите о машинах, поверке или доставке."
    page.goto(server.url + "/logs-ui/settings")
    page.fill("textarea[name=greeting]", new)
    page.fill("input[name=operator_phone]", "позвоните Ивану")
    with page.expect_navigation():
        page.click("button:has-text('Сохранить')")
    assert "не похоже на номер телефона" in page.inner_text(".settings-form")  # refused, the greeting kept in the form
    assert page.input_value("textarea[name=greeting]") == new
    page.fill("input[name=operator_phone]", "+7 343 000-12-99")
    with page.expect_navigation():
        page.click("button:has-text('Сохранить')")
    assert "Настройки сохранены" in page.inner_text(".alert-success")
    history = page.locator("tr.settings-version").first.inner_text()
    assert ADMIN in history and "Приветствие" in history
    screenshot(page, "admin-settings")
    saved_by = last_pid_of(server, "POST", "/logs-ui/settings")

    settle()
    results = []
    deadline = time.monotonic() + 30
    while not any(r.pid != saved_by for r in results):
        assert time.monotonic() < deadline, "the other worker served no call"
        results.append(make_call(server))
    assert all(r.greeting == new for r in results), [(r.pid, r.greeting) for r in results]
    assert results[-1].pid != saved_by  # the next call on the worker that did not save it has it too


def test_try_page_streams_the_same_answer_as_a_call(server, admin_page):
    page = admin_page
    question = QUESTION if active_version_id(server) else "До скольки работает отдел продаж?"
    from_call = make_call(server, question).answer
    page.goto(server.url + "/logs-ui/try")
    page.fill("textarea[name=question]", question)
    page.click("button:has-text('Спросить')")
    page.wait_for_selector("#try-result[data-done]")
    # The page shows the written answer; the call spoke its speech form.
    assert speech_form(page.inner_text("#try-answer").strip()) == from_call
    assert page.locator("#try-answer .piece").count() >= 1
    passages = page.locator("#try-passages li")
    assert passages.count() >= 1
    assert re.search(r"оценка \d+,\d{3}", passages.first.inner_text())
    assert page.inner_text("#try-status") == "ответ из базы знаний"
    assert "первая фраза" in page.inner_text("#try-timings")
    screenshot(page, "admin-try")


def test_analytics_groups_word_forms_and_lists_unanswered(server, admin_page):
    page = admin_page
    make_call(server, "Как оформить заказ на твердомер?")
    make_call(server, "как оформить заказы на твердомеры")
    unanswered = make_call(server, "Продаёте ли вы слонов для зоопарка?")
    assert "нет точного ответа" in unanswered.answer
    with server.app.app_context():
        from metrotest_bot.models import Call

        call_id = db.session.scalar(select(Call.id).where(Call.vox_call_id == unanswered.vox_call_id))
        db.session.remove()

    page.goto(server.url + "/logs-ui/analytics")
    rows = page.locator("table.top-questions tr.question-row").filter(has_text="твердомер")
    assert rows.count() == 1  # two word forms, one question
    assert rows.first.locator(".question-count").inner_text() == "2"
    assert int(page.inner_text("[data-stat=calls] .stat-value").replace("\u202f", "")) >= 3
    assert page.locator("svg.chart rect.bar").count() == 30
    screenshot(page, "admin-analytics")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    screenshot(page, "admin-analytics-phone")

    row = page.locator("table.unanswered-questions tr.unanswered-row").filter(has_text="слонов")
    assert row.count() == 1
    link = row.locator(f"a[href='/logs-ui/calls/{call_id}']")
    assert link.count() == 1
    with page.expect_navigation():
        link.click()
    assert "Продаёте ли вы слонов для зоопарка?" in page.inner_text(".conversation")
    assert "нет ответа в базе знаний" in page.inner_text(".conversation")
