"""history_prune: archive as JSON Lines, then delete in bounded batches; resumable."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from healing.management.commands import history_prune
from healing.models import HealingAction, HealingCycle
from notifications.models import AdminNotification
from orders.models import CreditEntry, OrderStatusChange, VendorMessage
from tests.factories import (
    AdminNotificationFactory,
    CreditEntryFactory,
    HealingActionFactory,
    HealingCycleFactory,
    OrderFactory,
    OrderStatusChangeFactory,
    VendorMessageFactory,
)


def _prune(*args: str) -> dict:
    out = StringIO()
    call_command("history_prune", *args, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture
def history(db):
    """Five old healings (with an old cycle, notification and history) and new ones."""
    old = timezone.now() - timedelta(days=500)
    new = timezone.now() - timedelta(days=10)
    order = OrderFactory()
    old_cycle = HealingCycleFactory(started_at=old)
    old_healings = [
        HealingActionFactory(order=order, cycle=old_cycle, recovery_status="FAILED", created_at=old)
        for _ in range(5)
    ]
    kept = HealingActionFactory(order=order, recovery_status="FAILED", created_at=new)
    # A new notification about an old healing stays; its link goes.
    AdminNotificationFactory(order=order, healing_action=old_healings[0], created_at=new)
    AdminNotificationFactory(order=order, created_at=old, resolved_at=old)
    OrderStatusChangeFactory(order=order, created_at=old)
    VendorMessageFactory(order=order, created_at=old)
    entry = CreditEntryFactory()
    with transaction.atomic(), history_prune.prune_allowed():  # the ledger is append-only
        CreditEntry.objects.filter(pk=entry.pk).update(created_at=old)
    return {"old": old_healings, "kept": kept, "order": order, "entry": entry}


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.django_db
def test_archives_then_deletes_in_batches(history, tmp_path, monkeypatch):
    batches: list[int] = []
    real = history_prune.batch_prune

    def counted(**kwargs):
        result = real(**kwargs)
        if kwargs["pruned"].model is HealingAction and result[1]:
            batches.append(result[1])
        return result

    monkeypatch.setattr(history_prune, "batch_prune", counted)

    summary = _prune("--older-than", "400d", "--archive", str(tmp_path), "--batch-size", "2")

    assert batches == [2, 2, 1]
    assert summary["tables"]["healing_actions"] == {"archived": 5, "deleted": 5}
    assert summary["tables"]["healing_cycles"]["deleted"] == 1
    assert summary["tables"]["admin_notifications"]["deleted"] == 1
    assert summary["tables"]["order_status_changes"]["deleted"] >= 1
    assert summary["tables"]["vendor_messages"]["deleted"] == 1
    assert list(HealingAction.objects.values_list("pk", flat=True)) == [history["kept"].pk]
    assert not HealingCycle.objects.filter(started_at__lt=timezone.now() - timedelta(days=400))
    survivor = AdminNotification.objects.get()
    assert survivor.healing_action_id is None
    assert VendorMessage.objects.count() == 0
    # The ledger is the balance: never pruned.
    assert CreditEntry.objects.filter(pk=history["entry"].pk).exists()
    (archive,) = tmp_path.glob("healing_actions-before-*.jsonl")
    assert sorted(row["id"] for row in _lines(archive)) == sorted(h.pk for h in history["old"])
    assert _lines(archive)[0]["recovery_status"] == "FAILED"


@pytest.mark.django_db
def test_an_interrupted_run_resumes_without_losing_or_repeating_rows(
    history, tmp_path, monkeypatch
):
    real = history_prune.batch_prune
    calls = {"n": 0}

    def dies_on_the_second_delete(**kwargs):
        if kwargs["pruned"].model is HealingAction:
            calls["n"] += 1
            if calls["n"] == 2:
                # Archived, then killed before the delete committed.
                rows = list(
                    HealingAction.objects.filter(created_at__lt=kwargs["cutoff"])
                    .order_by("pk")
                    .values()[: kwargs["batch_size"]]
                )
                kwargs["archive"].write(rows)
                raise KeyboardInterrupt
        return real(**kwargs)

    monkeypatch.setattr(history_prune, "batch_prune", dies_on_the_second_delete)
    with pytest.raises(KeyboardInterrupt):
        _prune("--older-than", "400d", "--archive", str(tmp_path), "--batch-size", "2")
    assert HealingAction.objects.count() == 4  # the first batch went, the rest is here
    (archive,) = tmp_path.glob("healing_actions-before-*.jsonl")
    # A line cut in half by the interruption.
    with archive.open("a") as handle:
        handle.write('{"id": 99999, "half')

    monkeypatch.setattr(history_prune, "batch_prune", real)
    summary = _prune("--older-than", "400d", "--archive", str(tmp_path), "--batch-size", "2")

    assert summary["tables"]["healing_actions"]["deleted"] == 3
    ids = [row["id"] for row in _lines(archive)]
    assert sorted(ids) == sorted(h.pk for h in history["old"])  # each once, nothing lost
    assert list(HealingAction.objects.values_list("pk", flat=True)) == [history["kept"].pk]


@pytest.mark.django_db
def test_a_second_run_has_nothing_to_do(history, tmp_path):
    _prune("--older-than", "400d", "--archive", str(tmp_path))

    summary = _prune("--older-than", "400d", "--archive", str(tmp_path))

    assert all(t == {"archived": 0, "deleted": 0} for t in summary["tables"].values())
    assert OrderStatusChange.objects.filter(order=history["order"]).exists()  # new history kept


@pytest.mark.parametrize("age", ["400", "0d", "-3d", "400y"])
def test_a_bad_age_is_one_line(age):
    with pytest.raises(CommandError, match="expected an age such as 400d"):
        call_command("history_prune", f"--older-than={age}")
