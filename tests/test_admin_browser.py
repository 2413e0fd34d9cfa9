"""The admin's notification and order pages in headless Chromium (issue 20 item 15).

Laid out at 1440 px (and 1920 px for the action bar): the Acknowledge /
Resolve bar clear of the title, the list's last columns on screen, order
numbers on one line, severities coloured, unresolved notifications by
default; the manual-intervention detail with names and readable dates; the
read-only order page without Save or Delete. Screenshots go to a temporary
directory, and to docs/ with SAVE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from healing.models import RecoveryStatus
from orders.roles import ADMIN, role_user_create
from tests.dashboard.test_dashboard_browser import _wait
from tests.factories import AdminNotificationFactory, HealingActionFactory, OrderFactory
from tests.test_security_csp_browser import browser_login, chromium, csp_violations

__all__ = ["chromium"]  # the fixture, imported for pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-admin-browser-123456"
DOCS = Path(settings.BASE_DIR) / "docs"
ISO_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


@pytest.fixture
def screenshots(tmp_path):
    def save(driver, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        assert driver.save_screenshot(str(path))
        if os.environ.get("SAVE_SCREENSHOTS") == "1":
            DOCS.mkdir(exist_ok=True)
            assert driver.save_screenshot(str(DOCS / f"{name}.png"))
        return path

    return save


@pytest.fixture
def signed_in(live_server, chromium):
    user = role_user_create(username="admin-browser", password=PASSWORD, role=ADMIN)[0]
    viewport(chromium, 1440)
    browser_login(chromium, live_server.url, "/admin/login/", user.username, PASSWORD)
    return chromium


def viewport(driver, width: int, height: int = 1000) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def manual_intervention():
    order = OrderFactory(status="CONFIRMED", stuck_minutes=300)
    healing = HealingActionFactory(
        order=order,
        issue_type="STUCK_CONFIRMED",
        recovery_action="MANUAL_INTERVENTION",
        recovery_status=RecoveryStatus.MANUAL_REQUIRED,
        claim_token=None,
        lease_expires_at=None,
    )
    detected = timezone.now() - timedelta(hours=3)
    return AdminNotificationFactory(
        order=order,
        healing_action=healing,
        severity="HIGH",
        notification_type="MANUAL_INTERVENTION_REQUIRED",
        title=f"Manual intervention required: order {order.number} stuck in CONFIRMED",
        details={
            "order": {
                "order_id": order.pk,
                "order_number": order.number,
                "status": "CONFIRMED",
                "vendor_id": order.vendor_id,
                "buyer_id": order.buyer_id,
                "stuck_since": order.stuck_since.isoformat(),
                "stuck_minutes": 300,
                "payment_method": "CREDIT",
                "total": "250.00",
            },
            "attempts": 2,
            "current_status": "CONFIRMED",
            "detected_at": detected.isoformat(),
            "history": [
                {
                    "id": healing.pk,
                    "issue_detected_at": detected.isoformat(),
                    "recovery_action": "RETRY_WORKFLOW",
                    "recovery_status": "FAILED",
                    "retry_count": 2,
                    "error_message": "vendor gateway: timeout",
                }
            ],
        },
    )


@pytest.fixture
def notifications():
    rows = [manual_intervention()]
    for n, severity in enumerate(["CRITICAL", "HIGH", "MEDIUM", "LOW"] * 4):
        order = OrderFactory(status="PENDING", stuck_minutes=60 + n)
        rows.append(
            AdminNotificationFactory(
                order=order,
                severity=severity,
                occurrences=n + 1,
                title=f"Healing failed for order {order.number} after 3 attempts (REASSIGN_VENDOR)",
            )
        )
    resolved = AdminNotificationFactory(
        severity="CRITICAL", title="Resolved already", resolved_at=timezone.now()
    )
    return {"open": rows, "resolved": resolved}


def _rect(driver, element) -> dict:
    return driver.execute_script("return arguments[0].getBoundingClientRect().toJSON();", element)


def _text_rect(driver, element) -> dict:
    return driver.execute_script(
        "const r = document.createRange(); r.selectNodeContents(arguments[0]);"
        "return r.getBoundingClientRect().toJSON();",
        element,
    )


def _overlap(a: dict, b: dict) -> bool:
    return not (
        a["right"] <= b["left"]
        or b["right"] <= a["left"]
        or a["bottom"] <= b["top"]
        or b["bottom"] <= a["top"]
    )


def test_the_list_fits_1440_px_and_lists_unresolved_by_default(
    live_server, signed_in, notifications, screenshots
):
    from selenium.webdriver.common.by import By

    driver = signed_in
    driver.get(live_server.url + "/admin/notifications/adminnotification/")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"))
    screenshots(driver, "admin-notifications-1440")

    # Unresolved by default: the resolved one is not listed.
    rows = driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == len(notifications["open"])
    assert "Resolved already" not in driver.find_element(By.ID, "result_list").text

    # No column is cut off: the table fits its box and the window.
    results = driver.find_element(By.CSS_SELECTOR, "#changelist .results")
    assert driver.execute_script(
        "return arguments[0].scrollWidth <= arguments[0].clientWidth;", results
    )
    width = driver.execute_script("return document.documentElement.clientWidth;")
    for column in ("acknowledged", "resolved", "created"):
        header = driver.find_element(By.CSS_SELECTOR, f"#result_list th.column-{column}")
        assert header.is_displayed()
        assert _rect(driver, header)["right"] <= width, column

    # Order numbers and dates on one line.
    for cell in driver.find_elements(
        By.CSS_SELECTOR, "#result_list td.field-order_link a, #result_list td.field-created span"
    ):
        assert driver.execute_script("return arguments[0].getClientRects().length;", cell) == 1
        assert _rect(driver, cell)["height"] < 30, cell.text

    # Severity in colour, a different one per level.
    colours = {
        level: driver.execute_script(
            "return getComputedStyle(arguments[0]).backgroundColor;",
            driver.find_element(By.CSS_SELECTOR, f".severity-{level}"),
        )
        for level in ("critical", "high", "medium", "low")
    }
    assert "rgba(0, 0, 0, 0)" not in colours.values()
    assert len(set(colours.values())) == 4

    # "All" shows the resolved one too.
    driver.get(live_server.url + "/admin/notifications/adminnotification/?resolved=all")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#result_list tbody tr"))
    assert "Resolved already" in driver.find_element(By.ID, "result_list").text
    assert csp_violations(driver) == []


@pytest.mark.parametrize("width", [1440, 1920])
def test_the_action_bar_does_not_overlap_the_title(
    live_server, signed_in, notifications, screenshots, width
):
    from selenium.webdriver.common.by import By

    driver = signed_in
    viewport(driver, width)
    notification = notifications["open"][0]
    driver.get(
        live_server.url + f"/admin/notifications/adminnotification/{notification.pk}/change/"
    )
    bar = _wait(driver, lambda d: d.find_element(By.ID, "notification-actions"))
    screenshots(driver, f"admin-notification-detail-{width}")

    title = driver.find_element(By.CSS_SELECTOR, "#content > h1")
    title_text = _text_rect(driver, title)
    assert not _overlap(_rect(driver, bar), title_text)
    assert _rect(driver, bar)["top"] >= title_text["bottom"]
    for tools in driver.find_elements(By.CSS_SELECTOR, ".object-tools"):
        assert not _overlap(_rect(driver, tools), title_text)
    for button in bar.find_elements(By.CSS_SELECTOR, "button"):
        assert button.is_displayed()
        assert _rect(driver, button)["right"] <= width


def test_the_manual_intervention_detail_reads_as_names_and_dates(
    live_server, signed_in, notifications, screenshots
):
    from selenium.webdriver.common.by import By

    driver = signed_in
    notification = notifications["open"][0]
    order = notification.order
    driver.get(
        live_server.url + f"/admin/notifications/adminnotification/{notification.pk}/change/"
    )
    details = _wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".field-details_display"))
    driver.execute_script("arguments[0].scrollIntoView();", details)
    screenshots(driver, "admin-manual-intervention-1440")

    text = details.text
    assert order.vendor.name in text and order.buyer.name in text
    assert f"Vendor\n{order.vendor_id}\n" not in text
    assert not ISO_TIMESTAMP.search(text), text
    assert timezone.localtime(order.stuck_since).strftime("%H:%M") in text
    inline = driver.find_element(By.CSS_SELECTOR, ".inline-group h2")
    assert inline.get_attribute("textContent").strip() == "Notification deliveries"


def test_the_read_only_order_page_has_no_save_or_delete(
    live_server, signed_in, notifications, screenshots
):
    from selenium.webdriver.common.by import By

    driver = signed_in
    order = notifications["open"][0].order
    driver.get(live_server.url + f"/admin/orders/order/{order.pk}/change/")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#content-main"))
    screenshots(driver, "admin-order-1440")

    assert order.number in driver.find_element(By.ID, "content-main").text
    assert not driver.find_elements(By.CSS_SELECTOR, "[name=_save], [name=_continue]")
    assert not driver.find_elements(By.CSS_SELECTOR, "a.deletelink")
    assert driver.find_elements(By.CSS_SELECTOR, ".submit-row a.closelink")
