"""``promtool check metrics`` (Debian's ``prometheus`` package) on a live /metrics.

Skips without promtool, except under CI (``CI`` set), where it fails:
``.ci/run`` installs the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.factories import AdminNotificationFactory, HealingCycleFactory, OrderFactory
from tests.healing.reports.metrics_data import healing_make

pytestmark = pytest.mark.django_db

TOKEN = "promtool-scrape-0123456789"


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "needs promtool: apt-get install -y prometheus"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)
    return path


def test_live_metrics_pass_promtool_check_metrics(promtool, settings):
    settings.METRICS_TOKEN = TOKEN
    # Every family with samples: outcomes, stuck orders, a running cycle, a notification.
    now = timezone.now()
    for status, seconds in (("SUCCESS", 42), ("FAILED", 7), ("SUCCESS", 900)):
        healing_make(
            detected_at=now - timedelta(minutes=20),
            issue_type="STUCK_PENDING",
            action="REASSIGN_VENDOR",
            status=status,
            seconds=seconds,
        )
    HealingCycleFactory(status="FINISHED", duration_ms=120.0, finished_at=now)
    OrderFactory(status="ACCEPTED", stuck_minutes=150)
    AdminNotificationFactory(severity="HIGH")
    HealingCycleFactory(status="RUNNING", duration_ms=None, finished_at=None)

    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=response.content,
        capture_output=True,
        timeout=60,
        check=False,
    )

    problems = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0, problems
    assert problems.strip() == ""
    assert b"healing_stuck_order_oldest_seconds" in response.content
