from __future__ import annotations

import pytest
from django.conf import settings

from tests.faults import helpers
from tests.integration.workers import FAST_ENV
from tests.multihost.brokers import broker_flush


@pytest.fixture(autouse=True)
def _fault_settings(request: pytest.FixtureRequest) -> None:
    """Fault scenarios need a real broker, and the test process (which plays
    beat) must hand out the same short leases as the workers' FAST_ENV."""
    if request.node.get_closest_marker("integration") is None:
        return
    if settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.fail(
            "fault scenarios need a real broker: run them through `make test` / "
            "`make faults` (which set CELERY_BROKER_URL) or set CELERY_BROKER_URL yourself"
        )
    broker_flush(settings.CELERY_BROKER_URL)
    django_settings = request.getfixturevalue("settings")
    django_settings.HEALING_LEASE_SECONDS = int(FAST_ENV["HEALING_LEASE_SECONDS"])
    django_settings.HEALING_DISPATCH_LEASE_SECONDS = int(FAST_ENV["HEALING_DISPATCH_LEASE_SECONDS"])
    django_settings.HEALING_TASK_MAX_RETRIES = int(FAST_ENV["HEALING_TASK_MAX_RETRIES"])
    # Every scenario makes all open orders stuck at once; only the guard
    # scenario wants the guard to trip (it lowers this again).
    django_settings.HEALING_GUARD_MIN_STUCK = 10**9


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One figures line per scenario, shown even when output is captured."""
    if helpers.REPORTED:
        terminalreporter.section(f"fault figures ({'full' if helpers.FULL else 'ci'} size)")
        for line in helpers.REPORTED:
            terminalreporter.write_line(line)
