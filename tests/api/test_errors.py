"""Every bad input of issue 7 answers its status and the one error body, DEBUG on or off."""

from __future__ import annotations

import pytest

from healing.models import HealingAction
from tests.api.helpers import assert_error
from tests.factories import AdminNotificationFactory, OrderFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/self-healing"


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"], autouse=True)
def debug(request, settings) -> bool:
    settings.DEBUG = request.param
    return request.param


@pytest.fixture
def stuck_order(rules):
    return OrderFactory(status="PENDING", stuck_minutes=45)


# --- unknown ids: 404 -----------------------------------------------------------


def test_unknown_order_is_404(ops_api, rules):
    error = assert_error(ops_api.post(f"{BASE}/heal/999999"), 404, "not_found", "orderId")
    assert "order 999999" in error["message"]


def test_order_id_beyond_bigint_is_404_not_500(ops_api, rules):
    assert_error(ops_api.post(f"{BASE}/heal/{2**70}"), 404, "not_found", "orderId")


@pytest.mark.parametrize("path", ["heal/", "no-such-endpoint", "heal/1/2", "heal"])
def test_unknown_path_under_the_api_is_a_json_404(ops_api, path):
    assert_error(ops_api.post(f"{BASE}/{path}"), 404, "not_found")


@pytest.mark.parametrize("path", ["heal/abc", "heal/1.5", "heal/1%0A2", "heal/%F2%84%82"])
def test_order_id_that_is_not_an_integer_is_400_naming_it(ops_api, path):
    # Issue 20 item 14: not "No API endpoint at ...".
    error = assert_error(ops_api.post(f"{BASE}/{path}"), 400, "invalid", "orderId")

    assert error["message"] == "orderId must be an integer"
    assert not HealingAction.objects.exists()


def test_negative_order_id_is_404(ops_api):
    error = assert_error(ops_api.post(f"{BASE}/heal/-1"), 404, "not_found", "orderId")
    assert "order -1" in error["message"]


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_unknown_notification_is_404(admin_api, action):
    response = admin_api.post(f"{BASE}/notifications/424242/{action}")

    error = assert_error(response, 404, "not_found", "id")
    assert "notification 424242" in error["message"]


@pytest.mark.parametrize("path", ["healing-actions/424242", "cycles/424242", f"cycles/{2**64}"])
def test_unknown_healing_or_cycle_is_404(ops_api, path):
    assert_error(ops_api.get(f"{BASE}/{path}"), 404, "not_found", "id")


# --- bad values: 400 naming the field ---------------------------------------------


def test_unknown_issue_type_is_400(ops_api, stuck_order):
    response = ops_api.post(f"{BASE}/heal/{stuck_order.pk}", {"issueType": "STUCK_FOREVER"})

    error = assert_error(response, 400, "invalid", "issueType")
    assert "STUCK_FOREVER" in error["message"]
    assert not HealingAction.objects.exists()


def test_unknown_recovery_action_is_400(ops_api, stuck_order):
    response = ops_api.post(f"{BASE}/heal/{stuck_order.pk}", {"recoveryAction": "PRAY"})

    error = assert_error(response, 400, "invalid", "recoveryAction")
    assert "PRAY" in error["message"]


def test_null_recovery_action_is_400(ops_api, stuck_order):
    response = ops_api.post(f"{BASE}/heal/{stuck_order.pk}", {"recoveryAction": None})

    assert_error(response, 400, "null", "recoveryAction")


def test_body_that_is_not_an_object_is_400(ops_api, stuck_order):
    response = ops_api.post(f"{BASE}/heal/{stuck_order.pk}", [1, 2])

    assert_error(response, 400, "invalid", None)


@pytest.mark.parametrize("endpoint", ["statistics", "kpis"])
@pytest.mark.parametrize(
    ("days", "code"),
    [("0", "min_value"), ("366", "max_value"), ("-3", "min_value"), ("abc", "invalid")],
)
def test_days_out_of_range_or_not_a_number_is_400(client_for, endpoint, days, code):
    response = client_for("VIEWER").get(f"{BASE}/{endpoint}?days={days}")

    error = assert_error(response, 400, code, "days")
    assert error["message"].startswith("days: ")


@pytest.mark.parametrize(
    "query",
    [
        "status=NOPE",
        "issue_type=NOPE",
        "action=NOPE",
        "order=abc",
        "order=0",
        f"order={2**64}",
        "detected_from=yesterday",
        "limit=0",
        "limit=100000",
        "offset=-1",
    ],
)
def test_bad_healing_action_filters_are_400(ops_api, query):
    field = query.split("=")[0]
    response = ops_api.get(f"{BASE}/healing-actions?{query}")

    assert response.status_code == 400
    assert_error(response, 400, response.json()["error"]["code"], field)


def test_reversed_date_range_is_400(ops_api):
    response = ops_api.get(
        f"{BASE}/healing-actions?detected_from=2026-01-02T00:00:00Z&detected_to=2026-01-01T00:00:00Z"
    )

    assert_error(response, 400, "invalid", "detected_to")


