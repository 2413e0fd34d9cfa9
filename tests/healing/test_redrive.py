"""Bulk redrive: a dry run with a signed token, then one execution with it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from healing.models import HealingAction, Trigger
from healing.redrive import (
    RedriveFilter,
    RedriveTokenInvalid,
    redrive_execute,
    redrive_preview,
)
from tests.factories import HealingActionFactory, OrderFactory, VendorFactory
from tests.healing.conftest import run_in_threads

URL = "/api/v1/self-healing/redrive"


@pytest.fixture
def outage(db, rules, monkeypatch):
    """Three FAILED healings of one vendor's orders, still stuck; noise around them."""
    sent: list[list[tuple[int, str]]] = []
    monkeypatch.setattr("healing.redrive.healings_dispatch", lambda pairs, **kw: sent.append(pairs))
    vendor, other = VendorFactory(), VendorFactory()
    earlier = timezone.now() - timedelta(hours=1)
    failed = []
    for _ in range(3):
        order = OrderFactory(vendor=vendor, status="PENDING", stuck_minutes=90)
        failed.append(
            HealingActionFactory(
                order=order, previous_vendor=vendor, recovery_status="FAILED", created_at=earlier
            )
        )
    # Another vendor's failure; a failure followed by a success; a closed order.
    HealingActionFactory(
        order=OrderFactory(vendor=other, stuck_minutes=90),
        previous_vendor=other,
        recovery_status="FAILED",
        created_at=earlier,
    )
    healed = OrderFactory(vendor=vendor, stuck_minutes=90)
    HealingActionFactory(
        order=healed, previous_vendor=vendor, recovery_status="FAILED", created_at=earlier
    )
    HealingActionFactory(order=healed, previous_vendor=vendor, recovery_status="SUCCESS")
    HealingActionFactory(
        order=OrderFactory(vendor=vendor, status="DELIVERED"),
        previous_vendor=vendor,
        recovery_status="FAILED",
        created_at=earlier,
    )
    return {"vendor": vendor, "failed": failed, "sent": sent}


def test_dry_run_and_execution_agree_and_go_through_the_pipeline(
    outage, make_user, django_capture_on_commit_callbacks
):
    spec = RedriveFilter(recovery_status="FAILED", vendor_id=outage["vendor"].pk)
    operator = make_user("OPERATIONS")

    preview = redrive_preview(spec=spec)
    with django_capture_on_commit_callbacks(execute=True):
        ids = redrive_execute(spec=spec, token=preview.token, user=operator)

    assert preview.count == 3 == len(ids)
    assert {h.order_id for h in preview.sample} == {h.order_id for h in outage["failed"]}
    started = HealingAction.objects.filter(pk__in=ids)
    assert {h.order_id for h in started} == {h.order_id for h in outage["failed"]}
    assert {(h.trigger, h.recovery_status, h.requested_by_id) for h in started} == {
        (Trigger.REDRIVE, "PENDING", operator.pk)
    }
    assert sorted(pk for pk, _ in outage["sent"][0]) == sorted(ids)  # dispatched on commit
    # Nothing left to redrive: the new healings are now the orders' last word.
    assert redrive_preview(spec=spec).count == 0


def test_a_reused_token_is_refused(outage, make_user):
    spec = RedriveFilter(recovery_status="FAILED", vendor_id=outage["vendor"].pk)
    token = redrive_preview(spec=spec).token
    redrive_execute(spec=spec, token=token, user=make_user("ADMIN"))

    with pytest.raises(RedriveTokenInvalid, match="already used"):
        redrive_execute(spec=spec, token=token, user=make_user("ADMIN", "admin-2"))


def test_a_token_for_another_filter_is_refused(outage, make_user):
    token = redrive_preview(spec=RedriveFilter(recovery_status="FAILED")).token
    narrower = RedriveFilter(recovery_status="FAILED", vendor_id=outage["vendor"].pk)

    with pytest.raises(RedriveTokenInvalid, match="different filter"):
        redrive_execute(spec=narrower, token=token, user=make_user("ADMIN"))
    assert not HealingAction.objects.filter(trigger=Trigger.REDRIVE).exists()


