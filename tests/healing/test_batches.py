"""Issue 15: a cycle's first sends go several healings to a heal task.

Each healing of a batch keeps its own claim, lease and outcome: a retry goes
on its own, an error in one does not stop the rest, a duplicate batch changes
nothing, and a pool child lost under a batch gets every healing it had not
finished re-sent (the worker's rescue, the liveness report, the broker scan).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import timedelta

import pytest
from celery import current_app
from celery.contrib.testing.mocks import TaskMessage
from django.utils import timezone

from healing import sweeper, tasks
from healing.dispatch import HEAL_ORDER, batch_size, heal_pairs, healings_dispatch
from healing.errors import HealingTransientError
from healing.execution import healing_initiate
from healing.liveness import _heal_message
from healing.models import HealingAction
from healing.sweeper import HealRequest
from orders.models import OrderStatusChange
from tests.factories import OrderFactory


def test_a_batch_is_as_large_as_allowed_while_the_dispatch_keeps_its_spread(settings):
    settings.HEALING_TASK_BATCH = 10
    settings.HEALING_TASK_BATCH_MIN_TASKS = 32
    assert batch_size(10_000) == 10
    assert batch_size(200) == 6  # 34 tasks, not 20
    assert batch_size(63) == 1
    settings.HEALING_TASK_BATCH = 1
    assert batch_size(10_000) == 1


def test_a_large_dispatch_sends_every_pair_once_in_batches_and_re_sends_one_a_task(
    settings, heal_publishes
):
    settings.HEALING_TASK_BATCH = 10
    settings.HEALING_TASK_BATCH_MIN_TASKS = 32
    pairs = [(index, f"t{index}") for index in range(1, 401)]

    healings_dispatch(pairs)

    assert len(heal_publishes) == 40
    carried = [pair for m in heal_publishes for pair in heal_pairs(m.args, m.kwargs)]
    assert sorted(carried) == sorted(pairs)
    assert all(len(heal_pairs(m.args, m.kwargs)) == 10 for m in heal_publishes)

    heal_publishes.clear()
    healings_dispatch(pairs[:50], urgent=True)
    assert len(heal_publishes) == 50
    assert all("more" not in m.kwargs for m in heal_publishes)


def _stuck_healings(count: int) -> list[HealingAction]:
    return [
        healing_initiate(order=OrderFactory(status="CONFIRMED", stuck_minutes=61), trigger="CLI")
        for _ in range(count)
    ]


def _batch(healings: list[HealingAction]) -> tuple[tuple, dict]:
    (first, *rest) = [(h.pk, str(h.claim_token)) for h in healings]
    return first, {"more": [list(pair) for pair in rest]}


@pytest.mark.django_db(transaction=True)
def test_each_healing_of_a_batch_keeps_its_own_outcome_retry_and_error(monkeypatch):
    ok_first, transient, broken, ok_last = _stuck_healings(4)
    real_execute = tasks.healing_execute

    def execute(*, healing_id, token, retries):
        if healing_id == transient.pk:
            raise HealingTransientError("vendor gateway: timed out", token=uuid.UUID(token))
        if healing_id == broken.pk:
            raise RuntimeError("a bug in one healing")
        return real_execute(healing_id=healing_id, token=token, retries=retries)

    scheduled: list[dict] = []
    monkeypatch.setattr(tasks, "healing_execute", execute)
    monkeypatch.setattr(tasks, "heal_order_send", lambda **kwargs: scheduled.append(kwargs))
    args, kwargs = _batch([ok_first, transient, broken, ok_last])

    result = tasks.heal_order.apply(args=args, kwargs=kwargs).get(disable_sync_subtasks=False)

    assert result == ["SUCCESS", "RETRY", "ERROR", "SUCCESS"]
    statuses = dict(HealingAction.objects.values_list("pk", "recovery_status"))
    assert statuses[ok_first.pk] == statuses[ok_last.pk] == "SUCCESS"
    assert statuses[broken.pk] == "PENDING"  # its lease brings it back
    ((retry),) = scheduled  # the transient one, on its own, as its first retry
    assert retry["healing_id"] == transient.pk and retry["retries"] == 1
    assert retry["token"] == str(transient.claim_token) and retry["countdown"] > 0
    assert "more" not in retry


@pytest.mark.django_db(transaction=True)
def test_a_batch_delivered_twice_heals_each_order_once():
    healings = _stuck_healings(3)
    args, kwargs = _batch(healings)
    before = {
        h.order_id: OrderStatusChange.objects.filter(order_id=h.order_id).count() for h in healings
    }

    first = tasks.heal_order.apply(args=args, kwargs=kwargs).get(disable_sync_subtasks=False)
    again = tasks.heal_order.apply(args=args, kwargs=kwargs).get(disable_sync_subtasks=False)

    assert first == ["SUCCESS"] * 3
    assert again == ["STALE"] * 3
    for healing in healings:
        changes = OrderStatusChange.objects.filter(order_id=healing.order_id).count()
        assert changes == before[healing.order_id] + 1


@pytest.mark.django_db(transaction=True)
def test_a_pool_child_lost_under_a_batch_gets_every_unfinished_healing_re_sent(monkeypatch):
    finished, running, waiting = _stuck_healings(3)
    args, kwargs = _batch([finished, running, waiting])
    started = time.time()
    tasks.heal_order.apply(args=(finished.pk, str(finished.claim_token))).get(
        disable_sync_subtasks=False
    )
    # The one the child was running when it died: claimed after the batch started.
    HealingAction.objects.filter(pk=running.pk).update(
        recovery_status="IN_PROGRESS", claim_token=uuid.uuid4(), updated_at=timezone.now()
    )
    sent: list[tuple[list, bool]] = []
    monkeypatch.setattr(
        sweeper, "healings_dispatch", lambda pairs, urgent=False: sent.append((pairs, urgent))
    )
    task = current_app.tasks[HEAL_ORDER]
    request = HealRequest(
        TaskMessage(HEAL_ORDER, args=args, kwargs=kwargs), app=current_app, task=task
    )
    request.time_start = started

    request._rescue()
    request._rescue()  # once per request

    ((pairs, urgent),) = sent
    assert urgent and sorted(h for h, _ in pairs) == sorted([running.pk, waiting.pk])
    for healing_id, token in pairs:
        row = HealingAction.objects.get(pk=healing_id)
        assert row.recovery_status == "PENDING" and str(row.claim_token) == token
    assert HealingAction.objects.get(pk=finished.pk).recovery_status == "SUCCESS"


@pytest.mark.django_db(transaction=True)
def test_a_lost_batch_leaves_alone_the_healings_it_handed_to_a_retry(monkeypatch):
    """A healing the batch handed to a retry task is that task's: waiting for
    its retry, or claimed by it at retry 1, it is not the dead child's."""
    waiting, retrying, running = _stuck_healings(3)
    args, kwargs = _batch([waiting, retrying, running])
    started = time.time()
    later = timezone.now()
    HealingAction.objects.filter(pk=waiting.pk).update(
        recovery_status="IN_PROGRESS",
        claim_token=uuid.uuid4(),
        updated_at=later,
        next_attempt_at=later + timedelta(seconds=2),
    )
    HealingAction.objects.filter(pk=retrying.pk).update(
        recovery_status="IN_PROGRESS", claim_token=uuid.uuid4(), updated_at=later, retry_count=1
    )
    HealingAction.objects.filter(pk=running.pk).update(
        recovery_status="IN_PROGRESS", claim_token=uuid.uuid4(), updated_at=later, retry_count=0
    )
    before = dict(HealingAction.objects.values_list("pk", "claim_token"))
    sent: list[list] = []
    monkeypatch.setattr(
        sweeper, "healings_dispatch", lambda pairs, urgent=False: sent.append(pairs)
    )
    task = current_app.tasks[HEAL_ORDER]
    message = TaskMessage(HEAL_ORDER, args=args, kwargs=kwargs)
    request = HealRequest(message, app=current_app, task=task)
    request.time_start = started

    request._rescue()

    ((pairs),) = sent
    assert [h for h, _ in pairs] == [running.pk]
    after = dict(HealingAction.objects.values_list("pk", "claim_token"))
    assert after[waiting.pk] == before[waiting.pk] and after[retrying.pk] == before[retrying.pk]


