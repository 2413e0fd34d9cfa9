"""The dashboard, the admin and Swagger UI work in Chromium under the CSP.

Chromium logs every blocked script, style, image or fetch to the console as
"... violates the following Content Security Policy directive ..."; the
tests read the console (``driver.get_log("browser")``) after each page.
The first test proves the check sees a violation when there is one.
Debian's chromium + chromium-driver (scripts/install-browser.sh); without
them these tests skip, except under CI.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest

from orders.roles import ADMIN, role_user_create
from tests.dashboard.test_dashboard_browser import CHROMIUM_FLAGS, _binaries, _wait
from tests.factories import AdminNotificationFactory, OrderFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-csp-browser-123456"
CSP_MARKERS = ("Content Security Policy", "Content-Security-Policy")


@pytest.fixture
def chromium() -> Iterator:
    """The dashboard tests' headless Chromium, with its console log kept."""
    import os

    browser, chromedriver = _binaries()
    if not (browser and chromedriver):
        reason = "needs Debian's chromium and chromium-driver: run scripts/install-browser.sh"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


def csp_violations(driver) -> list[str]:
    """Console messages about the CSP since the last call (get_log drains the log)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if any(marker in entry["message"] for marker in CSP_MARKERS)
    ]


def browser_login(driver, base: str, path: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base + path)
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    _wait(driver, lambda d: "/login/" not in d.current_url)


@pytest.fixture
def csp_admin():
    return role_user_create(username="csp-browser-admin", password=PASSWORD, role=ADMIN)[0]


def test_the_console_check_sees_a_violation(live_server, chromium):
    chromium.get(live_server.url + "/admin/login/")
    assert csp_violations(chromium) == []
    # An inline style without the nonce is refused, and Chromium says so.
    chromium.execute_script(
        "const s = document.createElement('style');"
        "s.textContent = 'body { color: red }';"
        "document.head.appendChild(s);"
    )
    _wait(chromium, lambda d: csp_violations(d), timeout=5)


def test_dashboard_admin_and_swagger_load_with_no_csp_violation(live_server, chromium, csp_admin):
    from selenium.webdriver.common.by import By

    notification = AdminNotificationFactory(
        severity="CRITICAL", order=OrderFactory(status="CONFIRMED", stuck_minutes=200)
    )
    AdminNotificationFactory(severity="LOW", order=None, dedup_key="x", title="Low one")

    browser_login(chromium, live_server.url, "/dashboard/login/", csp_admin.username, PASSWORD)
    _wait(chromium, lambda d: d.find_element(By.ID, "dashboard").get_attribute("data-ready"))
    # the charts are drawn: Chart.js ran under the policy
    assert chromium.execute_script("return Object.keys(window.dashboardCharts || {}).length") > 0
    assert csp_violations(chromium) == [], "dashboard"

    pages = [
        ("/admin/", "#content"),
        ("/admin/notifications/adminnotification/", "#result_list"),
        (f"/admin/notifications/adminnotification/{notification.pk}/change/", "#content-main"),
        (f"/admin/orders/order/{notification.order_id}/change/", "#content-main"),
        ("/admin/healing/stuckrule/", "#result_list"),
        ("/admin/axes/accessattempt/", "#content"),
    ]
    for path, selector in pages:
        chromium.get(live_server.url + path)
        _wait(chromium, lambda d, s=selector: d.find_elements(By.CSS_SELECTOR, s))
        assert chromium.title and "error" not in chromium.title.lower(), (path, chromium.title)
        assert csp_violations(chromium) == [], path

    # Swagger UI: its bundle runs, fetches the schema and draws the operations.
    chromium.get(live_server.url + "/api/docs/")
    _wait(chromium, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"), timeout=30)
    assert len(chromium.find_elements(By.CSS_SELECTOR, ".opblock")) > 5
    assert csp_violations(chromium) == [], "swagger"
