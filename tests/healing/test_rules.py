from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from healing.models import StuckRule
from orders.roles import role_user_create

pytestmark = pytest.mark.django_db


def test_default_rules_are_seeded_from_the_threshold_constants():
    rules = {
        r.status: (r.issue_type, r.threshold_minutes, r.ladder) for r in StuckRule.objects.all()
    }
    assert rules == {
        "PENDING": ("STUCK_PENDING", 30, ["REASSIGN_VENDOR", "REASSIGN_VENDOR", "CANCEL_ORDER"]),
        "CONFIRMED": ("STUCK_CONFIRMED", 60, ["RETRY_WORKFLOW", "RETRY_WORKFLOW"]),
        "ACCEPTED": ("STUCK_ACCEPTED", 120, ["REASSIGN_VENDOR", "REASSIGN_VENDOR"]),
        "PROCESSING": ("STUCK_PROCESSING", 180, ["RETRY_WORKFLOW", "RETRY_WORKFLOW"]),
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ladder": ["REASSIGN_VENDOR", "TELEPORT"]}, "ladder"),
        ({"ladder": "REASSIGN_VENDOR"}, "ladder"),
        ({"issue_type": "STUCK_PENDING"}, "issue_type"),
    ],
)
def test_rule_validation_names_the_bad_field(changes, field):
    rule = StuckRule.objects.get(status="PROCESSING")
    for name, value in changes.items():
        setattr(rule, name, value)
    with pytest.raises(ValidationError) as raised:
        rule.full_clean()
    assert field in raised.value.message_dict


def test_processing_orders_are_never_reassigned_by_a_rule():
    rule = StuckRule.objects.get(status="PROCESSING")
    rule.ladder = ["REASSIGN_VENDOR"]
    with pytest.raises(ValidationError, match="never reassigned"):
        rule.full_clean()


def test_admin_edits_a_rule_and_the_form_refuses_a_bad_ladder(client):
    role_user_create(username="boss", password="pw-123456", role="ADMIN")
    client.login(username="boss", password="pw-123456")
    rule = StuckRule.objects.get(status="CONFIRMED")
    url = f"/admin/healing/stuckrule/{rule.pk}/change/"
    form = {
        "status": "CONFIRMED",
        "issue_type": "STUCK_CONFIRMED",
        "threshold_minutes": "45",
        "ladder": '["RETRY_WORKFLOW", "BOGUS"]',
        "enabled": "on",
    }

    refused = client.post(url, form)
    assert refused.status_code == 200 and "Unknown recovery action" in refused.content.decode()

    form["ladder"] = '["RETRY_WORKFLOW", "REASSIGN_VENDOR"]'
    assert client.post(url, form).status_code == 302
    rule.refresh_from_db()
    assert (rule.threshold_minutes, rule.ladder) == (45, ["RETRY_WORKFLOW", "REASSIGN_VENDOR"])


def test_operations_users_see_rules_but_cannot_change_them(client):
    role_user_create(username="ops", password="pw-123456", role="OPERATIONS")
    client.login(username="ops", password="pw-123456")
    rule = StuckRule.objects.get(status="CONFIRMED")
    assert client.get("/admin/healing/stuckrule/").status_code == 200
    response = client.post(
        f"/admin/healing/stuckrule/{rule.pk}/change/",
        {
            "status": "CONFIRMED",
            "issue_type": "STUCK_CONFIRMED",
            "threshold_minutes": "1",
            "ladder": "[]",
        },
    )
    assert response.status_code == 403
    rule.refresh_from_db()
    assert rule.threshold_minutes == 60
