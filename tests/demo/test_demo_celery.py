"""The same demo on the full stack: PostgreSQL, Redis, a real Celery worker and beat."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from healing.models import HealingAction, HealingCycle, RecoveryStatus, Trigger
from notifications.models import AdminNotification
from tests.integration.workers import test_database_url as worker_database_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _celery_children() -> list[str]:
    """Command lines of this process's child processes that run Celery (Linux /proc)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and "celery" in cmdline:
            found.append(cmdline)
    return found


def test_demo_runs_on_real_workers_and_beat_and_stops_them(monkeypatch):
    # The worker and beat the demo starts must use pytest's database.
    monkeypatch.setenv("DATABASE_URL", worker_database_url())
    monkeypatch.delenv("TEST_DATABASE_NAME", raising=False)
    # beat's schedule as migration healing 0003 seeds it (transactional tests flush it)
    every_five_minutes, _ = IntervalSchedule.objects.get_or_create(
        every=5, period=IntervalSchedule.MINUTES
    )
    cycle, _ = PeriodicTask.objects.get_or_create(
        task="healing.tasks.run_cycle",
        defaults={
            "name": "self-healing cycle",
            "interval": every_five_minutes,
            "kwargs": '{"trigger": "BEAT"}',
        },
    )
    out = io.StringIO()

    call_command("demo", seconds=35, port=0, force=True, stdout=out)

    text = out.getvalue()
    assert "tasks: Celery on redis://" in text
    assert "Demo summary" in text
    # beat (not the demo process) triggered the cycles, a worker healed
    assert HealingCycle.objects.filter(trigger=Trigger.BEAT).count() >= 2
    assert not HealingCycle.objects.filter(trigger=Trigger.DEMO).exists()
    outcomes = set(HealingAction.objects.values_list("recovery_action", "recovery_status"))
    assert ("REASSIGN_VENDOR", RecoveryStatus.SUCCESS) in outcomes
    assert ("RETRY_WORKFLOW", RecoveryStatus.SUCCESS) in outcomes
    # the workers played the gateway outage (10-25 s): healings failed and paged
    assert ("RETRY_WORKFLOW", RecoveryStatus.FAILED) in outcomes or (
        "REASSIGN_VENDOR",
        RecoveryStatus.FAILED,
    ) in outcomes
    assert AdminNotification.objects.filter(notification_type="HEALING_FAILED").exists()
    assert re.search(r"demo summary: \{", text)
    # the worker and beat are gone, beat's interval is back
    assert _celery_children() == []
    assert PeriodicTask.objects.get(pk=cycle.pk).interval_id == cycle.interval_id
