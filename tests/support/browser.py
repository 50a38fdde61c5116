"""Real Chromium (Debian's /usr/bin/chromium) driven by Playwright's sync API.

    def test_x(live_server, page):        # `page`: a fresh browser context per test
        sign_in_browser(page, live_server.url)
        screenshot(page, "calls")         # -> test-artifacts/calls.png
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, locale="ru-RU", viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in_browser(page, base_url: str, username: str, password: str) -> None:
    """Fill the sign-in form as a person would."""
    page.goto(base_url + "/logs-ui/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


@contextlib.contextmanager
def phone_tab(browser, base_url: str, username: str, password: str):
    """A signed-in tab in a phone-sized, touch browser context (closed afterwards)."""
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                locale="ru-RU")
    try:
        tab = phone.new_page()
        sign_in_browser(tab, base_url, username, password)
        tab.wait_for_url("**/logs-ui/")
        yield tab
    finally:
        phone.close()
