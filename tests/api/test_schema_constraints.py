"""The schema states what the API enforces, and the API enforces what the schema states.

Each case is one schemathesis finding against a live gunicorn (issue 20):
ST202 (a schema-valid request refused), ST201 (a schema-invalid one accepted),
ST101 (a 5xx). tests/api/test_schemathesis_live.py runs the whole tool.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from api.inputs import MAX_ID
from tests.api.helpers import assert_error
from tests.factories import AdminNotificationFactory, VendorFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/self-healing"


@pytest.fixture
def schema() -> dict:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _operations(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_every_path_id_is_a_positive_bigint(schema):
    ids = [
        (path, parameter["schema"])
        for path, _, operation in _operations(schema)
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    ]
    assert len(ids) >= 20
    for path, parameter_schema in ids:
        assert parameter_schema["type"] == "integer", path
        assert (parameter_schema["minimum"], parameter_schema["maximum"]) == (1, MAX_ID), path


def test_every_request_body_refuses_unknown_keys(schema):
    components = schema["components"]["schemas"]
    bodies = {
        media["schema"]["$ref"].rsplit("/", 1)[1]
        for _, _, operation in _operations(schema)
        for media in operation.get("requestBody", {}).get("content", {}).values()
    }
    assert len(bodies) > 10
    open_ = [name for name in bodies if components[name].get("additionalProperties") is not False]
    assert open_ == []


def test_free_text_excludes_nul_and_the_idempotency_key_is_printable(schema):
    comment = schema["components"]["schemas"]["AcknowledgeRequestRequest"]["properties"]["comment"]
    assert comment["pattern"] == "^[^\\u0000]*$"
    key = next(
        parameter["schema"]
        for path, method, operation in _operations(schema)
        if path == "/api/v1/orders" and method == "post"
        for parameter in operation["parameters"]
        if parameter["name"] == "Idempotency-Key"
    )
    assert (key["minLength"], key["maxLength"]) == (1, 255) and "pattern" in key


def test_redrive_documents_only_the_statuses_it_takes(schema):
    body = schema["components"]["schemas"]["RedriveRequestRequest"]
    ref = body["properties"]["recoveryStatus"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][ref]["enum"] == ["FAILED", "MANUAL_REQUIRED"]
    assert {"required": ["token"]} in body["anyOf"]  # an execution carries the token


def test_what_if_keys_are_the_rule_statuses(schema):
    body = schema["components"]["schemas"]["RulesWhatIfRequestRequest"]["properties"]
    for key in ("thresholds", "ladders"):
        assert set(body[key]["properties"]) == {"PENDING", "CONFIRMED", "ACCEPTED", "PROCESSING"}
        assert body[key]["additionalProperties"] is False
    processing = body["ladders"]["properties"]["PROCESSING"]["items"]["enum"]
    assert "REASSIGN_VENDOR" not in processing


def test_a_number_is_not_a_string(admin_api):
    # DRF read 5 as "5": the schema says string, so 5 must be refused.
    notification = AdminNotificationFactory()

    response = admin_api.post(
        f"{BASE}/notifications/{notification.pk}/acknowledge", {"comment": 5}, format="json"
    )

    assert_error(response, 400, "invalid_type", "comment")


def test_a_string_is_not_a_boolean(admin_api, rules):
    response = admin_api.post(
        f"{BASE}/redrive", {"recoveryStatus": "FAILED", "dryRun": "false"}, format="json"
    )

    assert_error(response, 400, "invalid_type", "dryRun")


def test_a_silence_for_a_vendor_that_does_not_exist_is_a_404_not_a_500(admin_api):
    body = {
        "vendorId": 987654,
        "endsAt": (timezone.now() + timedelta(hours=1)).isoformat(),
        "comment": "maintenance",
    }

    response = admin_api.post(f"{BASE}/silences", body, format="json")

    assert_error(response, 404, "not_found", "vendorId")


def test_a_what_if_threshold_of_millennia_is_a_400_not_a_500(admin_api, rules):
    response = admin_api.post(
        f"{BASE}/rules/what-if", {"thresholds": {"ACCEPTED": 59991967077542904}}, format="json"
    )

    assert response.status_code == 400, response.content


def test_an_empty_notification_flag_is_a_400(ops_api):
    # It read as null (the default); the schema has no way to say so.
    response = ops_api.get(f"{BASE}/notifications?resolved=")

    assert_error(response, 400, "invalid", "resolved")


def test_silence_recurrence_times_are_documented_as_local_times(admin_api, schema):
    vendor = VendorFactory()
    body = {
        "vendorId": vendor.pk,
        "endsAt": (timezone.now() + timedelta(hours=1)).isoformat(),
        "comment": "nightly window",
        "recurrenceWeekdays": [0],
        "recurrenceStart": "01:00:00",
        "recurrenceEnd": "02:30:15.5",
    }

    created = admin_api.post(f"{BASE}/silences", body, format="json")

    assert created.status_code == 201, created.content
    documented = schema["components"]["schemas"]["Silence"]["properties"]["recurrence_end"]
    assert "format" not in documented
    assert re.match(documented["pattern"], created.json()["silence"]["recurrence_end"])
