"""broker_check: what POST run-cycle asks before it starts a cycle (issue 17)."""

from __future__ import annotations

import pytest

from healing.broker import BrokerUnavailable, broker_check
from tests.faults.helpers import free_port


def test_no_broker_configured_means_in_process_tasks_and_nothing_to_reach(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    broker_check()


def test_a_broker_nobody_answers_for_is_a_503_domain_error():
    with pytest.raises(BrokerUnavailable) as raised:
        broker_check(url=f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    assert raised.value.http_status == 503
    assert raised.value.code == "broker_unavailable"
    assert "no cycle was started" in raised.value.message
