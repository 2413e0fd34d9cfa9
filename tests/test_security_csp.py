"""The Content-Security-Policy header (issue 21 item 6), without a browser.

tests/test_security_csp_browser.py loads the pages in Chromium under it.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from config.middleware import csp_header_value
from orders.roles import ADMIN, role_user_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client):
    user = role_user_create(username="csp-admin", password="pw-csp-123456", role=ADMIN)[0]
    client.force_login(user)
    return client


def _directives(header: str) -> dict[str, list[str]]:
    return {
        part.split()[0]: part.split()[1:] for part in (p.strip() for p in header.split(";")) if part
    }


@pytest.mark.parametrize(
    "url_name",
    ["dashboard:index", "dashboard:login", "admin:index", "admin:login", "swagger-ui", "health"],
)
def test_every_kind_of_page_carries_the_policy(signed_in, url_name):
    response = signed_in.get(reverse(url_name))
    assert response.status_code < 500
    policy = _directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    for directive in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in policy[directive]
        assert "'unsafe-eval'" not in policy[directive]
        assert not any(source.startswith("http") for source in policy[directive])


def test_swagger_ui_inline_blocks_carry_this_responses_nonce(signed_in):
    first = signed_in.get(reverse("swagger-ui"))
    second = signed_in.get(reverse("swagger-ui"))
    nonces = []
    for response in (first, second):
        html = response.content.decode()
        nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
        assert f'<script nonce="{nonce}">' in html
        assert f'<style nonce="{nonce}">' in html
        # Every inline script or style has it; the others are files.
        assert not re.search(r"<script>|<style>", html)
        nonces.append(nonce)
    assert nonces[0] != nonces[1]  # fresh per response


def test_report_only_and_off_switches(client, settings):
    settings.CSP_REPORT_ONLY = True
    settings.CSP_REPORT_URI = "/csp-report"
    response = client.get(reverse("admin:login"))
    assert "Content-Security-Policy" not in response
    assert "report-uri /csp-report" in response["Content-Security-Policy-Report-Only"]
    settings.CSP_ENABLED = False
    response = client.get(reverse("admin:login"))
    assert "Content-Security-Policy" not in response
    assert "Content-Security-Policy-Report-Only" not in response


def test_the_header_value_substitutes_the_nonce():
    value = csp_header_value(nonce="abc123")
    assert "script-src 'self' 'nonce-abc123'" in value
    assert "{nonce}" not in value
