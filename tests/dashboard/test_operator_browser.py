"""The operator panels and pages in headless Chromium (issues 18 and 19).

What a person sees: the guard banner, the at-risk, vendor-health and
silences panels, the drill-down cycle → healings → order by clicking, a
filter error, and the what-if chart — each page with no CSP violation.
Screenshots go to a temporary directory, and to docs/ with SAVE_SCREENSHOTS=1
(docs/dashboard-operations.png, -cycle.png, -order.png, -whatif.png).
Debian's chromium + chromium-driver (scripts/install-browser.sh); without
them these tests skip, except under CI.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from healing.silences import SilenceSpec, silence_create
from orders.models import VendorCircuit
from tests.dashboard.conftest import PASSWORD
from tests.dashboard.test_dashboard_browser import _wait
from tests.factories import (
    HealingActionFactory,
    HealingCycleFactory,
    OrderFactory,
    OrderStatusChangeFactory,
    VendorFactory,
    VendorMessageFactory,
)
from tests.test_security_csp_browser import browser_login, chromium, csp_violations

__all__ = ["chromium"]  # the fixture, imported for pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("rules"),
]

DOCS = Path(settings.BASE_DIR) / "docs"


@pytest.fixture
def screenshot(tmp_path):
    def save(driver, name: str) -> Path:
        driver.set_window_size(
            1440,
            driver.execute_script(
                "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
            )
            + 60,
        )
        path = tmp_path / f"{name}.png"
        assert driver.save_screenshot(str(path))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("SAVE_SCREENSHOTS") == "1":
            assert driver.save_screenshot(str(DOCS / f"{name}.png"))
        driver.set_window_size(1440, 1300)
        return path

    return save


@pytest.fixture
def operations(role_user):
    return role_user("OPERATIONS", "ops-browser")


@pytest.fixture
def busy_day(role_user):
    """A tripped guard (two cycles), three orders held by it, one at risk, a
    vendor whose circuit is open, one closed today, and a silence holding one
    order."""
    now = timezone.now()
    down = VendorFactory(name="Down Logistics")
    VendorCircuit.objects.create(
        vendor=down,
        state="OPEN",
        failures=6,
        opened_at=now - timedelta(minutes=12),
        last_error="gateway timeout after 5 s",
        updated_at=now,
    )
    VendorFactory(name="Holiday Supplies", holidays=[timezone.localdate(now).isoformat()])
    HealingCycleFactory(started_at=now - timedelta(minutes=30), status="FINISHED")
    cycles = [
        HealingCycleFactory(
            started_at=now - timedelta(minutes=m),
            status="FINISHED",
            guard_tripped=True,
            detected=45,
            open_orders=60,
        )
        for m in (20, 10)
    ]
    held = []
    for n in range(3):
        order = OrderFactory(status="ACCEPTED", vendor=down, stuck_minutes=200 + n)
        OrderStatusChangeFactory(order=order, from_status="CONFIRMED", to_status="ACCEPTED")
        VendorMessageFactory(order=order, vendor=down, status="FAILED", error="gateway timeout")
        held.append(
            HealingActionFactory(
                order=order,
                cycle=cycles[-1],
                previous_vendor=down,
                issue_type="STUCK_ACCEPTED",
                detected_status="ACCEPTED",
                recovery_action="REASSIGN_VENDOR",
                recovery_status="SKIPPED",
                skip_reason="GUARD",
                claim_token=None,
                lease_expires_at=None,
            )
        )
    at_risk = OrderFactory(status="PENDING", stuck_minutes=26)
    maintained = VendorFactory(name="Maintained Ltd")
    silence = silence_create(
        spec=SilenceSpec(
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=3),
            comment="warehouse move",
            vendor_id=maintained.pk,
        ),
        owner=role_user("ADMIN", "silence-owner"),
    )
    silenced = OrderFactory(status="CONFIRMED", vendor=maintained, stuck_minutes=90)
    HealingActionFactory(
        order=silenced,
        detected_status="CONFIRMED",
        episode_started_at=silenced.stuck_since,
        recovery_status="SKIPPED",
        skip_reason="SILENCED",
        silence=silence,
        claim_token=None,
        lease_expires_at=None,
    )
    return {"cycle": cycles[-1], "held": held, "at_risk": at_risk, "silence": silence}


def _texts(driver, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]


def test_overview_shows_the_guard_banner_at_risk_vendors_and_silences(
    live_server, chromium, operations, busy_day, screenshot
):
    from selenium.webdriver.common.by import By

    browser_login(chromium, live_server.url, "/dashboard/login/", operations.username, PASSWORD)
    _wait(chromium, lambda d: d.find_element(By.ID, "dashboard").get_attribute("data-ready"))

    banner = chromium.find_element(By.ID, "guard-banner")
    assert banner.is_displayed()
    assert banner.text.startswith("Blast-radius guard tripped. Reassign, cancel and escalate")
    assert "are paused since" in banner.text and "3 orders held" in banner.text
    assert "45 of 60 open orders were stuck" in banner.text

    risk = _texts(chromium, "#at-risk-rows tr")
    assert len(risk) == 1 and busy_day["at_risk"].number in risk[0]
    assert chromium.find_element(By.ID, "at-risk-total").text == "1 order"
    assert _texts(chromium, "#panel-at-risk thead tr")[:2] == ["Status Orders", "Vendor Orders"]
    assert _texts(chromium, "#at-risk-status tr") == ["PENDING 1"]

    vendors = {
        r.find_element(By.CSS_SELECTOR, "td").text: r.text
        for r in chromium.find_elements(By.CSS_SELECTOR, "#vendor-rows tr")
    }
    assert "Open (no calls)" in vendors["Down Logistics"]
    assert "gateway timeout after 5 s" in vendors["Down Logistics"]
    assert "closed now" in vendors["Holiday Supplies"]
    assert list(vendors)[0] == "Down Logistics"  # the open circuit first

    silences = _texts(chromium, "#silence-rows tr")
    assert len(silences) == 1
    assert "vendor Maintained Ltd" in silences[0] and "warehouse move" in silences[0]
    holding = chromium.find_element(By.CSS_SELECTOR, "#silence-rows tr").get_attribute(
        "data-holding"
    )
    assert holding == "1"

    guard_cells = _texts(chromium, "#cycle-rows tr.guard-row td.guard-cell")
    assert guard_cells == ["tripped", "tripped"]
    assert csp_violations(chromium) == []
    screenshot(chromium, "dashboard-operations")


def test_drill_down_from_a_cycle_to_its_healings_to_the_order(
    live_server, chromium, operations, busy_day, screenshot
):
    from selenium.webdriver.common.by import By

    browser_login(chromium, live_server.url, "/dashboard/login/", operations.username, PASSWORD)
    _wait(chromium, lambda d: d.find_element(By.ID, "dashboard").get_attribute("data-ready"))
    cycle = busy_day["cycle"]

    # The cycle's number in the overview's table opens the cycle.
    chromium.find_element(By.CSS_SELECTOR, f"#cycle-rows tr[data-cycle='{cycle.pk}'] a").click()
    _wait(chromium, lambda d: d.find_elements(By.ID, "panel-cycle"))
    assert f"/dashboard/cycles/{cycle.pk}/" in chromium.current_url
    assert (
        "The blast-radius guard was tripped in this cycle"
        in chromium.find_element(By.ID, "cycle-guard").text
    )
    whys = _texts(chromium, "#healing-table td.why")
    assert len(whys) == 3
    assert all(w.startswith("Held back by the blast-radius guard") for w in whys)
    assert "GUARD" not in " ".join(whys)
    assert csp_violations(chromium) == []
    screenshot(chromium, "dashboard-cycle")

    # A healing's order opens the order: its status history and messages.
    order = busy_day["held"][0].order
    chromium.find_element(By.LINK_TEXT, order.number).click()
    _wait(chromium, lambda d: d.find_elements(By.ID, "panel-history"))
    assert chromium.find_element(By.CSS_SELECTOR, "#panel-order h2").text.startswith(
        f"Order {order.number}"
    )
    history = _texts(chromium, "#history-table tbody tr")
    assert any("CONFIRMED" in row and "ACCEPTED" in row for row in history)
    assert any("— → Down Logistics" in row and "order placed" in row for row in history)
    messages = _texts(chromium, "#message-table tbody tr")
    assert any("Failed" in row and "gateway timeout" in row for row in messages)
    assert (
        "Held back by the blast-radius guard"
        in chromium.find_element(By.ID, "order-healing-table").text
    )
    assert csp_violations(chromium) == []
    screenshot(chromium, "dashboard-order")

    # A filter the page cannot read says which field, in words.
    chromium.get(live_server.url + "/dashboard/healings/?vendor=abc&status=FAILED")
    error = _wait(chromium, lambda d: d.find_element(By.CSS_SELECTOR, ".field-error"))
    assert error.get_attribute("data-field") == "vendor"
    assert error.text == "No vendor with that id."


def test_what_if_draws_the_comparison_chart(live_server, chromium, operations, screenshot):
    from selenium.webdriver.common.by import By

    start = timezone.now() - timedelta(hours=4)
    for minutes in (22, 25, 45, 50):
        order = OrderFactory()
        OrderStatusChangeFactory(order=order, from_status="", to_status="PENDING", created_at=start)
        OrderStatusChangeFactory(
            order=order,
            to_status="CANCELLED",
            actor_type="USER",
            created_at=start + timedelta(minutes=minutes),
        )
    browser_login(chromium, live_server.url, "/dashboard/login/", operations.username, PASSWORD)
    chromium.get(live_server.url + "/dashboard/what-if/")
    chromium.find_element(By.NAME, "days").clear()
    chromium.find_element(By.NAME, "days").send_keys("1")
    chromium.find_element(By.NAME, "threshold_PENDING").send_keys("20")
    chromium.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()

    chart = _wait(chromium, lambda d: d.find_element(By.ID, "whatif-chart"))
    bars = {
        (bar.get_attribute("data-series"), bar.get_attribute("data-key")): bar
        for bar in chart.find_elements(By.CSS_SELECTOR, "rect[data-key]")
    }
    today = bars[("Today's rules", "flagged_orders")]
    proposed = bars[("Proposed rules", "flagged_orders")]
    assert (today.get_attribute("data-value"), proposed.get_attribute("data-value")) == ("2", "4")
    # Drawn: the proposed bar is twice as long as today's on screen.
    assert proposed.size["width"] == pytest.approx(2 * today.size["width"], rel=0.05)
    assert today.size["width"] > 50
    assert "Recovered by themselves first" in chart.text
    assert csp_violations(chromium) == []
    screenshot(chromium, "dashboard-whatif")