def test_an_expired_or_forged_token_is_refused(outage, make_user, settings):
    settings.HEALING_REDRIVE_TOKEN_SECONDS = 60
    spec = RedriveFilter(recovery_status="FAILED")
    token = redrive_preview(spec=spec).token

    later = time_machine.travel(timezone.now() + timedelta(minutes=2))
    with later, pytest.raises(RedriveTokenInvalid, match="expired"):
        redrive_execute(spec=spec, token=token, user=make_user("ADMIN"))
    with pytest.raises(RedriveTokenInvalid, match="not valid"):
        redrive_execute(spec=spec, token=token[:-2] + "xx", user=make_user("ADMIN", "a2"))


def test_manual_holds_are_handed_back_and_run_the_ladder_first_step(
    db, rules, make_user, monkeypatch
):
    monkeypatch.setattr("healing.redrive.healings_dispatch", lambda pairs, **kw: None)
    order = OrderFactory(status="ACCEPTED", stuck_minutes=300)
    hold = HealingActionFactory(
        order=order,
        recovery_status="MANUAL_REQUIRED",
        recovery_action="MANUAL_INTERVENTION",
        created_at=timezone.now() - timedelta(minutes=5),
    )
    spec = RedriveFilter(recovery_status="MANUAL_REQUIRED")
    admin = make_user("ADMIN")

    (new_id,) = redrive_execute(spec=spec, token=redrive_preview(spec=spec).token, user=admin)

    hold.refresh_from_db()
    assert hold.resolved_by_id == admin.pk
    assert HealingAction.objects.get(pk=new_id).recovery_action == "REASSIGN_VENDOR"


@pytest.mark.django_db
def test_the_api_previews_then_executes_and_refuses_viewers(
    outage, admin_api, client_for, api_defaults
):
    body = {"recoveryStatus": "FAILED", "vendorId": outage["vendor"].pk, "dryRun": True}

    preview = admin_api.post(URL, body, format="json")
    assert preview.status_code == 200, preview.content
    data = preview.json()
    assert data["count"] == 3 and len(data["sample"]) == 3 and data["token"]

    done = admin_api.post(URL, {**body, "dryRun": False, "token": data["token"]}, format="json")
    assert done.status_code == 200, done.content
    assert len(done.json()["healingIds"]) == 3
    again = admin_api.post(URL, {**body, "dryRun": False, "token": data["token"]}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "redrive_token_invalid"
    missing = admin_api.post(URL, {**body, "dryRun": False}, format="json")
    assert missing.status_code == 400
    assert client_for("VIEWER").post(URL, body, format="json").status_code == 403


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_executions_with_one_token_start_each_healing_once(monkeypatch):
    from orders.roles import role_user_create

    monkeypatch.setattr("healing.redrive.healings_dispatch", lambda pairs, **kw: None)
    vendor = VendorFactory()
    for _ in range(4):
        HealingActionFactory(
            order=OrderFactory(vendor=vendor, stuck_minutes=90),
            previous_vendor=vendor,
            recovery_status="FAILED",
            created_at=timezone.now() - timedelta(hours=1),
        )
    user = role_user_create(username="ops-race", password="x-Very-long-pw-1", role="OPERATIONS")[0]
    spec = RedriveFilter(recovery_status="FAILED", vendor_id=vendor.pk)
    token = redrive_preview(spec=spec).token

    results = run_in_threads(
        lambda: redrive_execute(spec=spec, token=token, user=user),
        lambda: redrive_execute(spec=spec, token=token, user=user),
    )

    winners = [r for r in results if isinstance(r, list)]
    losers = [r for r in results if isinstance(r, RedriveTokenInvalid)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert len(winners[0]) == 4
    assert HealingAction.objects.filter(trigger=Trigger.REDRIVE).count() == 4
