"""``manage.py api_smoke`` runs the seed's five steps against a live server."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orders.roles import ADMIN, VIEWER
from tests.api.helpers import PASSWORD
from tests.factories import OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db(transaction=True)


def smoke(live_server, username: str, **options) -> str:
    out = StringIO()
    call_command(
        "api_smoke",
        base_url=live_server.url,
        username=username,
        password=PASSWORD,
        stdout=out,
        **options,
    )
    return out.getvalue()


def test_api_smoke_prints_the_seeds_expected_output(live_server, make_user, rules):
    make_user(ADMIN, "smoke-admin")
    VendorFactory(acceptance_rate=0.99)
    healable = OrderFactory(status="CONFIRMED", stuck_minutes=61)
    failing = OrderFactory(status="PENDING", stuck_minutes=45)
    OrderFactory(status="PENDING", stuck_minutes=5)
    # No vendor can take the PENDING one: every other vendor is inactive.
    from orders.models import Vendor

    Vendor.objects.exclude(pk=failing.vendor_id).update(is_active=False)
    assert healable.vendor_id != failing.vendor_id

    output = smoke(live_server, "smoke-admin")

    assert output.splitlines()[:17] == [
        "🧪 Testing Self-Healing System",
        "",
        "1⃣ Detecting stuck orders...",
        "✅ Stuck orders detected: 2",
        "",
        "2⃣ Running healing cycle...",
        "✅ Healing cycle completed",
        "   Healed: 1",
        "   Failed: 1",
        "",
        "3⃣ Getting healing statistics (last 7 days)...",
        "✅ Statistics retrieved",
        "",
        "4⃣ Getting pending admin notifications...",
        "✅ Notifications retrieved: 1",
        "",
        "5⃣ Testing manual healing...",
    ]
    assert "✅ Manual healing completed" in output
    assert output.rstrip().endswith("✅ All self-healing tests completed successfully!")


def test_api_smoke_heals_the_named_order_with_the_named_action(live_server, make_user, rules):
    make_user(ADMIN, "smoke-admin")
    order = OrderFactory(status="PROCESSING", stuck_minutes=10)

    output = smoke(live_server, "smoke-admin", order_id=order.pk, action="RETRY_WORKFLOW")

    assert f"   Order {order.pk}: RETRY_WORKFLOW → SUCCESS" in output


def test_api_smoke_fails_when_the_named_order_is_not_stuck(live_server, make_user, rules):
    make_user(ADMIN, "smoke-admin")
    order = OrderFactory(status="PROCESSING", stuck_minutes=10)
    out = StringIO()

    with pytest.raises(CommandError, match="1 of 5 self-healing steps failed"):
        call_command(
            "api_smoke",
            base_url=live_server.url,
            username="smoke-admin",
            password=PASSWORD,
            order_id=order.pk,
            stdout=out,
        )
    assert "❌ POST /api/v1/self-healing/heal/" in out.getvalue()
    assert "HTTP 409 not_stuck" in out.getvalue()


def test_api_smoke_fails_when_a_step_fails(live_server, make_user, rules):
    make_user(VIEWER, "viewer")

    with pytest.raises(CommandError, match="4 of 5 self-healing steps failed"):
        smoke(live_server, "viewer")


def test_api_smoke_fails_on_bad_credentials(live_server, make_user):
    make_user(ADMIN, "smoke-admin")

    with pytest.raises(CommandError, match="login as 'smoke-admin' failed: HTTP 401"):
        call_command(
            "api_smoke",
            base_url=live_server.url,
            username="smoke-admin",
            password="wrong",
            stdout=StringIO(),
        )


def test_api_smoke_fails_when_the_server_is_down():
    with pytest.raises(CommandError, match="cannot reach"):
        call_command(
            "api_smoke",
            base_url="http://127.0.0.1:1",
            username="x",
            password="y",
            stdout=StringIO(),
        )
