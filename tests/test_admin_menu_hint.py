"""On a phone the panel's menu is wider than the screen: its edge fades while more of it lies to the right."""
from .support.admin_data import ADMIN, PASSWORD, make_admin
from .support.browser import phone_tab, screenshot


def test_the_phone_menu_shows_it_scrolls(live_server, browser):
    make_admin(live_server.app)
    with phone_tab(browser, live_server.url, ADMIN, PASSWORD) as tab:
        nav = tab.locator("nav.nav")
        assert tab.evaluate("(() => { const n = document.querySelector('.nav');"
                            " return n.scrollWidth > n.clientWidth; })()")  # the menu does not fit
        assert "more-right" in nav.get_attribute("class")
        screenshot(tab, "admin-menu-hint-phone")
        tab.evaluate("(() => { const n = document.querySelector('.nav'); n.scrollLeft = n.scrollWidth;"
                     " n.dispatchEvent(new Event('scroll')); })()")
        tab.wait_for_timeout(100)
        assert "more-right" not in (nav.get_attribute("class") or "")  # scrolled to its end: no fade
