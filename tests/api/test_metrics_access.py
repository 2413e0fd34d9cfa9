"""Who may scrape /metrics (api.metrics): a bearer token or an allowed address,
the address taken by the trusted-proxy rule (issue 21 items 1 and 4)."""

from __future__ import annotations

import pytest
from django.test import Client

from api.metrics import address_allowed

pytestmark = pytest.mark.django_db

TOKEN = "scrape-secret-0123456789"


@pytest.fixture
def metrics_settings(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    settings.TRUSTED_PROXY_COUNT = 0
    return settings


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"HTTP_AUTHORIZATION": "Bearer wrong"}, 401),
        ({"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}, 401),
        ({"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, 200),
        ({"REMOTE_ADDR": "10.1.2.3"}, 200),  # an allowed network, no token needed
        ({"REMOTE_ADDR": "192.168.1.1", "HTTP_X_FORWARDED_FOR": "10.1.2.3"}, 401),  # not trusted
    ],
)
def test_access_needs_the_token_or_an_allowed_address(metrics_settings, headers, status):
    headers.setdefault("REMOTE_ADDR", "203.0.113.9")
    response = Client().get("/metrics", **headers)
    assert response.status_code == status
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"healing_" not in response.content


def test_behind_one_trusted_proxy_the_proxys_entry_is_the_client(metrics_settings):
    metrics_settings.TRUSTED_PROXY_COUNT = 1

    response = Client().get("/metrics", REMOTE_ADDR="192.168.1.1", HTTP_X_FORWARDED_FOR="10.9.9.9")

    assert response.status_code == 200


@pytest.mark.parametrize("spoofed", ["127.0.0.1", "10.9.9.9", "10.0.0.1, 10.0.0.2"])
def test_a_spoofed_x_forwarded_for_cannot_reach_metrics_behind_one_trusted_proxy(
    metrics_settings, spoofed
):
    # The client puts an allowed address ahead of the entry the proxy appends.
    metrics_settings.TRUSTED_PROXY_COUNT = 1
    metrics_settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "127.0.0.1/32"]

    response = Client().get(
        "/metrics", REMOTE_ADDR="10.0.0.250", HTTP_X_FORWARDED_FOR=f"{spoofed}, 203.0.113.9"
    )

    assert response.status_code == 401
    assert b"healing_" not in response.content


def test_without_a_token_only_loopback_by_default(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1/32", "::1/128"]
    settings.TRUSTED_PROXY_COUNT = 0
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="198.51.100.7").status_code == 403
    assert Client().post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


@pytest.mark.parametrize(
    ("address", "allowed", "ok"),
    [
        ("10.0.0.5", ["10.0.0.0/8"], True),
        ("10.0.0.5", ["10.0.0.5"], True),
        ("11.0.0.5", ["10.0.0.0/8"], False),
        ("::1", ["::1/128"], True),
        ("not-an-ip", ["0.0.0.0/0"], False),
        ("10.0.0.5", ["garbage", "10.0.0.0/8"], True),
    ],
)
def test_address_allowed(address, allowed, ok):
    assert address_allowed(address, allowed) is ok
