"""Throttles on the token endpoint and on heal / run-cycle (429 with Retry-After)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from orders.roles import OPERATIONS
from tests.api.helpers import PASSWORD, assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def throttled(settings):
    settings.API_THROTTLE_ENABLED = True
    settings.API_THROTTLE_RATES = {"auth": "3/min", "healing": "2/min"}
    cache.clear()
    yield
    cache.clear()


def test_token_endpoint_is_throttled(throttled, make_user):
    make_user(OPERATIONS, "ops")
    client = APIClient()

    codes = [
        client.post("/api/v1/auth/token/", {"username": "ops", "password": "bad"}).status_code
        for _ in range(3)
    ]
    response = client.post("/api/v1/auth/token/", {"username": "ops", "password": PASSWORD})

    assert codes == [401, 401, 401]
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0


@pytest.mark.parametrize("proxies", [0, 1])
def test_a_rotating_x_forwarded_for_cannot_avoid_the_token_throttle(
    throttled, make_user, settings, proxies
):
    # Issue 21 item 1: DRF keyed anonymous throttling on the raw header.
    settings.TRUSTED_PROXY_COUNT = proxies
    make_user(OPERATIONS, "ops")
    client = APIClient()

    def attempt(n: int, password: str = "bad"):
        # The client writes whatever it likes left of the proxy's entry; with
        # no trusted proxy it controls the whole header.
        forwarded = f"198.51.100.{n}" if proxies == 0 else f"198.51.100.{n}, 203.0.113.9"
        return client.post(
            "/api/v1/auth/token",
            {"username": "ops", "password": password},
            REMOTE_ADDR="10.0.0.2" if proxies else "203.0.113.9",
            HTTP_X_FORWARDED_FOR=forwarded,
        )

    codes = [attempt(n).status_code for n in range(3)]
    response = attempt(99, PASSWORD)

    assert codes == [401, 401, 401]
    assert_error(response, 429, "throttled")


def test_clients_behind_the_trusted_proxy_have_their_own_budgets(throttled, make_user, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    make_user(OPERATIONS, "ops")
    client = APIClient()

    def attempt(address: str):
        return client.post(
            "/api/v1/auth/token",
            {"username": "ops", "password": "bad"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=address,
        ).status_code

    assert [attempt("198.51.100.1") for _ in range(4)] == [401, 401, 401, 429]
    assert attempt("198.51.100.2") == 401


def test_run_cycle_is_throttled_per_user(throttled, ops_api, rules, client_for):
    url = "/api/v1/self-healing/run-cycle"

    assert [ops_api.post(url).status_code for _ in range(2)] == [200, 200]
    assert_error(ops_api.post(url), 429, "throttled")
    # Reads are not throttled, and neither is another user.
    assert ops_api.get("/api/v1/self-healing/rules").status_code == 200
    assert client_for("ADMIN").post(url).status_code == 200


def test_heal_shares_the_healing_budget(throttled, ops_api, rules):
    ops_api.post("/api/v1/self-healing/run-cycle")
    ops_api.post("/api/v1/self-healing/run-cycle")

    assert_error(ops_api.post("/api/v1/self-healing/heal/1"), 429, "throttled")


def test_throttling_can_be_switched_off(settings, ops_api, rules):
    settings.API_THROTTLE_ENABLED = False
    settings.API_THROTTLE_RATES = {"auth": "1/min", "healing": "1/min"}

    codes = {ops_api.post("/api/v1/self-healing/run-cycle").status_code for _ in range(4)}

    assert codes == {200}
