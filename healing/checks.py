"""Deploy-safety checks (issue 16): settings that would lose, double or stall heals.

Django system checks (``manage.py check``; ``healing.E004`` with ``--deploy``),
and run by every worker at start-up (``healing.signals``): a worker with a bad
configuration refuses to start with one line naming the setting.

- E001 Redis visibility timeout shorter than the longest retry countdown plus
  the hard time limit: Redis redelivers a task that is only waiting.
- E002 claim lease shorter than the vendor gateway timeout plus a margin, or
  renewed no more often than it lasts: a live heal would look dead.
- E003 ``acks_late`` without ``reject_on_worker_lost``: a task whose worker
  died is acknowledged and lost until its lease runs out.
- E004 eager tasks (no broker) with ``DEBUG`` off: heals would run inside web
  requests, with no retries and no sweeper (deploy check).
- E005 cycle lock shorter than a cycle can take (its hard time limit), or a
  stale age not above the heartbeat: two cycles at once.
- E006 prefetch holding more heal tasks (each up to ``HEALING_TASK_BATCH``
  healings) than the dispatch lease can cover: a prefetched heal would be
  re-sent while it waits in its worker.
- E007 RabbitMQ quorum queues with global QoS (not supported by quorum
  queues) — keep ``CELERY_WORKER_DETECT_QUORUM_QUEUES`` on.
- E008 a worker's dead age not above twice its liveness beat: a live worker
  between two beats would look dead and its running heals be re-sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

HEAL_TASK = "healing.tasks.heal_order"


def _visibility_timeout() -> Error | None:
    broker = settings.CELERY_BROKER_URL or ""
    if not broker.startswith(("redis", "rediss", "sentinel", "sqs")):
        return None
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    visibility = float(options.get("visibility_timeout", 3600))
    needed = settings.HEALING_TASK_BACKOFF_MAX + settings.CELERY_TASK_TIME_LIMIT
    if visibility >= needed:
        return None
    return Error(
        f"the broker's visibility timeout ({visibility:g} s) is shorter than the longest "
        f"retry countdown plus the hard time limit ({needed:g} s)",
        hint="raise CELERY_VISIBILITY_TIMEOUT, or lower HEALING_TASK_BACKOFF_MAX / "
        "CELERY_TASK_TIME_LIMIT",
        id="healing.E001",
    )


def _lease() -> Error | None:
    lease = settings.HEALING_LEASE_SECONDS
    needed = settings.VENDOR_GATEWAY_TIMEOUT_SECONDS + settings.HEALING_LEASE_MARGIN_SECONDS
    if lease < needed:
        return Error(
            f"HEALING_LEASE_SECONDS ({lease} s) is shorter than the vendor gateway timeout "
            f"plus a margin ({needed:g} s): a heal waiting on its vendor would be taken over",
            hint="raise HEALING_LEASE_SECONDS or lower VENDOR_GATEWAY_TIMEOUT_SECONDS",
            id="healing.E002",
        )
    if lease <= settings.HEALING_LEASE_RENEW_SECONDS:
        return Error(
            f"HEALING_LEASE_RENEW_SECONDS ({settings.HEALING_LEASE_RENEW_SECONDS:g} s) is not "
            f"shorter than the lease ({lease} s): a running heal's lease would run out",
            hint="renew at a third of the lease (the default)",
            id="healing.E002",
        )
    return None


def _acks_late(tasks: Iterable[Any] | None = None) -> Error | None:
    if getattr(settings, "CELERY_TASK_ACKS_LATE", False) and not getattr(
        settings, "CELERY_TASK_REJECT_ON_WORKER_LOST", False
    ):
        names = ["CELERY_TASK_ACKS_LATE (every task)"]
    else:
        names = []
    for task in _tasks() if tasks is None else tasks:
        if getattr(task, "acks_late", False) and not getattr(task, "reject_on_worker_lost", False):
            names.append(str(task.name))
    if not names:
        return None
    return Error(
        f"acks_late without reject_on_worker_lost: {', '.join(sorted(names))}; a task "
        "whose worker dies is acknowledged and lost",
        hint="set reject_on_worker_lost=True with acks_late",
        id="healing.E003",
    )


def _tasks() -> list[Any]:
    from celery import current_app

    # Reading the registry finalizes the app, which imports every app's tasks.
    return [task for name, task in current_app.tasks.items() if not name.startswith("celery.")]


def _eager() -> Error | None:
    if settings.DEBUG or not settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    return Error(
        "Celery tasks run eagerly (no broker) with DEBUG off: heals would run inside "
        "web requests, with no retries, no beat and no sweeper",
        hint="set CELERY_BROKER_URL (redis://...) in production",
        id="healing.E004",
    )


def _cycle_lock() -> list[Error]:
    errors = []
    if settings.HEALING_CYCLE_LOCK_SECONDS < settings.CELERY_TASK_TIME_LIMIT:
        errors.append(
            Error(
                f"HEALING_CYCLE_LOCK_SECONDS ({settings.HEALING_CYCLE_LOCK_SECONDS} s) is shorter "
                f"than a cycle can take (CELERY_TASK_TIME_LIMIT, {settings.CELERY_TASK_TIME_LIMIT}"
                " s): a second cycle could start beside a running one",
                hint="raise HEALING_CYCLE_LOCK_SECONDS above the hard time limit",
                id="healing.E005",
            )
        )
    if settings.HEALING_CYCLE_STALE_SECONDS <= 2 * settings.HEALING_CYCLE_HEARTBEAT_SECONDS:
        errors.append(
            Error(
                f"HEALING_CYCLE_STALE_SECONDS ({settings.HEALING_CYCLE_STALE_SECONDS} s) is not "
                "above two cycle heartbeats: a running cycle's lock would be taken from it",
                hint="keep the stale age at several heartbeats (60 s and 10 s by default)",
                id="healing.E005",
            )
        )
    return errors


def _prefetch() -> Error | None:
    held = settings.CELERY_WORKER_PREFETCH_MULTIPLIER
    # A task carries up to HEALING_TASK_BATCH healings; a batch starts none
    # past its budget, so the soft time limit bounds it.
    per_task = max(settings.HEALING_TASK_BATCH, 1) * settings.VENDOR_GATEWAY_TIMEOUT_SECONDS
    soft = settings.CELERY_TASK_SOFT_TIME_LIMIT
    if soft and soft > 0:
        per_task = min(per_task, soft)
    wait = held * per_task
    lease = settings.HEALING_DISPATCH_LEASE_SECONDS
    if wait <= lease:
        return None
    return Error(
        f"each worker process prefetches {held} heal tasks, which may wait {wait:g} s for "
        f"the vendor calls before them, longer than the dispatch lease ({lease} s)",
        hint="lower CELERY_WORKER_PREFETCH_MULTIPLIER or HEALING_TASK_BATCH, or raise "
        "HEALING_DISPATCH_LEASE_SECONDS",
        id="healing.E006",
    )


def _quorum() -> Error | None:
    broker = settings.CELERY_BROKER_URL or ""
    if not broker.startswith(("amqp", "pyamqp", "amqps")):
        return None
    quorum = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE_TYPE", "classic") == "quorum"
    quorum |= getattr(settings, "CELERY_TASK_CREATE_MISSING_QUEUE_TYPE", "classic") == "quorum"
    for queue in getattr(settings, "CELERY_TASK_QUEUES", None) or ():
        arguments = getattr(queue, "queue_arguments", None) or {}
        quorum |= arguments.get("x-queue-type") == "quorum"
    if not quorum or getattr(settings, "CELERY_WORKER_DETECT_QUORUM_QUEUES", True):
        return None
    return Error(
        "RabbitMQ quorum queues with global QoS: quorum queues refuse a global prefetch",
        hint="leave CELERY_WORKER_DETECT_QUORUM_QUEUES on (Celery then uses per-consumer QoS)",
        id="healing.E007",
    )


def _worker_beat() -> Error | None:
    beat = settings.HEALING_WORKER_BEAT_SECONDS
    dead = settings.HEALING_WORKER_DEAD_SECONDS
    if beat <= 0 or dead <= 0 or dead >= 2 * beat:
        return None
    return Error(
        f"HEALING_WORKER_DEAD_SECONDS ({dead:g} s) is less than twice "
        f"HEALING_WORKER_BEAT_SECONDS ({beat:g} s): a live worker would look dead between "
        "two beats and its running heals would be re-sent",
        hint="raise HEALING_WORKER_DEAD_SECONDS (default 20) or lower HEALING_WORKER_BEAT_SECONDS",
        id="healing.E008",
    )


def healing_checks(*, deploy: bool = False) -> list[Error]:
    """Every healing deploy-safety error for the current settings."""
    found: list[Error | None] = [_visibility_timeout(), _lease(), _acks_late()]
    found += [*_cycle_lock(), _prefetch(), _quorum(), _worker_beat()]
    if deploy:
        found.append(_eager())
    silenced = set(getattr(settings, "SILENCED_SYSTEM_CHECKS", ()))
    return [error for error in found if error is not None and error.id not in silenced]


def check_healing(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    return list(healing_checks())


def check_healing_deploy(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    eager = _eager()
    return [] if eager is None else [eager]


def checks_register() -> None:
    register(check_healing, "healing")
    register(check_healing_deploy, "healing", deploy=True)
