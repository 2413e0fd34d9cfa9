"""Settings, part 4: Celery (tasks, brokers, queues) and the beat schedule."""

from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from .base import env_bool, env_float, env_int, env_str
from .healing import HEALING_CYCLE_INTERVAL_SECONDS, HEALING_SWEEP_SECONDS

# --- Celery -----------------------------------------------------------------

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
# No broker configured: tasks run in-process (the embedded default).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# Nothing reads task results: outcomes are rows in healing_actions.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 90)
# Healing tasks are short: a small prefetch keeps work spread across workers
# and limits what a killed worker holds unacknowledged.
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 4)
# Task events, for Flower (their cost: docs/BENCHMARK.md, issue 15). The
# worker's events feed Flower's live view and stay on. The task-sent event
# only adds Flower's "sent" state before "received" and makes every published
# heal task a second publish (0.7 ms of the cycle's fan-out per task), so it
# is off unless asked for.
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_WORKER_SEND_TASK_EVENTS", default=True)
CELERY_TASK_SEND_SENT_EVENT = env_bool("CELERY_TASK_SEND_SENT_EVENT", default=False)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "healing.tasks.heal_order": {"queue": "healing"},
    # bench_healing's broker-and-worker baseline drains on the same queue.
    "healing.tasks.noop": {"queue": "healing"},
    "healing.tasks.run_cycle": {"queue": "default"},
}
CELERY_WORKER_POOL = env_str("CELERY_WORKER_POOL", "prefork")
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", os.cpu_count() or 2)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The workers' CPU priority, a nice value (0 = the web's, 19 = the lowest;
# config.celery applies it when a worker starts). Where web and workers share
# cores, a higher value lets the web's requests preempt heals. On a host that
# runs only workers it changes nothing (nice only orders processes competing
# for a core), and PostgreSQL's backends keep their own priority. Off by
# default: measured for issue 21 item 7, 10 did not lower the API's p99 while
# a cycle heals (docs/BENCHMARK.md "The API under load"), and it slows heals
# whenever anything else wants the CPU.
CELERY_WORKER_NICE = env_int("CELERY_WORKER_NICE", 0)

# Retry policy of heal_order (exponential backoff with full jitter, capped).
HEALING_TASK_MAX_RETRIES = env_int("HEALING_TASK_MAX_RETRIES", 5)
HEALING_TASK_BACKOFF_BASE = env_float("HEALING_TASK_BACKOFF_BASE", 2.0)
HEALING_TASK_BACKOFF_MAX = env_float("HEALING_TASK_BACKOFF_MAX", 120.0)

# The Redis visibility timeout must outlast the longest retry countdown plus
# the hard time limit, or Redis redelivers a task that is merely waiting.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int(
        "CELERY_VISIBILITY_TIMEOUT",
        int(HEALING_TASK_BACKOFF_MAX + CELERY_TASK_TIME_LIMIT + 3600),
    ),
    # kombu's default, spelled out: one list per step, step 0 consumed first.
    # healing.dispatch sends first heals at 6 and re-sends of lost ones at 0.
    "priority_steps": [0, 3, 6, 9],
}
# Celery's Django fix-up closes the connection after every task unless this is
# set; reusing it is the difference between ~76 and ~300 heals/s per machine.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)

# --- Celery: brokers across machines (issue 17) ---
# Redis or RabbitMQ (CELERY_BROKER_URL=amqp://user:pass@host:5672//). The two
# queues are declared explicitly so RabbitMQ keeps them durable (messages are
# persistent by default: a broker restart loses nothing queued). The visibility
# timeout above is a Redis transport option; the amqp transport ignores it.
# CELERY_QUEUE_TYPE=quorum declares replicated quorum queues instead (RabbitMQ
# 3.8+, a cluster of 3 to be worth it). Quorum queues refuse global QoS:
# worker_detect_quorum_queues makes the worker apply the prefetch per consumer,
# and countdown retries then go through Celery's native delayed delivery, which
# routes through topic exchanges only (on a direct one a retry would wait in the
# worker's memory until its ETA). tests/multihost/test_quorum_queues.py.
CELERY_QUEUE_TYPE = env_str("CELERY_QUEUE_TYPE", "classic")
if CELERY_QUEUE_TYPE not in ("classic", "quorum"):
    raise ImproperlyConfigured("CELERY_QUEUE_TYPE must be 'classic' or 'quorum'")
