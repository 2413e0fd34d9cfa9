"""Throttles fail open when the cache (Redis) is unreachable: a warning, never a 500."""

from __future__ import annotations

import logging
import socket

import pytest
from rest_framework.test import APIClient

from orders.roles import OPERATIONS
from tests.api.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends


@pytest.fixture
def cache_down(settings):
    """Throttling on, its counters in a Redis nobody listens on."""
    settings.API_THROTTLE_ENABLED = True
    settings.API_THROTTLE_RATES = {"auth": "3/min", "healing": "2/min"}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    }


def test_run_cycle_still_runs_with_the_throttle_cache_down(cache_down, ops_api, rules, caplog):
    url = "/api/v1/self-healing/run-cycle"
    with caplog.at_level(logging.WARNING, logger="api"):
        codes = [ops_api.post(url).status_code for _ in range(3)]

    # Fail open: past the 2/min budget too, since no counter can be kept.
    assert codes == [200, 200, 200]
    warnings = [r for r in caplog.records if r.name == "api.throttles"]
    assert warnings and "throttle cache unavailable" in warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING


def test_the_token_endpoint_answers_with_the_throttle_cache_down(cache_down, make_user):
    make_user(OPERATIONS, "ops")
    client = APIClient()
    bad = client.post("/api/v1/auth/token", {"username": "ops", "password": "bad"})
    good = client.post("/api/v1/auth/token", {"username": "ops", "password": PASSWORD})
    assert (bad.status_code, good.status_code) == (401, 200)


def test_the_cached_reads_are_served_from_the_database_with_the_cache_down(
    cache_down, ops_api, rules, settings, caplog
):
    """stuck-orders and statistics go through the shared read cache (api.caching)."""
    settings.API_READ_CACHE_SECONDS = 5
    with caplog.at_level(logging.WARNING, logger="api"):
        stuck = ops_api.get("/api/v1/self-healing/stuck-orders")
        statistics = ops_api.get("/api/v1/self-healing/statistics")
    assert (stuck.status_code, statistics.status_code) == (200, 200)
    assert any(r.name == "api.caching" for r in caplog.records)


def test_metrics_answer_with_the_cache_down(cache_down, settings, caplog):
    """/metrics caches its closed days; with Redis gone it computes them."""
    from django.test import Client

    settings.METRICS_TOKEN = "metrics-test-token"
    settings.METRICS_ALLOWED_IPS = ["127.0.0.0/8"]
    with caplog.at_level(logging.WARNING, logger="healing"):
        response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-test-token")

    assert response.status_code == 200, response.content[:300]
    assert b"healing_healings_total" in response.content
    assert any("metrics cache unavailable" in r.getMessage() for r in caplog.records)


def test_a_hung_cache_times_out_instead_of_hanging_the_request(settings):
    """A Redis that accepts and never answers (dropping packets): the
    configured socket timeout turns the call into an error the throttles and
    read caches fail open on, instead of a request that hangs."""
    from django.core.cache import caches

    from api.throttles import CACHE_ERRORS

    live = settings.CACHES["default"]
    if not live["BACKEND"].endswith("RedisCache"):
        pytest.skip("no REDIS_URL: the cache is in-process")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepted by the kernel, never read or answered
        settings.CACHES = {
            "default": {
                **live,
                "LOCATION": f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
            }
        }
        with pytest.raises(CACHE_ERRORS):
            caches["default"].get("anything")
