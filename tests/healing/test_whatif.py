"""What-if replay on a hand-built history, answered by hand: PENDING 30 vs 20 minutes.

T0 is two hours before the end of the window. Rows (status, minute, actor):

A: PENDING 0, CONFIRMED 25 (vendor), ACCEPTED 40 (vendor) — ACCEPTED 80 min, under 120.
B: PENDING 0, PENDING 31 (healer reassigned), CONFIRMED 45 (vendor) — CONFIRMED 75 min.
C: PENDING 90 — still pending at the end: 30 min exactly.
D: PENDING 0, CANCELLED 10 (system).
E: PENDING 0, PENDING 35 (healer), PENDING 70 (healer) — still pending, 50 min.
F: PENDING 7 days before (outside the window), CONFIRMED 0 (vendor) — 120 min.

Today (PENDING 30): flags B's first PENDING (healer-ended: still stuck), B's
CONFIRMED (75 > 60), E's three PENDING episodes and F's CONFIRMED: 3 orders, 6
episodes. Recovered by themselves before 30/60: A's PENDING (25) and CONFIRMED
(15), B's second PENDING (14), D's PENDING (10) = 4. C at exactly 30 is not
past 30. Actions: B REASSIGN then RETRY (attempt 2 of CONFIRMED's ladder), E
REASSIGN, REASSIGN, CANCEL, F RETRY.

Proposed (PENDING 20, ladder PENDING=[REASSIGN_VENDOR]): also A's PENDING
(25 > 20) and C (30 > 20): 5 orders, 8 episodes; self-recovered 3 (A's
CONFIRMED, B's second PENDING, D). E: REASSIGN, then MANUAL twice: 2
escalations. Flagged by both: 6 episodes, shifts -10 (B, E x3) and 0 (B's
CONFIRMED, F): mean -40/6 = -6.67, p95 (nearest rank, 6th of 6) 0. Only
proposed: A and C, of which A recovered by itself (between 20 and 25 minutes).
"""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from healing.whatif import WhatIfInvalid, rules_whatif
from tests.factories import OrderFactory, OrderStatusChangeFactory

# The factories write their own "created" rows at the real now: the window
# ends a day earlier so only the hand-built rows are in it.
END_SHIFT = timedelta(days=1)


@pytest.fixture
def history(db, rules):
    end = timezone.now() - END_SHIFT
    t0 = end - timedelta(minutes=120)
    plan = {
        "A": [("PENDING", 0, "SYSTEM"), ("CONFIRMED", 25, "VENDOR"), ("ACCEPTED", 40, "VENDOR")],
        "B": [("PENDING", 0, "SYSTEM"), ("PENDING", 31, "HEALING"), ("CONFIRMED", 45, "VENDOR")],
        "C": [("PENDING", 90, "SYSTEM")],
        "D": [("PENDING", 0, "SYSTEM"), ("CANCELLED", 10, "SYSTEM")],
        "E": [("PENDING", 0, "SYSTEM"), ("PENDING", 35, "HEALING"), ("PENDING", 70, "HEALING")],
        "F": [("PENDING", -7 * 24 * 60, "SYSTEM"), ("CONFIRMED", 0, "VENDOR")],
    }
    for rows in plan.values():
        order = OrderFactory()
        for status, minute, actor in rows:
            OrderStatusChangeFactory(
                order=order,
                from_status="",
                to_status=status,
                actor_type=actor,
                created_at=t0 + timedelta(minutes=minute),
            )
    return end