# Urgent re-sends of lost healings (healing.dispatch) overtake a backlog on a
# classic RabbitMQ queue only if it was declared with x-max-priority (Celery's
# task_queue_max_priority adds it to every queue). Quorum queues refuse the
# argument and have two priority levels built in on RabbitMQ 4.0+; Redis has
# its priority steps. Off by default: RabbitMQ refuses to redeclare an
# existing queue with other arguments (PRECONDITION_FAILED), so an existing
# deployment turns it on once its queues are deleted and recreated (README,
# "Running on several machines"). 10 is RabbitMQ's advice (each level costs).
_QUEUE_MAX_PRIORITY = env_int("CELERY_QUEUE_MAX_PRIORITY", 0)
if not 0 <= _QUEUE_MAX_PRIORITY <= 255:
    raise ImproperlyConfigured("CELERY_QUEUE_MAX_PRIORITY must be between 0 and 255")
CELERY_TASK_QUEUE_MAX_PRIORITY = (
    _QUEUE_MAX_PRIORITY if _QUEUE_MAX_PRIORITY and CELERY_QUEUE_TYPE == "classic" else None
)
_QUEUE_ARGUMENTS = {"x-queue-type": "quorum"} if CELERY_QUEUE_TYPE == "quorum" else None
_EXCHANGE_TYPE = "topic" if CELERY_QUEUE_TYPE == "quorum" else "direct"
CELERY_TASK_QUEUES = tuple(
    Queue(
        name,
        Exchange(name, type=_EXCHANGE_TYPE),
        routing_key=name,
        durable=True,
        queue_arguments=_QUEUE_ARGUMENTS,
    )
    for name in ("healing", "default")
)
CELERY_WORKER_DETECT_QUORUM_QUEUES = True
if CELERY_QUEUE_TYPE == "quorum":
    CELERY_BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE = "quorum"

# --- Beat schedule (the single source) --------------------------------------

# django-celery-beat's database rows are made from this after every `migrate`
# (config.beat): a missing row is created, a row still on the last synced
# value follows a changed setting, a row edited in the admin is left alone.
HEALING_METRICS_ROLLUP_INTERVAL_SECONDS = env_int("HEALING_METRICS_ROLLUP_INTERVAL_SECONDS", 60)
HEALING_MONITORING_INTERVAL_SECONDS = env_int("HEALING_MONITORING_INTERVAL_SECONDS", 60)
NOTIFICATION_SWEEP_INTERVAL_SECONDS = env_int("NOTIFICATION_SWEEP_INTERVAL_SECONDS", 60)
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "self-healing cycle": {
        "task": "healing.tasks.run_cycle",
        "every_seconds": HEALING_CYCLE_INTERVAL_SECONDS,
        "kwargs": {"trigger": "BEAT"},
    },
    "healing metrics roll-up": {
        "task": "healing.tasks.metrics_rollup",
        "every_seconds": HEALING_METRICS_ROLLUP_INTERVAL_SECONDS,
    },
    "healing monitoring": {
        "task": "healing.tasks.monitoring_check",
        "every_seconds": HEALING_MONITORING_INTERVAL_SECONDS,
    },
    "healing lease sweeper": {
        "task": "healing.tasks.leases_sweep",
        "every_seconds": HEALING_SWEEP_SECONDS,
    },
    "admin notifications sweep": {
        "task": "notifications.tasks.notifications_sweep",
        "every_seconds": NOTIFICATION_SWEEP_INTERVAL_SECONDS,
    },
    # Expired Idempotency-Keys (orders.idempotency) are deleted hourly.
    "idempotency keys purge": {
        "task": "orders.tasks.idempotency_keys_purge",
        "every_seconds": 3600,
    },
}
for _name, _job in BEAT_SCHEDULE.items():
    if _job["every_seconds"] < 1:
        raise ImproperlyConfigured(f"the interval of {_name!r} must be at least 1 second")
