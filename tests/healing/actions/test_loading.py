"""healing_load: one statement, real model instances, the same candidate as
orders.selectors.vendor_candidates (the two rankings must never drift)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from healing.actions.loading import healing_load
from orders.models import Vendor
from orders.selectors import vendor_select
from tests.factories import OrderFactory, VendorFactory
from tests.healing.helpers import initiate

pytestmark = pytest.mark.django_db


def test_load_is_one_statement_with_typed_instances():
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    healing = initiate(order, "RETRY_WORKFLOW" if order.vendor_id else "CANCEL_ORDER")

    with CaptureQueriesContext(connection) as queries:
        loaded = healing_load(healing_id=healing.pk)

    assert len(queries.captured_queries) == 1
    assert loaded is not None
    got = loaded.healing
    assert got.pk == healing.pk and got.order.pk == order.pk
    assert isinstance(got.claim_token, uuid.UUID) and got.claim_token == healing.claim_token
    assert isinstance(got.issue_detected_at, datetime) and got.issue_detected_at.tzinfo
    assert got.order.stuck_since == order.stuck_since
    assert isinstance(got.order.total, Decimal) and got.order.total == order.total
    assert (got.order.vendor.pk if got.order.vendor else None) == order.vendor_id
    assert healing_load(healing_id=healing.pk + 10_000) is None


def test_candidate_is_the_one_vendor_candidates_ranks_first():
    """Inactive, full and already-assigned vendors are skipped; then acceptance
    rate, free room and id decide — as the ORM selector does."""
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    VendorFactory(acceptance_rate=0.99, is_active=False)
    full = VendorFactory(acceptance_rate=0.98, capacity=1)
    Vendor.objects.filter(pk=full.pk).update(open_orders=1)
    tied_busier = VendorFactory(acceptance_rate=0.95, capacity=10)
    Vendor.objects.filter(pk=tied_busier.pk).update(open_orders=3)
    tied_freer = VendorFactory(acceptance_rate=0.95, capacity=10)
    VendorFactory(acceptance_rate=0.5)
    healing = initiate(order, "REASSIGN_VENDOR")

    loaded = healing_load(healing_id=healing.pk)

    assert loaded is not None and loaded.candidate is not None
    expected = vendor_select(order_id=order.pk)
    assert expected is not None
    assert loaded.candidate.vendor_id == expected.pk == tied_freer.pk


def test_no_candidate_unless_the_action_reassigns():
    order = OrderFactory(status="PENDING", stuck_minutes=45)
    VendorFactory(acceptance_rate=0.99)
    healing = initiate(order, "CANCEL_ORDER")

    loaded = healing_load(healing_id=healing.pk)

    assert loaded is not None and loaded.candidate is None


@pytest.mark.parametrize("spread", [1, 3])
def test_candidate_with_offer_limit_and_spread_is_vendor_selects(spread, settings):
    """The offer limit (issue 18) and the spread over the top candidates (issue
    16) rank the same in the load statement and in orders.selectors."""
    from django.utils import timezone

    from orders.models import VendorMessage

    settings.HEALING_VENDOR_OFFERS_PER_MINUTE = 2
    settings.HEALING_REASSIGN_SPREAD = spread
    old = VendorFactory(acceptance_rate=0.1)
    at_limit = VendorFactory(acceptance_rate=0.99)
    for _ in range(2):
        VendorMessage.objects.create(
            order=OrderFactory(vendor=old),
            vendor=at_limit,
            kind="OFFER",
            status="SENT",
            backend="scripted",
            created_at=timezone.now(),
        )
    ranked = [VendorFactory(acceptance_rate=rate) for rate in (0.9, 0.8, 0.7, 0.6)]
    picked = set()
    for _ in range(4):
        order = OrderFactory(status="PENDING", stuck_minutes=45, vendor=old)
        healing = initiate(order, "REASSIGN_VENDOR")

        loaded = healing_load(healing_id=healing.pk)

        expected = vendor_select(
            order_id=order.pk, offers_per_minute=2, spread=spread, spread_key=healing.pk
        )
        assert loaded is not None and loaded.candidate is not None and expected is not None
        assert loaded.candidate.vendor_id == expected.pk != at_limit.pk
        picked.add(expected.pk)
    assert picked == ({ranked[0].pk} if spread == 1 else {v.pk for v in ranked[:3]})


@pytest.mark.parametrize("spread", [1, 3])
def test_the_headroom_ranks_alike_in_the_load_statement_and_vendor_select(spread, settings):
    """Issue 16: vendors with at most HEALING_REASSIGN_HEADROOM free slots come
    after every roomier one, in both rankings."""
    settings.HEALING_REASSIGN_SPREAD = spread
    settings.HEALING_REASSIGN_HEADROOM = 4
    old = VendorFactory(acceptance_rate=0.1)
    nearly_full = [VendorFactory(acceptance_rate=0.99, capacity=cap) for cap in (3, 4)]
    roomy = [VendorFactory(acceptance_rate=rate, capacity=50) for rate in (0.7, 0.6, 0.5)]
    picked = set()
    for _ in range(3):
        order = OrderFactory(status="PENDING", stuck_minutes=45, vendor=old)
        healing = initiate(order, "REASSIGN_VENDOR")

        loaded = healing_load(healing_id=healing.pk)

        expected = vendor_select(
            order_id=order.pk, spread=spread, spread_key=healing.pk, headroom=4
        )
        assert loaded is not None and loaded.candidate is not None and expected is not None
        assert loaded.candidate.vendor_id == expected.pk
        picked.add(expected.pk)
    assert not picked & {v.pk for v in nearly_full}
    assert picked == ({roomy[0].pk} if spread == 1 else {v.pk for v in roomy})