@pytest.mark.parametrize("query", ["severity=URGENT", "type=NOPE", "acknowledged=maybe"])
def test_bad_notification_filters_are_400(ops_api, query):
    response = ops_api.get(f"{BASE}/notifications?{query}")

    assert_error(response, 400, response.json()["error"]["code"], query.split("=")[0])


def test_comment_with_a_nul_character_is_400(admin_api):
    notification = AdminNotificationFactory()

    response = admin_api.post(
        f"{BASE}/notifications/{notification.pk}/acknowledge", {"comment": "a\x00b"}
    )

    assert_error(response, 400, "null_characters_not_allowed", "comment")


# --- malformed JSON, wrong content type -----------------------------------------


@pytest.mark.parametrize("path", ["heal/{order}", "run-cycle"])
def test_malformed_json_is_400(ops_api, stuck_order, path):
    url = f"{BASE}/{path.format(order=stuck_order.pk)}"

    response = ops_api.post(url, data='{"issueType": ', content_type="application/json")

    error = assert_error(response, 400, "malformed_request")
    assert "JSON parse error" in error["message"]
    assert not HealingAction.objects.exists()


@pytest.mark.parametrize("path", ["heal/{order}", "run-cycle"])
def test_wrong_content_type_is_415(ops_api, stuck_order, path):
    url = f"{BASE}/{path.format(order=stuck_order.pk)}"

    response = ops_api.post(url, data="issueType=STUCK_PENDING", content_type="text/plain")

    error = assert_error(response, 415, "unsupported_media_type")
    assert "text/plain" in error["message"]
    assert not HealingAction.objects.exists()


def test_form_encoded_body_is_415(ops_api, stuck_order):
    response = ops_api.post(
        f"{BASE}/heal/{stuck_order.pk}",
        data="issueType=STUCK_PENDING",
        content_type="application/x-www-form-urlencoded",
    )

    assert_error(response, 415, "unsupported_media_type")


def test_malformed_json_on_the_token_endpoint_is_400():
    from rest_framework.test import APIClient

    response = APIClient().post(
        "/api/v1/auth/token/", data="{nope", content_type="application/json"
    )

    assert_error(response, 400, "malformed_request")


# --- method -----------------------------------------------------------------------


def test_wrong_method_is_405(ops_api):
    response = ops_api.get(f"{BASE}/run-cycle")

    assert_error(response, 405, "method_not_allowed")


def test_unacceptable_accept_header_is_406(ops_api):
    response = ops_api.get(f"{BASE}/rules", HTTP_ACCEPT="application/xml")

    assert_error(response, 406, "not_acceptable")


# --- an unexpected failure is still JSON ------------------------------------------


def test_unexpected_error_is_a_json_500_without_internals(ops_api, monkeypatch, debug):
    def boom(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("healing.apis.stuck_orders_detect", boom)

    response = ops_api.get(f"{BASE}/stuck-orders")

    error = assert_error(response, 500, "server_error")
    assert "secret" not in error["message"]


def test_database_down_is_503(ops_api, monkeypatch):
    from django.db import OperationalError

    def down(**kwargs):
        raise OperationalError("could not connect")

    monkeypatch.setattr("healing.apis.stuck_orders_detect", down)

    response = ops_api.get(f"{BASE}/stuck-orders")

    assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"] == "5"


def test_unknown_path_post_with_a_session_cookie_is_a_json_404_not_a_csrf_page(admin_api):
    admin_api.cookies["sessionid"] = "whatever"

    response = admin_api.post(f"{BASE}/heal/1/2", {"issueType": "STUCK_PENDING"})

    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "path", ["/api/v1/no-such-thing", "/api/v1/", "/api/v1/health/", "/api/", "/api/v2/x"]
)
def test_unknown_api_path_outside_self_healing_is_a_json_404(client, debug, path):
    # Issue 20 item 10: JSON with DEBUG on as well (no technical HTML page).
    error = assert_error(client.get(path), 404, "not_found")

    assert path in error["message"]


def test_unknown_non_api_path_keeps_djangos_404_page(client, debug):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_project_500_handler_is_json_under_the_api(rf):
    from api.errors import handler500

    response = handler500(rf.get("/api/v1/self-healing/rules"))

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert b'"server_error"' in response.content


def _oversized(settings) -> str:
    import json

    return json.dumps({"comment": "a" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})


@pytest.mark.parametrize("path", ["heal/{order}", "run-cycle"])
def test_oversized_json_body_is_413(ops_api, stuck_order, settings, path):
    url = f"{BASE}/{path.format(order=stuck_order.pk)}"

    response = ops_api.post(url, data=_oversized(settings), content_type="application/json")

    assert_error(response, 413, "payload_too_large")
    assert not HealingAction.objects.exists()


def test_oversized_body_read_through_request_body_is_413(client, admin_user, settings):
    # With a session, CSRF checking reads request.body first: Django's own
    # RequestDataTooBig must map to 413 as well.
    client.force_login(admin_user)

    response = client.post(
        "/api/v1/self-healing/run-cycle", data=_oversized(settings), content_type="application/json"
    )

    assert_error(response, 413, "payload_too_large")


def test_oversized_token_request_is_413(client, settings):
    response = client.post(
        "/api/v1/auth/token/", data=_oversized(settings), content_type="application/json"
    )

    assert_error(response, 413, "payload_too_large")
