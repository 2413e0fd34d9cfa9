"""The broker the integration tests run against: Redis or RabbitMQ."""

from __future__ import annotations

import subprocess

import redis


def broker_is_rabbitmq(url: str) -> bool:
    return url.startswith(("amqp://", "amqps://", "pyamqp://"))


def broker_flush(url: str) -> None:
    """Empty the broker before a run: FLUSHDB on Redis; on RabbitMQ declare
    the app's durable queues (so they exist) and purge them."""
    if not broker_is_rabbitmq(url):
        redis.Redis.from_url(url).flushdb()
        return
    from config.celery import app

    with app.connection_for_write(url) as conn:
        channel = conn.default_channel
        for queue in app.amqp.queues.values():
            bound = queue(channel)
            bound.declare()
            bound.purge()


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run rabbitmqctl against the machine's node; raises on failure."""
    done = subprocess.run(
        ["rabbitmqctl", *args],  # noqa: S607 - RabbitMQ's own CLI, on PATH
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


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
