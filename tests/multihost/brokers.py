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
