"""The demo's pieces: its world, its vendors, its weather, its beat."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from demo.runtime import InProcessBeat
from demo.scenario import (
    BACKLOG,
    FORGETFUL,
    GHOST,
    RELIABLE,
    STALLER,
    demo_marketplace_seed,
    demo_rules_compress,
    demo_rules_restore,
)
from demo.simulator import GatewayWeather, Simulator
from healing.detection import stuck_orders_detect
from healing.models import HealingCycle, StuckRule, Trigger
from orders import services
from orders.models import Order, OrderStatusChange, VendorMessage

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return demo_marketplace_seed(now=timezone.now(), rng=random.Random(1))


def _vendor(world, profile):
    return next(v for v, p in world.vendor_profiles.items() if p == profile)


def test_weather_has_an_outage_window_in_every_period():
    weather = GatewayWeather(base_failure_rate=0.15, outage_start=10, outage_end=25, period=180)

    assert weather.failure_rate(0) == 0.15
    assert weather.failure_rate(10) == 1.0
    assert weather.failure_rate(24.9) == 1.0
    assert weather.failure_rate(25) == 0.15
    assert weather.in_outage(180 + 12)
    started, same = GatewayWeather.from_env(weather.to_env(started_at=1234.5))
    assert started == 1234.5
    assert same == weather


def test_rules_compress_only_thresholds_and_restore_them():
    ladders = dict(StuckRule.objects.values_list("status", "ladder"))

    previous = demo_rules_compress(minutes=1)

    assert set(StuckRule.objects.values_list("threshold_minutes", flat=True)) == {1}
    assert dict(StuckRule.objects.values_list("status", "ladder")) == ladders
    demo_rules_restore(previous)
    assert dict(StuckRule.objects.values_list("status", "threshold_minutes")) == previous
    assert previous["PENDING"] == 30


def test_rules_left_compressed_by_a_killed_demo_go_back_to_the_defaults():
    StuckRule.objects.filter(status="PENDING").update(threshold_minutes=1)
    StuckRule.objects.filter(status="CONFIRMED").update(threshold_minutes=45)

    previous = demo_rules_compress(minutes=1)

    assert previous["PENDING"] == 30
    assert previous["CONFIRMED"] == 45  # an operator's own value is kept


def test_backlog_really_sits_in_its_status_and_crosses_thresholds_on_time(world):
    demo_rules_compress(minutes=1)
    now = timezone.now()

    stuck_at_start = stuck_orders_detect(now=now)
    stuck_at_15s = stuck_orders_detect(now=now + timedelta(seconds=15))
    stuck_at_50s = stuck_orders_detect(now=now + timedelta(seconds=50))

    assert Order.objects.count() == world.backlog == len(BACKLOG)
    assert len(stuck_at_start) == sum(1 for _, _, s in BACKLOG if s > 60)
    assert len(stuck_at_15s) == sum(1 for _, _, s in BACKLOG if s + 15 > 60)
    assert len(stuck_at_50s) == len(BACKLOG)
    assert {s.status for s in stuck_at_start} == {"PENDING", "CONFIRMED", "ACCEPTED", "PROCESSING"}
    # every step was written by orders.services, with its history row
    processing = Order.objects.filter(status="PROCESSING").first()
    history = list(
        OrderStatusChange.objects.filter(order=processing).values_list("to_status", flat=True)
    )
    assert history == ["PENDING", "CONFIRMED", "ACCEPTED", "PROCESSING"]


def _order_at(world, profile, status, seconds_ago=30):
    from orders.models import Buyer, Vendor

    past = timezone.now() - timedelta(seconds=seconds_ago)
    order = services.order_create(
        buyer=Buyer.objects.get(pk=world.buyer_ids[0]),
        total=100,
        payment_method="CARD",
        vendor=Vendor.objects.get(pk=_vendor(world, profile)),
        now=past,
    )
    for step in ("CONFIRMED", "ACCEPTED", "PROCESSING", "SHIPPED"):
        if order.status == status:
            break
        services.order_transition(
            order=order, to_status=step, actor=services.Actor.vendor(), now=past
        )
    return order


@pytest.mark.parametrize(
    ("profile", "status", "after"),
    [
        (RELIABLE, "PENDING", "CONFIRMED"),
        (RELIABLE, "PROCESSING", "SHIPPED"),
        (GHOST, "PENDING", "PENDING"),
        (STALLER, "PENDING", "CONFIRMED"),
        (STALLER, "CONFIRMED", "ACCEPTED"),
        (STALLER, "ACCEPTED", "ACCEPTED"),
        (FORGETFUL, "PENDING", "CONFIRMED"),
        (FORGETFUL, "CONFIRMED", "CONFIRMED"),
        (FORGETFUL, "PROCESSING", "PROCESSING"),
    ],
)
def test_vendors_behave_as_their_profile(world, profile, status, after):
    order = _order_at(world, profile, status)
    simulator = Simulator(
        world=world, rng=random.Random(2), started_at=timezone.now(), new_order_every=3600
    )

    simulator.tick()

    order.refresh_from_db()
    assert order.status == after


@pytest.mark.parametrize(
    ("status", "kind", "after"),
    [
        ("CONFIRMED", "ACCEPT_REQUEST", "ACCEPTED"),
        ("PROCESSING", "FULFILMENT_POLL", "SHIPPED"),
    ],
)
def test_forgetful_vendor_acts_once_the_healing_resends_its_step(world, status, kind, after):
    order = _order_at(world, FORGETFUL, status, seconds_ago=120)
    simulator = Simulator(
        world=world, rng=random.Random(3), started_at=timezone.now(), new_order_every=3600
    )
    # A message that is not a healing's re-send does not count.
    VendorMessage.objects.create(
        order=order,
        vendor_id=order.vendor_id,
        kind=kind,
        status="SENT",
        backend="simulated",
        created_at=timezone.now(),
    )
    simulator.tick()
    order.refresh_from_db()
    assert order.status == status

    # When the healing re-sends the step (RETRY_WORKFLOW restarts the clock)
    services.order_restart_clock(
        order=order,
        actor=services.Actor.healing(),
        reason="retry",
        now=timezone.now() - timedelta(seconds=10),
    )
    VendorMessage.objects.create(
        order=order,
        vendor_id=order.vendor_id,
        kind=kind,
        status="SENT",
        backend="simulated",
        healing_id=1,
        created_at=timezone.now(),
    )
    simulator.tick()

    order.refresh_from_db()
    assert order.status == after


def test_simulator_places_orders_and_sets_the_gateway_weather(world):
    weather = GatewayWeather(outage_start=0, outage_end=5, period=60)
    start = timezone.now()
    simulator = Simulator(
        world=world, rng=random.Random(4), started_at=start, new_order_every=1, weather=weather
    )
    from django.conf import settings

    with override_settings(VENDOR_GATEWAY_SIM_FAILURE_RATE=0.0):
        simulator.tick(now=start + timedelta(seconds=1))
        assert settings.VENDOR_GATEWAY_SIM_FAILURE_RATE == 1.0
        simulator.tick(now=start + timedelta(seconds=6))
        assert weather.base_failure_rate == settings.VENDOR_GATEWAY_SIM_FAILURE_RATE

    assert simulator.created == 2
    assert Order.objects.count() == world.backlog + 2


def test_in_process_beat_runs_the_cycle_and_beats_other_jobs():
    # beat's database schedule (seeded by a migration; flushed by transactional tests)
    every_minute, _ = IntervalSchedule.objects.get_or_create(
        every=1, period=IntervalSchedule.MINUTES
    )
    PeriodicTask.objects.get_or_create(
        task="healing.tasks.metrics_rollup",
        defaults={"name": "healing metrics roll-up", "interval": every_minute},
    )
    beat = InProcessBeat(cycle_seconds=5)

    jobs = {job.task: job for job in beat.jobs}
    assert jobs["healing.tasks.run_cycle"].every == 5
    assert jobs["healing.tasks.run_cycle"].kwargs == {"trigger": "DEMO"}
    assert jobs["healing.tasks.metrics_rollup"].every == 60

    beat.step()
    beat.step()  # not due again yet

    assert HealingCycle.objects.filter(trigger=Trigger.DEMO).count() == 1
    assert beat.runs["self-healing cycle"] == 1
