"""The demo command end to end, shortened: real threads, real web server, real cycles."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import urllib.request

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from demo.scenario import DEMO_USERS
from healing.defaults import default_rules
from healing.models import HealingAction, HealingCycle, RecoveryStatus, StuckRule, Trigger
from notifications.models import AdminNotification


def _fetch_while_running(out: io.StringIO, found: dict[str, int], stop: threading.Event) -> None:
    """Wait for the printed web address, then hit the dashboard login and Chart.js."""
    while not stop.is_set():
        match = re.search(r"web: (http://[\d.]+:\d+)/dashboard/", out.getvalue())
        if match:
            for path in ("/dashboard/login/", "/static/vendor/chart.js/chart.umd.js"):
                with urllib.request.urlopen(match.group(1) + path, timeout=10) as response:
                    found[path] = response.status
            return
        time.sleep(0.2)


@pytest.mark.django_db(transaction=True)
@override_settings(CELERY_BROKER_URL="")  # the embedded default: everything in-process
def test_demo_shows_every_action_an_escalation_and_a_notification_then_stops():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip(
            "the in-memory SQLite test database locks whole tables across threads; "
            "use PostgreSQL or a file: TEST_DATABASE_NAME=/tmp/test_demo.sqlite3"
        )
    # Given the demo with a 2 s cycle (the backlog's timing is fixed: its
    # outage-time orders cross the 1-minute threshold at ~14 s)
    out = io.StringIO()
    found: dict[str, int] = {}
    stop = threading.Event()
    fetcher = threading.Thread(target=_fetch_while_running, args=(out, found, stop))
    fetcher.start()

    # When it runs for 22 seconds
    started = time.monotonic()
    try:
        call_command("demo", seconds=22, port=0, cycle_seconds=2, force=True, stdout=out)
    finally:
        stop.set()
        fetcher.join(timeout=15)
    took = time.monotonic() - started
    text = out.getvalue()

    # Then it stopped by itself and printed the users and the summary
    assert took < 60
    for user in DEMO_USERS:
        assert re.search(rf"{user.role}\s+│\s+{user.username}\s+│\s+{user.password}", text)
    assert "Demo summary" in text
    assert "every recovery action at work: yes" in text
    # the web server answered while it ran
    assert found == {"/dashboard/login/": 200, "/static/vendor/chart.js/chart.umd.js": 200}
    # and the rows say the same as the summary: every action, really executed
    outcomes = set(HealingAction.objects.values_list("recovery_action", "recovery_status"))
    assert ("REASSIGN_VENDOR", RecoveryStatus.SUCCESS) in outcomes
    assert ("RETRY_WORKFLOW", RecoveryStatus.SUCCESS) in outcomes
    assert ("CANCEL_ORDER", RecoveryStatus.SUCCESS) in outcomes
    assert ("MANUAL_INTERVENTION", RecoveryStatus.MANUAL_REQUIRED) in outcomes
    assert AdminNotification.objects.filter(notification_type="HEALING_FAILED").exists()
    assert AdminNotification.objects.filter(
        notification_type="MANUAL_INTERVENTION_REQUIRED"
    ).exists()
    assert HealingCycle.objects.filter(trigger=Trigger.DEMO).count() >= 5
    summary = re.search(r"demo summary: (\{.*\})", text)
    assert summary and '"escalated": 0' not in summary.group(1)
    # and the reliable vendors took the production path: signed webhooks
    # verified on the local desk, answers through the vendor API over HTTP
    counted = json.loads(summary.group(1))
    assert counted["webhooks_verified"] > 0, counted
    assert counted["webhooks_rejected"] == 0, counted
    assert counted["vendor_replies_accepted"] > 0, counted
    assert "vendor replies over HTTP" in text
    # and the compressed thresholds were put back
    defaults = {r["status"]: r["threshold_minutes"] for r in default_rules()}
    assert dict(StuckRule.objects.values_list("status", "threshold_minutes")) == defaults


@override_settings(DEBUG=False)
def test_demo_refuses_to_wipe_a_database_without_debug_or_force():
    with pytest.raises(CommandError, match="DEBUG=true"):
        call_command("demo", seconds=1, stdout=io.StringIO())
