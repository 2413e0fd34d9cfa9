"""Silences (issue 18): held orders are detected and recorded, never acted on."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import timezone

import notifications.tasks  # noqa: F401  (registers the delivery task sent on commit)
from healing.cycle import healing_cycle_run
from healing.models import HealingAction, Silence, SilenceEvent
from healing.silences import (
    SilenceInvalid,
    SilenceSpec,
    silence_create,
    silence_expire,
    silence_is_active,
    silence_update,
    silences_holding,
)
from notifications.models import AdminNotification
from tests.factories import OrderFactory, UserFactory, VendorFactory

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")


def cycle(capture):
    with capture(execute=True):
        return healing_cycle_run(trigger="CLI")


def spec(**kwargs) -> SilenceSpec:
    now = timezone.now()
    values = {
        "starts_at": now - timedelta(minutes=5),
        "ends_at": now + timedelta(hours=1),
        "comment": "planned maintenance",
        **kwargs,
    }
    return SilenceSpec(**values)


def test_silenced_vendor_orders_are_skipped_with_the_silence_others_heal(
    django_capture_on_commit_callbacks,
):
    quiet, busy = VendorFactory(), VendorFactory()
    VendorFactory(acceptance_rate=0.5)  # somewhere to reassign to
    held = [OrderFactory(status="CONFIRMED", vendor=quiet, stuck_minutes=61) for _ in range(3)]
    healed = [OrderFactory(status="CONFIRMED", vendor=busy, stuck_minutes=61) for _ in range(2)]
    owner = UserFactory()
    silence = silence_create(spec=spec(vendor_id=quiet.pk), owner=owner)

    result = cycle(django_capture_on_commit_callbacks)

    assert result.detected == 5
    rows = HealingAction.objects.filter(order__in=held)
    assert {(r.recovery_status, r.skip_reason, r.silence_id) for r in rows} == {
        ("SKIPPED", "SILENCED", silence.pk)
    }
    assert set(
        HealingAction.objects.filter(order__in=healed).values_list("recovery_status", flat=True)
    ) == {"SUCCESS"}
    assert not AdminNotification.objects.exists()
    assert silences_holding(silences=[silence]) == {silence.pk: 3}

    # Expired early: the next cycle heals them, and the skip was no attempt.
    silence_expire(silence_id=silence.pk, actor=owner)
    cycle(django_capture_on_commit_callbacks)
    for order in held:
        latest = HealingAction.objects.filter(order=order).order_by("-id").first()
        assert (latest.recovery_status, latest.attempt_number) == ("SUCCESS", 1)
    assert silences_holding(silences=[silence]) == {}
    assert list(SilenceEvent.objects.filter(silence=silence).values_list("action", "actor_id")) == [
        ("CREATED", owner.pk),
        ("EXPIRED", owner.pk),
    ]


def test_a_silence_that_runs_out_lets_the_next_cycle_heal(django_capture_on_commit_callbacks):
    vendor = VendorFactory()
    order = OrderFactory(status="CONFIRMED", vendor=vendor, stuck_minutes=61)
    silence_create(
        spec=spec(vendor_id=vendor.pk, ends_at=timezone.now() + timedelta(minutes=10)), owner=None
    )
    cycle(django_capture_on_commit_callbacks)
    assert HealingAction.objects.get(order=order).skip_reason == "SILENCED"

    with time_machine.travel(timezone.now() + timedelta(minutes=11), tick=True):
        cycle(django_capture_on_commit_callbacks)
    assert HealingAction.objects.filter(order=order).order_by("-id").first().recovery_status == (
        "SUCCESS"
    )


def test_matchers_combine_buyer_and_status(django_capture_on_commit_callbacks):
    vendor = VendorFactory()
    confirmed = OrderFactory(status="CONFIRMED", vendor=vendor, stuck_minutes=61)
    same_buyer_processing = OrderFactory(
        status="PROCESSING", vendor=vendor, buyer=confirmed.buyer, stuck_minutes=181
    )
    other_buyer = OrderFactory(status="CONFIRMED", vendor=vendor, stuck_minutes=61)
    silence_create(spec=spec(buyer_id=confirmed.buyer_id, status="CONFIRMED"), owner=None)

    cycle(django_capture_on_commit_callbacks)

    def outcome(order):
        return HealingAction.objects.get(order=order).skip_reason

    assert outcome(confirmed) == "SILENCED"
    assert outcome(same_buyer_processing) == ""
    assert outcome(other_buyer) == ""


def test_a_weekly_maintenance_window_holds_only_in_its_slot():
    vendor = VendorFactory()
    silence = silence_create(
        spec=spec(
            vendor_id=vendor.pk,
            starts_at=datetime(2026, 11, 1, tzinfo=BERLIN),
            ends_at=datetime(2027, 11, 1, tzinfo=BERLIN),
            recurrence_weekdays=(5,),  # Saturdays
            recurrence_start=time(0, 0),
            recurrence_end=time(6, 0),
            time_zone="Europe/Berlin",
        ),
        owner=None,
    )
    assert silence_is_active(silence=silence, now=datetime(2026, 12, 5, 5, 59, tzinfo=BERLIN))
    assert not silence_is_active(silence=silence, now=datetime(2026, 12, 5, 6, 0, tzinfo=BERLIN))
    assert not silence_is_active(silence=silence, now=datetime(2026, 12, 4, 3, 0, tzinfo=BERLIN))
    # Outside the outer window nothing holds.
    assert not silence_is_active(silence=silence, now=datetime(2027, 11, 6, 3, 0, tzinfo=BERLIN))


def test_extend_and_update_are_audited():
    vendor = VendorFactory()
    owner = UserFactory()
    silence = silence_create(spec=spec(vendor_id=vendor.pk), owner=owner)
    later = silence.ends_at + timedelta(hours=2)

    silence_update(silence_id=silence.pk, actor=owner, changes={"ends_at": later})
    silence_update(silence_id=silence.pk, actor=owner, changes={"comment": "vendor migration"})

    silence.refresh_from_db()
    assert (silence.ends_at, silence.comment) == (later, "vendor migration")
    events = list(SilenceEvent.objects.filter(silence=silence))
    assert [e.action for e in events] == ["CREATED", "EXTENDED", "UPDATED"]
    assert events[1].snapshot["ends_at"] == later.isoformat()


@pytest.mark.parametrize(
    "changes",
    [
        {"vendor_id": None},  # no matcher left
        {"ends_at": timezone.now() - timedelta(days=1)},
        {"comment": "  "},
        {"recurrence_weekdays": (7,)},
        {"time_zone": "Mars/Olympus"},
        {"owner": 1},
    ],
)
def test_invalid_silences_are_refused(changes):
    vendor = VendorFactory()
    silence = silence_create(spec=spec(vendor_id=vendor.pk), owner=None)
    with pytest.raises(SilenceInvalid):
        silence_update(silence_id=silence.pk, actor=None, changes=changes)
    assert SilenceEvent.objects.filter(silence=silence).count() == 1


def test_the_admin_creates_and_extends_through_the_services(client):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client.force_login(root)
    vendor = VendorFactory()
    now = timezone.now()
    form = {
        "vendor": vendor.pk,
        "status": "",
        "issue_type": "",
        "starts_at_0": now.strftime("%Y-%m-%d"),
        "starts_at_1": now.strftime("%H:%M:%S"),
        "ends_at_0": (now + timedelta(days=1)).strftime("%Y-%m-%d"),
        "ends_at_1": now.strftime("%H:%M:%S"),
        "recurrence_weekdays": "[]",
        "time_zone": "UTC",
        "comment": "vendor maintenance",
        "events-TOTAL_FORMS": "0",
        "events-INITIAL_FORMS": "0",
    }
    response = client.post("/admin/healing/silence/add/", form)
    assert response.status_code == 302, response.content[:2000]
    silence = Silence.objects.get()
    assert silence.owner == root

    form["ends_at_0"] = (now + timedelta(days=3)).strftime("%Y-%m-%d")
    response = client.post(f"/admin/healing/silence/{silence.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    assert list(silence.events.values_list("action", flat=True)) == ["CREATED", "EXTENDED"]
