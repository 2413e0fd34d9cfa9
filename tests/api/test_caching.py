"""Heavy reads from a short shared cache, with their age (issue 21 item 7)."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.cache import cache

from api.caching import read_through
from tests.factories import OrderFactory

BASE = "/api/v1/self-healing"
pytestmark = pytest.mark.django_db


@pytest.fixture
def cached(settings):
    settings.API_READ_CACHE_SECONDS = 30
    cache.clear()
    yield settings
    cache.clear()


def test_read_through_computes_once_per_period_and_says_how_old(cached):
    calls = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    first, age = read_through(key="k", seconds=30, compute=compute)
    second, later = read_through(key="k", seconds=30, compute=compute)

    assert (first, second, len(calls)) == (1, 1, 1)
    assert age == 0.0 and later >= 0.0


def test_a_stale_copy_is_recomputed_by_one_caller_while_the_others_get_it(cached):
    """Eight threads find a 10 s old copy at once: one recomputes, seven are
    answered from the old copy with its age, none waits for the recompute."""
    cache.set("read-through:herd", (time.time() - 10, "old"), timeout=60)
    calls, answers = [], []
    start = threading.Barrier(8)

    def compute() -> str:
        calls.append(1)
        time.sleep(0.5)  # the detection, slow under a cycle's load
        return "new"

    def caller() -> None:
        start.wait()
        began = time.monotonic()
        value, age = read_through(key="herd", seconds=5, compute=compute)
        answers.append((value, age, time.monotonic() - began))

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(calls) == 1
    assert sorted(value for value, _, _ in answers) == ["new"] + ["old"] * 7
    old = [(age, took) for value, age, took in answers if value == "old"]
    assert all(age >= 10 for age, _ in old) and all(took < 0.4 for _, took in old)
    assert read_through(key="herd", seconds=5, compute=compute) == ("new", pytest.approx(0, abs=1))
    assert len(calls) == 1


def test_a_failed_recompute_frees_the_refresh_for_the_next_caller(cached):
    cache.set("read-through:fails", (time.time() - 10, "old"), timeout=60)

    def broken() -> str:
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        read_through(key="fails", seconds=5, compute=broken)

    assert read_through(key="fails", seconds=5, compute=lambda: "new") == ("new", 0.0)


def test_read_through_off_computes_every_time():
    values = [read_through(key="off", seconds=0, compute=lambda: object())[0] for _ in range(2)]
    assert values[0] is not values[1]


def test_stuck_orders_are_served_from_the_cache_with_their_age(cached, ops_api, rules):
    OrderFactory(status="PENDING", stuck_minutes=45)
    first = ops_api.get(f"{BASE}/stuck-orders").json()
    OrderFactory(status="PENDING", stuck_minutes=45)

    second = ops_api.get(f"{BASE}/stuck-orders").json()

    assert first["count"] == second["count"] == 1  # the cached answer, not recomputed
    assert first["ageSeconds"] == 0.0 and second["ageSeconds"] >= 0.0
    cache.clear()
    assert ops_api.get(f"{BASE}/stuck-orders").json()["count"] == 2


def test_statistics_carry_their_age(cached, ops_api):
    body = ops_api.get(f"{BASE}/statistics?days=7").json()
    assert body["success"] is True and body["ageSeconds"] == 0.0
    assert ops_api.get(f"{BASE}/statistics?days=7").json()["ageSeconds"] >= 0.0
