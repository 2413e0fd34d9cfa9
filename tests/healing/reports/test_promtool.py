"""``promtool check metrics`` (Debian's ``prometheus`` package) on a live /metrics.

The scrape goes over HTTP to the web process as the Procfile runs it
(gunicorn, tests/live_web.py), not through Django's test client: the bytes
promtool checks are the ones Prometheus would get. Skips without promtool,
except under CI (``CI`` set), where it fails: ``.ci/run`` installs the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from orders.models import VendorCircuit
from tests.factories import (
    AdminNotificationFactory,
    HealingCycleFactory,
    OrderFactory,
    VendorFactory,
)
from tests.healing.reports.metrics_data import healing_make
from tests.live_web import live_web

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

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


def test_live_metrics_pass_promtool_check_metrics(promtool, tmp_path: Path):
    # Every family with samples: outcomes, stuck orders, a running cycle, a
    # notification, an open and a half-open vendor circuit (issue 18).
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
    for state in ("OPEN", "HALF_OPEN"):
        VendorCircuit.objects.create(
            vendor=VendorFactory(), state=state, failures=5, opened_at=now, updated_at=now
        )

    with live_web(tmp_path, METRICS_TOKEN=TOKEN) as base:
        request = urllib.request.Request(
            f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            content = response.read()
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=content,
        capture_output=True,
        timeout=60,
        check=False,
    )

    problems = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0, problems
    assert problems.strip() == ""
    assert b"healing_stuck_order_oldest_seconds" in content
    assert b'healing_vendor_circuits{state="OPEN"} 1.0' in content
    assert b"healing_vendor_circuit_opened_timestamp_seconds{" in content
