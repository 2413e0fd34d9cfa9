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


def queue_declarations(**env: str) -> dict:
    """The app's queues as a fresh process declares them, with ``env`` set."""
    import json
    import os
    import subprocess
    import sys

    from tests.integration.workers import ROOT

    script = (
        "import json; from config.celery import app; "
        "print(json.dumps({n: [q.durable, q.queue_arguments, q.exchange.name, q.routing_key] "
        "for n, q in app.amqp.queues.items()}))"
    )
    done = subprocess.run(  # noqa: S603 - our interpreter, fixed script
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "true", "CELERY_BROKER_URL": "amqp://guest@127.0.0.1//", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


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
