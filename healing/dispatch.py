"""Send heal tasks: one ``heal_order`` per (healing id, claim token).

The task is looked up in the Celery app's registry by name rather than
imported, so the engine's writers (cycle, execution) never import
``healing.tasks``, which imports them.

A re-send of a lost healing (the sweeper's, a worker-lost rescue, a
take-over) is *urgent*: published at a higher message priority, so it
overtakes a backlog of first sends instead of queueing at its tail (issue 16,
recovery time). Brokers spell priority differently:

- Redis (kombu's emulation): one list per priority step ([0, 3, 6, 9] by
  default), consumed lowest step first, so 0 is the highest. First sends go
  at 6, urgent ones at 0. A message without a priority counts as 0.
- RabbitMQ: higher is higher. Urgent sends carry 9, first sends none (0).
  It takes effect on a classic queue declared with ``x-max-priority``
  (``CELERY_QUEUE_MAX_PRIORITY``) or a
  quorum queue on RabbitMQ 4.0+ (two levels, above 4 is high); otherwise the
  broker ignores the property. There the loss that matters most (a whole
  worker's prefetched messages) does not happen: RabbitMQ requeues a dead
  consumer's unacknowledged messages at once.

A cycle's first sends go several healings to a task (``HEALING_TASK_BATCH``):
the task runs them one after another, each under its own claim, lease and
outcome, so Celery's cost per task (the message, its acknowledgement, the
pool's bookkeeping) is shared by them. The first (healing id, token) pair
is the task's positional arguments, the rest its ``more`` keyword;
:func:`heal_pairs` reads every pair back from a message or a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from celery import current_app
from django.conf import settings

HEAL_ORDER = "healing.tasks.heal_order"

# (first send, urgent re-send) message priorities per broker family.
REDIS_PRIORITIES = (6, 0)
AMQP_PRIORITIES = (None, 9)


def _heal_task() -> Any:
    return current_app.tasks[HEAL_ORDER]


def heal_pairs(args: Sequence[Any] | None, kwargs: dict[str, Any] | None) -> list[tuple[int, str]]:
    """Every (healing id, token) a heal task's arguments carry, in run order."""
    args = tuple(args or ())
    if len(args) < 2:
        return []
    pairs = [(int(args[0]), str(args[1]))]
    for healing_id, token in (kwargs or {}).get("more") or ():
        pairs.append((int(healing_id), str(token)))
    return pairs


def batch_size(count: int) -> int:
    """Healings a task for a dispatch of ``count``: up to ``HEALING_TASK_BATCH``,
    and never fewer than ``HEALING_TASK_BATCH_MIN_TASKS`` tasks."""
    spread = max(settings.HEALING_TASK_BATCH_MIN_TASKS, 1)
    return max(1, min(settings.HEALING_TASK_BATCH, count // spread))


@lru_cache(maxsize=8)
def _priorities(broker_url: str) -> tuple[int | None, int | None]:
    scheme = broker_url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "sentinel", "redis+socket"):
        return REDIS_PRIORITIES
    if scheme in ("amqp", "amqps", "pyamqp"):
        return AMQP_PRIORITIES
    return (None, None)  # the in-process demo's memory transport: one consumer


# Celery's native delayed delivery (quorum queues) refuses a countdown under
# one second ("countdown must be a positive number") and the message is lost.
QUORUM_MIN_COUNTDOWN = 1.0


def countdown_for_broker(seconds: float) -> float:
    """A retry or take-over delay the broker accepts: at least one second on
    quorum queues (found by tests/multihost/test_quorum_queues.py)."""
    if settings.CELERY_QUEUE_TYPE == "quorum":
        return max(seconds, QUORUM_MIN_COUNTDOWN)
    return seconds


def heal_priority(*, urgent: bool, broker_url: str | None = None) -> int | None:
    """The message priority of a heal task on this broker (None: no priority)."""
    url = broker_url if broker_url is not None else _heal_task().app.conf.broker_url
    return _priorities(str(url or ""))[1 if urgent else 0]


def heal_order_send(
    *,
    healing_id: int,
    token: str,
    order_number: str = "",
    countdown: float | None = None,
    retries: int = 0,
    producer: Any = None,
    takeover: bool = False,
    urgent: bool = False,
    more: Sequence[tuple[int, str]] = (),
) -> None:
    """One heal task. Flower shows the order, never the claim token (``argsrepr``).

    ``takeover``: a redelivered message coming back when the lease it found
    alive runs out, to take the healing over (once); urgent like every
    re-send (``urgent``: ahead of the queue's first sends). ``more``: the
    pairs the same task runs after this one (a batch of first sends)."""
    kwargs: dict[str, Any] = {}
    if takeover:
        kwargs["takeover"] = True
    if more:
        kwargs["more"] = [[int(h), str(t)] for h, t in more]
        shown = ", ".join(str(h) for h in (healing_id, *(h for h, _ in more)))
        argsrepr = f"(healings={shown})"
    else:
        argsrepr = f"(healing={healing_id}{f', order={order_number}' if order_number else ''})"
    _heal_task().apply_async(
        args=(healing_id, token),
        kwargs=kwargs or None,
        countdown=None if countdown is None else countdown_for_broker(countdown),
        retries=retries,
        producer=producer,
        priority=heal_priority(urgent=urgent or takeover),
        argsrepr=argsrepr,
    )


def healings_dispatch(
    pairs: list[tuple[int, str]],
    *,
    order_numbers: dict[int, str] | None = None,
    urgent: bool = False,
) -> None:
    """Send heal tasks for (healing id, claim token) pairs; ``urgent`` for re-sends.

    First sends go ``batch_size`` pairs to a task; urgent re-sends one a
    task, so each starts on the first free pool process. Publishing is
    bound by broker round trips, not by CPU, so large batches are split over
    a few threads, each reusing one producer and connection for its whole
    share.
    """
    if not pairs:
        return
    numbers = order_numbers or {}
    task = _heal_task()
    if task.app.conf.task_always_eager:
        # In-process mode: no broker to open a producer on.
        for healing_id, token in pairs:
            heal_order_send(
                healing_id=healing_id,
                token=token,
                order_number=numbers.get(healing_id, ""),
                urgent=urgent,
            )
        return
    threads = max(1, min(settings.HEALING_DISPATCH_THREADS, len(pairs) // 250))
    shares = [pairs[index::threads] for index in range(threads)]
    size = 1 if urgent else batch_size(len(pairs))
    if threads == 1:
        _publish(shares[0], numbers, urgent, size)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dispatch") as pool:
        jobs = [pool.submit(_publish, share, numbers, urgent, size) for share in shares]
        for future in jobs:
            future.result()


def _publish(
    pairs: list[tuple[int, str]], numbers: dict[int, str], urgent: bool, size: int
) -> None:
    """Publish a share of the heal tasks on one producer.

    On Redis, kombu's ``Producer.batch`` buffers the LPUSHes (and task-sent
    events) in a pipeline, one round trip per ``HEALING_DISPATCH_BATCH``
    messages instead of one each; other transports publish at once. A batch
    that fails midway raises and leaves its rows to their dispatch lease,
    which the sweeper re-sends (invariant 7).
    """
    with (
        _heal_task().app.producer_or_acquire() as producer,
        producer.batch(max_size=settings.HEALING_DISPATCH_BATCH),
    ):
        for start in range(0, len(pairs), size):
            (healing_id, token), *more = pairs[start : start + size]
            heal_order_send(
                healing_id=healing_id,
                token=token,
                order_number=numbers.get(healing_id, ""),
                producer=producer,
                urgent=urgent,
                more=more,
            )
