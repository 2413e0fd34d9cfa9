"""Heal tasks as Flower shows them (issue 20 item 17): the order, never the token."""

from __future__ import annotations

import pytest

from healing.dispatch import heal_order_send, healings_dispatch


def test_a_heal_task_shows_the_healing_and_order_not_the_claim_token(heal_publishes):
    heal_order_send(healing_id=41, token="secret-claim-token", order_number="ORD-000041")

    (published,) = heal_publishes
    headers = published.headers
    assert headers["argsrepr"] == "(healing=41, order=ORD-000041)"
    assert "secret-claim-token" not in headers["argsrepr"]
    assert headers["kwargsrepr"] == "{}"


def test_a_cycles_dispatch_labels_every_task(heal_publishes):
    healings_dispatch([(1, "t1"), (2, "t2")], order_numbers={1: "ORD-1"})

    assert sorted(m.headers["argsrepr"] for m in heal_publishes) == [
        "(healing=1, order=ORD-1)",
        "(healing=2)",
    ]


@pytest.mark.parametrize(("queue_type", "expected"), [("classic", 0.3), ("quorum", 1.0)])
def test_a_sub_second_retry_delay_is_raised_to_one_second_on_quorum_queues(
    settings, queue_type, expected
):
    """Celery's delayed delivery on quorum queues drops a countdown under 1 s."""
    from healing.dispatch import countdown_for_broker

    settings.CELERY_QUEUE_TYPE = queue_type
    assert countdown_for_broker(0.3) == expected
    assert countdown_for_broker(4.0) == 4.0


@pytest.mark.django_db
def test_a_heal_retry_on_quorum_queues_waits_at_least_one_second(settings):
    from healing.execution import healing_retry_or_fail
    from tests.factories import HealingActionFactory

    settings.CELERY_QUEUE_TYPE = "quorum"
    settings.HEALING_TASK_BACKOFF_BASE = 0.05
    settings.HEALING_TASK_BACKOFF_MAX = 0.2
    healing = HealingActionFactory(recovery_status="IN_PROGRESS")

    decision = healing_retry_or_fail(
        healing_id=healing.pk, token=healing.claim_token, error="vendor timeout", retries=0
    )

    assert decision.retry and decision.countdown == 1.0
