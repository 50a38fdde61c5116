"""Security headers on every panel response (issue #13, ASVS 14.4): a CSP that allows
no inline script, no framing (the «Очистить журнал» clickjacking), nosniff, a strict
Referrer-Policy, and no caching of anything that holds call data."""
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .support.admin_data import ADMIN, PASSWORD, make_admin, make_call
from .support.browser import screenshot, sign_in_browser

PAGES = ["/logs-ui/", "/logs-ui/calls/{call}", "/logs-ui/export.csv", "/logs-ui/clear", "/logs-ui/kb",
         "/logs-ui/settings", "/logs-ui/try", "/logs-ui/analytics", "/logs-ui/password", "/logs-ui/calls/999999"]


def _directives(csp: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in csp.split(";") if part.strip()}


def assert_hardened(response, cacheable=False):
    h = response.headers
    csp = _directives(h.get("Content-Security-Policy", ""))
    assert csp.get("script-src") == "script-src 'self'", h
    assert csp.get("frame-ancestors") == "frame-ancestors 'none'"
    assert csp.get("object-src") == "object-src 'none'" and "default-src" in csp
    assert "unsafe-inline" not in h["Content-Security-Policy"] and "unsafe-eval" not in h["Content-Security-Policy"]
    assert h.get("X-Frame-Options") == "DENY"
    assert h.get("X-Content-Type-Options") == "nosniff"
    assert h.get("Referrer-Policy") in ("same-origin", "no-referrer", "strict-origin")
    if not cacheable:
        assert h.get("Cache-Control") == "no-store", (response.request.path, h)


def test_every_panel_page_has_the_headers(app, admin_client):
    call = make_call(app, turns=[("caller", "Сколько стоит доставка?"), ("bot", "Доставка бесплатная.")])
    for path in PAGES:
        response = admin_client.get(path.format(call=call))
        assert response.status_code in (200, 404), (path, response.status_code)
        assert_hardened(response)
    # Redirects, errors and the sign-in page too.
    anonymous = app.test_client()
    for response in (anonymous.get("/logs-ui/"), anonymous.get("/logs-ui/login"),
                     anonymous.post("/logs-ui/login", data={"username": "x"})):
        assert_hardened(response)
    # Static files may be cached, but keep the other headers.
    assert_hardened(anonymous.get("/static/admin/admin.js"), cacheable=True)


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
INLINE_STYLE = re.compile(r"<style\b|<[^>]+\sstyle\s*=", re.I)


def test_pages_carry_nothing_inline_that_the_policy_would_block(app, admin_client):
    call = make_call(app, turns=[("caller", "Здравствуйте"), ("bot", "Добрый день.")])
    for path in PAGES[:2] + PAGES[3:9]:
        html = admin_client.get(path.format(call=call)).get_data(as_text=True)
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, INLINE_STYLE):
            assert not pattern.search(html), (path, pattern.search(html).group(0))


@pytest.fixture
def attacker_site():
    """A page on the same site (127.0.0.1, another port) that frames the panel's clear page."""
    pages = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield pages, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.timeout(180)
def test_clear_page_cannot_be_framed_by_a_same_site_page(live_server, page, attacker_site):
    make_admin(live_server.app)
    make_call(live_server.app, turns=[("caller", "Алло")])
    sign_in_browser(page, live_server.url, ADMIN, PASSWORD)
    page.wait_for_url("**/logs-ui/")
    pages, origin = attacker_site
    pages["/prize"] = (f'<h1>Приз</h1><iframe id="f" src="{live_server.url}/logs-ui/clear" '
                       f'width="900" height="600"></iframe>')
    refused = []
    page.on("console", lambda msg: refused.append(msg.text) if "frame-ancestors" in msg.text else None)
    page.goto(origin + "/prize")
    page.wait_for_timeout(1500)
    framed = [f for f in page.frames if f is not page.main_frame]
    assert framed, "the iframe is there"
    for frame in framed:
        try:
            html = frame.content()
        except Exception:  # an error page Playwright cannot read is blocked too
            html = ""
        assert "Очистить журнал" not in html and "csrf_token" not in html, frame.url
    screenshot(page, "admin-clear-not-framed")
    assert refused, "Chromium reports the refusal (frame-ancestors 'none')"
    # The log is untouched and the panel itself still opens at the top level.
    page.goto(live_server.url + "/logs-ui/clear")
    assert page.locator("button:has-text('Очистить журнал')").count() == 1


@pytest.mark.timeout(180)
def test_panel_scripts_run_under_the_policy(live_server, page):
    """The policy breaks none of the panel's own scripts: no violation reported on any page."""
    make_admin(live_server.app)
    make_call(live_server.app, turns=[("caller", "Алло")])
    violations = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    sign_in_browser(page, live_server.url, ADMIN, PASSWORD)
    page.wait_for_url("**/logs-ui/")
    for path in ("/logs-ui/", "/logs-ui/kb", "/logs-ui/settings", "/logs-ui/analytics", "/logs-ui/password"):
        page.goto(live_server.url + path)
        page.wait_for_load_state("load")
    page.goto(live_server.url + "/logs-ui/try")
    page.fill("textarea[name=question], input[name=question]", "до скольки вы работаете")
    page.click("#try-form button[type=submit]")
    page.wait_for_selector("[data-done='1']", timeout=60_000)
    assert violations == []