def test_twenty_against_thirty_minutes_by_hand(history):
    report = rules_whatif(
        days=7,
        thresholds={"PENDING": 20},
        ladders={"PENDING": ["REASSIGN_VENDOR"]},
        now=history,
    )

    assert report["history_rows"] == 13
    current, proposed = report["current"], report["proposed"]
    assert current["rules"]["PENDING"]["threshold_minutes"] == 30
    assert (current["flagged_orders"], current["flagged_episodes"]) == (3, 6)
    assert current["actions"] == {
        "REASSIGN_VENDOR": 3,
        "RETRY_WORKFLOW": 2,
        "CANCEL_ORDER": 1,
        "MANUAL_INTERVENTION": 0,
    }
    assert current["escalations"] == 0
    assert current["self_recovered_before_threshold"] == 4
    assert (proposed["flagged_orders"], proposed["flagged_episodes"]) == (5, 8)
    assert proposed["actions"] == {
        "REASSIGN_VENDOR": 4,
        "RETRY_WORKFLOW": 2,
        "CANCEL_ORDER": 0,
        "MANUAL_INTERVENTION": 2,
    }
    assert proposed["escalations"] == 2
    assert proposed["self_recovered_before_threshold"] == 3
    assert report["comparison"] == {
        "flagged_by_both": 6,
        "only_current": 0,
        "only_proposed": 2,
        "earlier": 4,
        "later": 0,
        "shift_minutes_mean": -6.67,
        "shift_minutes_p95": 0.0,
        "self_recovered_between_thresholds": 1,
    }


def test_no_change_means_no_difference(history):
    report = rules_whatif(days=7, now=history)

    assert report["current"] == report["proposed"]
    assert report["comparison"]["only_current"] == report["comparison"]["only_proposed"] == 0


def test_the_replay_is_one_query_over_the_history(history, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):  # the rules, the history (one streamed query)
        rules_whatif(days=7, thresholds={"PENDING": 20}, now=history)


@pytest.mark.parametrize(
    ("thresholds", "ladders", "message"),
    [
        ({"SHIPPED": 20}, {}, "no enabled rule for SHIPPED"),
        ({}, {"PROCESSING": ["REASSIGN_VENDOR"]}, "never reassigned"),
    ],
)
def test_an_impossible_proposal_is_one_line(db, rules, thresholds, ladders, message):
    with pytest.raises(WhatIfInvalid, match=message):
        rules_whatif(days=7, thresholds=thresholds, ladders=ladders)


def test_the_command_prints_a_table_and_a_json_last_line(db, rules):
    out = StringIO()
    call_command("rules_whatif", "--days", "7", "--set", "PENDING=20", stdout=out)

    lines = out.getvalue().strip().splitlines()
    assert "current" in lines[1] and "proposed" in lines[1]
    report = json.loads(lines[-1])
    assert report["proposed"]["rules"]["PENDING"]["threshold_minutes"] == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "PENDING"], "expected STATUS=MINUTES"),
        (["--set", "PENDING=0"], "expected STATUS=MINUTES"),
        (["--ladder", "ACCEPTED=FIX_IT"], "unknown action FIX_IT"),
        (["--set", "DELIVERED=5"], "no enabled rule for DELIVERED"),
    ],
)
def test_the_command_refuses_bad_input_in_one_line(db, rules, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("rules_whatif", *args, stdout=StringIO())


def test_the_api_answers_operators_and_refuses_viewers(
    db, rules, admin_api, client_for, api_defaults
):
    url = "/api/v1/self-healing/rules/what-if"
    body = {
        "days": 7,
        "thresholds": {"PENDING": 20},
        "ladders": {"ACCEPTED": ["MANUAL_INTERVENTION"]},
    }

    response = client_for("OPERATIONS").post(url, body, format="json")

    assert response.status_code == 200, response.content
    data = response.json()
    assert data["success"] is True
    assert data["proposed"]["rules"]["ACCEPTED"]["ladder"] == ["MANUAL_INTERVENTION"]
    bad = admin_api.post(url, {"thresholds": {"SHIPPED": 5}}, format="json")
    assert bad.status_code == 400 and "SHIPPED" in bad.json()["error"]["message"]
    assert client_for("VIEWER").post(url, body, format="json").status_code == 403
