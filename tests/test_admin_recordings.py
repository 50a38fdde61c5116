"""Recordings play on the call page: an <audio controls> whose source is the recording URL, and a
turn's «▶ +m:ss» button seeks to that turn's offset. Real Chromium against the served app and a local
HTTP server holding the recording (with byte ranges, as real record storage answers)."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from .support.admin_data import ADMIN, PASSWORD, make_admin, make_call
from .support.browser import phone_tab, screenshot, sign_in_browser

START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)


def call_with_recording(app, url: str | None) -> int:
    turns = [
        {"role": "bot", "kind": "greeting", "text": "Здравствуйте! Вы позвонили в «Метротест».",
         "created_at": START + timedelta(seconds=1)},
        {"role": "caller", "text": "Сколько стоит доставка?", "created_at": START + timedelta(seconds=6)},
        {"role": "bot", "text": "Доставка по Екатеринбургу бесплатно.", "answered": True,
         "question": "Сколько стоит доставка?", "created_at": START + timedelta(seconds=8)},
        {"role": "caller", "text": "А в Казань?", "created_at": START + timedelta(seconds=21)},
        {"role": "bot", "text": "В Казань — транспортной компанией.", "answered": True, "question": "А в Казань?",
         "created_at": START + timedelta(seconds=23, milliseconds=500)},
    ]
    return make_call(app, START, turns, recording_url=url, duration_s=40.0, ended_at=START + timedelta(seconds=40),
                     summary="Вопросы (2): «Сколько стоит доставка?» — ответ дан; «А в Казань?» — ответ дан. "
                             "Итог: завершён.")


def test_the_call_page_has_an_audio_player_and_seek_buttons(app, admin_client, media_server):
    url = media_server.recording_url("a.wav")
    cid = call_with_recording(app, url)
    html = admin_client.get(f"/logs-ui/calls/{cid}").get_data(as_text=True)
    assert re.search(r'<audio id="call-audio" controls preload="metadata" src="' + re.escape(url) + '">', html)
    assert re.findall(r'class="btn btn-small seek" data-offset="([\d.]+)"', html) == [
        "1.0", "6.0", "8.0", "21.0", "23.5"]
    assert "admin/recording.js" in html
    assert "Итог разговора" in html and "«А в Казань?» — ответ дан" in html


@pytest.mark.parametrize("url", [None, "javascript:alert(1)", "ftp://records.example/a.wav"])
def test_no_player_without_a_playable_recording_url(app, admin_client, url):
    cid = call_with_recording(app, url)
    html = admin_client.get(f"/logs-ui/calls/{cid}").get_data(as_text=True)
    assert "<audio" not in html and "seek" not in html and "recording.js" not in html
    assert "+0:06" in html  # the offsets are still shown as text


def wait_true(page, expression: str, timeout: float = 10.0) -> None:
    """Poll a page expression (the panel's CSP forbids eval, which Playwright's wait_for_function uses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"never true: {expression}"
        time.sleep(0.05)


def test_the_recording_plays_and_a_turn_seeks_to_its_offset_in_chromium(live_server_factory, page, browser,
                                                                        media_server):
    # The recording host is plain HTTP on loopback here: allowed as a media source for this server only.
    live_server = live_server_factory(CSP_MEDIA_SRC="'self' https: http://127.0.0.1:*")
    app = live_server.app
    make_admin(app)
    url = media_server.recording_url("call.wav")
    cid = call_with_recording(app, url)
    sign_in_browser(page, live_server.url, ADMIN, PASSWORD)
    page.wait_for_url("**/logs-ui/")
    page.goto(f"{live_server.url}/logs-ui/calls/{cid}")
    audio = page.locator("audio#call-audio")
    assert audio.get_attribute("src") == url and audio.get_attribute("controls") is not None
    # The browser loaded the recording's metadata from its URL: it knows the length.
    wait_true(page, "document.getElementById('call-audio').readyState >= 1")
    duration = page.evaluate("document.getElementById('call-audio').duration")
    assert abs(duration - media_server.SECONDS) < 0.5

    page.click("li.turn:has-text('А в Казань?') button.seek")
    wait_true(page, "Math.abs(document.getElementById('call-audio').currentTime - 21) < 1.5")
    assert "is-playing" in page.locator("li.turn:has-text('А в Казань?')").get_attribute("class")
    page.evaluate("document.getElementById('call-audio').pause()")
    page.click("li.turn:has-text('Сколько стоит доставка?') button.seek")
    wait_true(page, "Math.abs(document.getElementById('call-audio').currentTime - 6) < 1.5")
    page.evaluate("document.getElementById('call-audio').pause()")
    screenshot(page, "admin-call-recording")

    with phone_tab(browser, live_server.url, ADMIN, PASSWORD) as tab:
        tab.goto(f"{live_server.url}/logs-ui/calls/{cid}")
        wait_true(tab, "document.getElementById('call-audio').readyState >= 1")
        box = tab.locator("audio#call-audio").bounding_box()
        assert box["width"] <= 390 and box["width"] > 200
        assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        screenshot(tab, "admin-call-recording-phone")
