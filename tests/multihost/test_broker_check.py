"""broker_check: what POST run-cycle asks before it starts a cycle (issue 17)."""

from __future__ import annotations

import pytest

from healing.broker import BrokerUnavailable, broker_check
from tests.faults.helpers import free_port
from tests.multihost.brokers import queue_declarations


def test_no_broker_configured_means_in_process_tasks_and_nothing_to_reach(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    broker_check()


def test_a_broker_nobody_answers_for_is_a_503_domain_error():
    with pytest.raises(BrokerUnavailable) as raised:
        broker_check(url=f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    assert raised.value.http_status == 503
    assert raised.value.code == "broker_unavailable"
    assert "no cycle was started" in raised.value.message


def test_rabbitmq_queues_are_durable_classic_queues_by_default():
    assert queue_declarations() == {
        "healing": [True, None, "healing", "healing"],
        "default": [True, None, "default", "default"],
    }


def test_quorum_queues_are_an_option():
    queues = queue_declarations(CELERY_QUEUE_TYPE="quorum")
    assert {name: args for name, (_, args, _, _) in queues.items()} == {
        "healing": {"x-queue-type": "quorum"},
        "default": {"x-queue-type": "quorum"},
    }


def test_classic_queues_take_a_max_priority_so_urgent_resends_overtake():
    queues = queue_declarations(CELERY_QUEUE_MAX_PRIORITY="10")
    assert {name: args for name, (_, args, _, _) in queues.items()} == {
        "healing": {"x-max-priority": 10},
        "default": {"x-max-priority": 10},
    }
    # Quorum queues have their priorities built in (RabbitMQ 4.0+): no argument.
    queues = queue_declarations(CELERY_QUEUE_TYPE="quorum", CELERY_QUEUE_MAX_PRIORITY="10")
    assert queues["healing"][1] == {"x-queue-type": "quorum"}