def test_the_broker_scan_reads_every_healing_of_a_batch_message():
    body = json.dumps([[7, "t7"], {"more": [[8, "t8"], [9, "t9"]]}, {}]).encode()
    raw = json.dumps(
        [
            {
                "body": base64.b64encode(body).decode(),
                "headers": {"task": HEAL_ORDER, "eta": None},
                "properties": {"body_encoding": "base64"},
            },
            "",
            "healing",
        ]
    )
    assert _heal_message(raw, task_name=HEAL_ORDER) == [
        (7, "t7", None),
        (8, "t8", None),
        (9, "t9", None),
    ]
    assert _heal_message(raw, task_name="healing.tasks.run_cycle") == []


@pytest.mark.django_db(transaction=True)
def test_a_batch_past_its_time_budget_hands_the_healings_it_did_not_start_on(settings, monkeypatch):
    """Slow vendors: a batch starts no healing that could not finish its vendor
    call inside the soft time limit; the rest goes on in one task, tokens unchanged."""
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 15
    settings.VENDOR_GATEWAY_TIMEOUT_SECONDS = 5.0
    settings.HEALING_LEASE_MARGIN_SECONDS = 10.0  # no room: one healing a task
    first, second, third = _stuck_healings(3)
    sent: list[dict] = []
    monkeypatch.setattr(tasks, "heal_order_send", lambda **kwargs: sent.append(kwargs))
    args, kwargs = _batch([first, second, third])

    result = tasks.heal_order.apply(args=args, kwargs=kwargs).get(disable_sync_subtasks=False)

    assert result == ["SUCCESS", tasks.HANDED_ON, tasks.HANDED_ON]
    ((handed),) = sent
    assert handed["urgent"]
    assert (handed["healing_id"], handed["token"]) == (second.pk, str(second.claim_token))
    assert handed["more"] == [(third.pk, str(third.claim_token))]
    for healing in (second, third):
        row = HealingAction.objects.get(pk=healing.pk)
        assert row.recovery_status == "PENDING" and row.claim_token == healing.claim_token


@pytest.mark.django_db(transaction=True)
def test_the_soft_time_limit_in_a_batch_hands_on_the_rest_and_ends_the_task(monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    first, slow, last = _stuck_healings(3)
    real_execute = tasks.healing_execute

    def execute(*, healing_id, token, retries):
        if healing_id == slow.pk:
            raise SoftTimeLimitExceeded()
        return real_execute(healing_id=healing_id, token=token, retries=retries)

    sent: list[dict] = []
    monkeypatch.setattr(tasks, "healing_execute", execute)
    monkeypatch.setattr(tasks, "heal_order_send", lambda **kwargs: sent.append(kwargs))
    args, kwargs = _batch([first, slow, last])

    with pytest.raises(SoftTimeLimitExceeded):
        tasks.heal_order.apply(args=args, kwargs=kwargs).get(disable_sync_subtasks=False)

    ((handed),) = sent  # the slow one too: it had not claimed yet
    assert (handed["healing_id"], handed["more"]) == (slow.pk, [(last.pk, str(last.claim_token))])
    assert handed["token"] == str(slow.claim_token) and handed["urgent"]
    assert HealingAction.objects.get(pk=first.pk).recovery_status == "SUCCESS"
