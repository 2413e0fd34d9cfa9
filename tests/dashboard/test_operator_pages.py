"""The dashboard's operator panels and pages (issues 18 and 19), through the test client.

Guard banner data, at-risk orders (wall clock and vendor time), vendor health,
active silences, the drill-down cycle → healings → order, filters (a bad
value is a 400 naming the field, never a 500) and the what-if page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard.at_risk import at_risk
from dashboard.panels import guard_state, silences_panel, vendors_panel
from healing.models import StuckRule
from healing.silences import SilenceSpec, silence_create
from orders.calendars import calendar_build, due_at_add
from orders.models import Order, VendorCircuit
from tests.factories import (
    HealingActionFactory,
    HealingCycleFactory,
    OrderFactory,
    OrderStatusChangeFactory,
    VendorFactory,
    VendorMessageFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]


def _guard_cycles(now: datetime) -> list:
    """Cycles 30, 20 and 10 minutes ago: clear, then tripped twice; the newest
    left two orders SKIPPED/GUARD."""
    cycles = [
        HealingCycleFactory(
            started_at=now - timedelta(minutes=m),
            status="FINISHED",
            guard_tripped=tripped,
            detected=40,
            open_orders=50,
        )
        for m, tripped in ((30, False), (20, True), (10, True))
    ]
    for _ in range(2):
        HealingActionFactory(
            order=OrderFactory(status="ACCEPTED", stuck_minutes=200),
            cycle=cycles[-1],
            recovery_action="REASSIGN_VENDOR",
            recovery_status="SKIPPED",
            skip_reason="GUARD",
            claim_token=None,
            lease_expires_at=None,
        )
    return cycles


def test_guard_state_says_since_when_and_how_many_orders_are_held():
    now = timezone.now()
    cycles = _guard_cycles(now)

    state = guard_state()

    assert state["tripped"] is True
    assert state["since"] == cycles[1].started_at.isoformat()
    assert state["held"] == 2
    assert state["cycle_id"] == cycles[2].pk
    assert (state["stuck"], state["open_orders"]) == (40, 50)
    assert state["paused"] == ["reassign", "cancel", "escalate"]
    # A newer clear cycle lifts it.
    HealingCycleFactory(started_at=now - timedelta(minutes=1), status="FINISHED")
    assert guard_state()["tripped"] is False


def test_at_risk_lists_orders_past_80_percent_of_the_wall_clock_threshold():
    now = timezone.now()
    risky = OrderFactory(status="PENDING", stuck_minutes=25)  # 25 of 30 min
    OrderFactory(status="PENDING", stuck_minutes=20)  # 67 %: not yet
    OrderFactory(status="PENDING", stuck_minutes=45)  # stuck already: the healer's
    confirmed = OrderFactory(status="CONFIRMED", stuck_minutes=50)  # 50 of 60

    risk = at_risk(now=now)

    assert [o["order_id"] for o in risk["orders"]] == [risky.pk, confirmed.pk]
    assert risk["orders"][0]["minutes_left"] == pytest.approx(5, abs=0.2)
    assert risk["by_status"] == [
        {"status": "CONFIRMED", "count": 1},
        {"status": "PENDING", "count": 1},
    ]
    assert risk["orders"][0]["url"] == reverse("dashboard:order", args=[risky.pk])


def test_at_risk_counts_working_minutes_for_a_vendor_with_a_calendar():
    """Mon-Fri 08:00-18:00 UTC; Monday 08:40: an order confirmed Friday 17:50
    has waited 50 working minutes of its 60 (at risk), one confirmed Sunday
    23:50 only 40 (not yet), though both are many wall-clock hours old."""
    hours = {str(day): [["08:00", "18:00"]] for day in range(5)}  # 0 = Monday
    vendor = VendorFactory(time_zone="UTC", working_hours=hours)
    calendar = calendar_build(time_zone="UTC", working_hours=hours, holidays=[])
    now = datetime(2026, 3, 2, 8, 40, tzinfo=UTC)  # a Monday
    orders = []
    for since in (
        datetime(2026, 2, 27, 17, 50, tzinfo=UTC),
        datetime(2026, 3, 1, 23, 50, tzinfo=UTC),
    ):
        order = OrderFactory(status="CONFIRMED", vendor=vendor)
        Order.objects.filter(pk=order.pk).update(
            stuck_since=since, due_at=due_at_add(start=since, minutes=60, calendar=calendar)
        )
        orders.append(order)

    risk = at_risk(now=now)

    assert [(o["order_id"], o["elapsed_minutes"]) for o in risk["orders"]] == [(orders[0].pk, 50.0)]
    assert risk["orders"][0]["vendor_time"] is True
    assert risk["by_vendor"] == [{"vendor": vendor.name, "count": 1}]


def test_vendor_panel_puts_open_circuits_and_closed_vendors_first():
    now = timezone.now()
    healthy = VendorFactory(name="A healthy")
    down = VendorFactory(name="Z down")
    closed = VendorFactory(name="M closed", holidays=[timezone.localdate(now).isoformat()])
    opened = now - timedelta(minutes=7)
    VendorCircuit.objects.create(
        vendor=down,
        state="OPEN",
        failures=5,
        opened_at=opened,
        last_error="timeout",
        updated_at=now,
    )

    panel = vendors_panel(now=now)

    names = [row["name"] for row in panel["rows"]]
    assert names.index("Z down") < names.index("M closed") < names.index("A healthy")
    row = panel["rows"][0]
    assert (row["state"], row["failures"], row["open_since"]) == ("OPEN", 5, opened.isoformat())
    assert row["last_error"] == "timeout"
    assert next(r for r in panel["rows"] if r["id"] == closed.pk)["calendar_open"] is False
    assert next(r for r in panel["rows"] if r["id"] == healthy.pk)["calendar_open"] is True
    assert (panel["open_circuits"], panel["closed_now"]) == (1, 1)


def test_silences_panel_shows_the_active_ones_and_what_they_hold(make_user):
    now = timezone.now()
    vendor = VendorFactory(name="Maintenance Co")
    owner = make_user("ADMIN")
    active = silence_create(
        spec=SilenceSpec(
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=2),
            comment="planned maintenance",
            vendor_id=vendor.pk,
        ),
        owner=owner,
    )
    silence_create(
        spec=SilenceSpec(
            starts_at=now + timedelta(hours=5),
            ends_at=now + timedelta(hours=6),
            comment="later",
            status="PENDING",
        ),
        owner=owner,
    )
    held = OrderFactory(status="CONFIRMED", vendor=vendor, stuck_minutes=90)
    HealingActionFactory(
        order=held,
        detected_status="CONFIRMED",
        episode_started_at=held.stuck_since,
        recovery_status="SKIPPED",
        skip_reason="SILENCED",
        silence=active,
        claim_token=None,
        lease_expires_at=None,
    )

    panel = silences_panel(now=now)

    assert [row["id"] for row in panel["rows"]] == [active.pk]
    row = panel["rows"][0]
    assert row["matchers"] == "vendor Maintenance Co"
    assert (row["holding"], row["owner"], row["comment"]) == (
        1,
        owner.username,
        "planned maintenance",
    )


def test_dashboard_json_carries_the_operator_panels_for_operations(client, make_user):
    _guard_cycles(timezone.now())
    client.force_login(make_user("OPERATIONS"))

    data = client.get(reverse("dashboard:data")).json()

    assert data["guard"]["tripped"] is True and data["guard"]["held"] == 2
    assert {"vendors", "silences", "at_risk"} <= set(data)
    assert data["cycles"][0]["url"] == reverse("dashboard:cycle", args=[data["cycles"][0]["id"]])
    html = client.get(reverse("dashboard:index")).content.decode()
    for panel in ("guard-banner", "panel-at-risk", "panel-vendors", "panel-silences"):
        assert f'id="{panel}"' in html


def test_viewer_json_has_no_operator_panels(client, make_user):
    _guard_cycles(timezone.now())
    client.force_login(make_user("VIEWER"))

    data = client.get(reverse("dashboard:data")).json()

    assert not {"guard", "vendors", "silences", "at_risk"} & set(data)


# --- Drill-down pages ------------------------------------------------------------


PAGES = [
    ("dashboard:cycles", ()),
    ("dashboard:healings", ()),
    ("dashboard:whatif", ()),
]


@pytest.mark.parametrize(("name", "args"), PAGES)
def test_operator_pages_need_admin_or_operations(client, make_user, name, args):
    url = reverse(name, args=args)
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/dashboard/login/")
    client.force_login(make_user("VIEWER"))
    refused = client.get(url)
    assert refused.status_code == 403
    assert "ADMIN or OPERATIONS" in refused.content.decode()
    for role in ("ADMIN", "OPERATIONS"):
        client.force_login(make_user(role))
        assert client.get(url).status_code == 200


def test_cycle_to_healings_to_order(client, make_user):
    now = timezone.now()
    cycles = _guard_cycles(now)
    order = OrderFactory(status="ACCEPTED", stuck_minutes=300)
    HealingActionFactory(
        order=order,
        cycle=cycles[-1],
        recovery_status="SKIPPED",
        skip_reason="VENDOR_CIRCUIT_OPEN",
        claim_token=None,
        lease_expires_at=None,
    )
    OrderStatusChangeFactory(order=order, from_status="CONFIRMED", to_status="ACCEPTED")
    VendorMessageFactory(order=order, vendor=order.vendor, status="FAILED", error="gateway 503")
    client.force_login(make_user("OPERATIONS"))

    listing = client.get(reverse("dashboard:cycles"), {"guard": "yes"}).content.decode()
    assert f'href="{reverse("dashboard:cycle", args=[cycles[-1].pk])}"' in listing
    assert f'data-cycle="{cycles[0].pk}"' not in listing  # the clear one is filtered out

    page = client.get(reverse("dashboard:cycle", args=[cycles[-1].pk])).content.decode()
    assert "The blast-radius guard was tripped in this cycle" in page
    assert "Held back by the blast-radius guard" in page
    assert "the vendor&#x27;s systems are failing (circuit open)" in page
    assert ">GUARD<" not in page and "VENDOR_CIRCUIT_OPEN" not in page
    assert f'href="{reverse("dashboard:order", args=[order.pk])}"' in page

    detail = client.get(reverse("dashboard:order", args=[order.pk])).content.decode()
    assert order.number in detail
    assert "gateway 503" in detail and "Offer the order" in detail
    assert 'id="history-table"' in detail and ">ACCEPTED<" in detail


def test_healing_filters(client, make_user):
    vendor = VendorFactory()
    mine = HealingActionFactory(
        order=OrderFactory(vendor=vendor, stuck_minutes=90),
        previous_vendor=vendor,
        recovery_status="FAILED",
        recovery_action="RETRY_WORKFLOW",
        claim_token=None,
    )
    HealingActionFactory(
        order=OrderFactory(stuck_minutes=90), recovery_status="SUCCESS", claim_token=None
    )
    client.force_login(make_user("ADMIN"))

    page = client.get(
        reverse("dashboard:healings"),
        {"status": "FAILED", "action": "RETRY_WORKFLOW", "vendor": vendor.pk},
    )

    assert page.status_code == 200
    assert page.content.decode().count("data-healing=") == 1
    assert f'data-healing="{mine.pk}"' in page.content.decode()


@pytest.mark.parametrize(
    ("name", "query", "field", "message"),
    [
        ("dashboard:healings", {"status": "BOGUS"}, "status", "Select a valid choice"),
        ("dashboard:healings", {"vendor": "99999999"}, "vendor", "No vendor with that id"),
        ("dashboard:healings", {"vendor": "abc"}, "vendor", "No vendor with that id"),
        ("dashboard:healings", {"start": "yesterday"}, "start", "Enter a valid date/time"),
        (
            "dashboard:healings",
            {"start": "2026-01-02", "end": "2026-01-01"},
            "end",
            "“To” must be after “From”",
        ),
        ("dashboard:cycles", {"guard": "maybe"}, "guard", "Select a valid choice"),
        ("dashboard:cycles", {"start": "2026-13-45"}, "start", "Enter a valid date/time"),
        ("dashboard:whatif", {"days": "abc"}, "days", "Enter a whole number"),
        (
            "dashboard:whatif",
            {"days": "7", "threshold_PENDING": "0"},
            "threshold_PENDING",
            "greater than or equal to 1",
        ),
        (
            "dashboard:whatif",
            {"days": "7", "ladder_PENDING": "FOO"},
            "ladder_PENDING",
            "Unknown action(s): FOO",
        ),
    ],
)
def test_bad_filter_input_is_a_400_naming_the_field(client, make_user, name, query, field, message):
    client.force_login(make_user("OPERATIONS"))

    response = client.get(reverse(name), query)

    assert response.status_code == 400
    html = response.content.decode()
    assert f'data-field="{field}"' in html
    assert message in html


@pytest.mark.parametrize("order_id", [999999, 2**63, 2**70])
def test_unknown_order_or_cycle_is_a_404(client, make_user, order_id):
    client.force_login(make_user("OPERATIONS"))

    assert client.get(f"/dashboard/orders/{order_id}/").status_code == 404
    assert client.get(f"/dashboard/cycles/{order_id}/").status_code == 404


def test_what_if_chart_compares_a_hand_built_history(client, make_user):
    """PENDING at 30 min today, 20 proposed. Order A left PENDING (the vendor
    confirmed) after 25 min: only the proposal flags it, and it recovered by
    itself first under today's rule. Order B sat 45 min: both flag it. Both
    were then confirmed and cancelled within 5 minutes (no other rule flags)."""
    now = timezone.now()
    start = now - timedelta(hours=5)
    a, b = OrderFactory(), OrderFactory()
    for order, minutes in ((a, 25), (b, 45)):
        OrderStatusChangeFactory(order=order, from_status="", to_status="PENDING", created_at=start)
        OrderStatusChangeFactory(
            order=order,
            from_status="PENDING",
            to_status="CONFIRMED",
            actor_type="VENDOR",
            created_at=start + timedelta(minutes=minutes),
        )
        OrderStatusChangeFactory(
            order=order,
            from_status="CONFIRMED",
            to_status="CANCELLED",
            actor_type="USER",
            created_at=start + timedelta(minutes=minutes + 5),
        )
    client.force_login(make_user("OPERATIONS"))

    page = client.get(reverse("dashboard:whatif"), {"days": "1", "threshold_PENDING": "20"})

    assert page.status_code == 200
    html = page.content.decode()
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="whatif-chart"' in html
    assert 'data-series="Today&#x27;s rules" data-key="flagged_orders" data-value="1"' in html
    assert 'data-series="Proposed rules" data-key="flagged_orders" data-value="2"' in html
    assert "style=" not in html.split('id="whatif-chart"')[1].split("</svg>")[0]
    assert StuckRule.objects.get(status="PENDING").threshold_minutes == 30  # nothing changed
