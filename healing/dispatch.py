"""Send heal tasks: one ``heal_order`` per (healing id, claim token).

The task is looked up in the Celery app's registry by name rather than
imported, so the engine's writers (cycle, execution) never import
``healing.tasks``, which imports them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import current_app
from django.conf import settings

HEAL_ORDER = "healing.tasks.heal_order"


def _heal_task() -> Any:
    return current_app.tasks[HEAL_ORDER]


def heal_order_send(
    *,
    healing_id: int,
    token: str,
    order_number: str = "",
    countdown: float | None = None,
    retries: int = 0,
    producer: Any = None,
    takeover: bool = False,
) -> None:
    """One heal task. Flower shows the order, never the claim token (``argsrepr``).

    ``takeover``: a redelivered message coming back when the lease it found
    alive runs out, to take the healing over (once)."""
    _heal_task().apply_async(
        args=(healing_id, token),
        kwargs={"takeover": True} if takeover else None,
        countdown=countdown,
        retries=retries,
        producer=producer,
        argsrepr=f"(healing={healing_id}{f', order={order_number}' if order_number else ''})",
    )


def healings_dispatch(
    pairs: list[tuple[int, str]], *, order_numbers: dict[int, str] | None = None
) -> None:
    """Send one heal task per (healing id, claim token).

    Publishing is bound by broker round trips, not by CPU, so large batches
    are split over a few threads, each reusing one producer and connection
    for its whole share.
    """
    if not pairs:
        return
    numbers = order_numbers or {}
    task = _heal_task()
    if task.app.conf.task_always_eager:
        # In-process mode: no broker to open a producer on.
        for healing_id, token in pairs:
            heal_order_send(
                healing_id=healing_id, token=token, order_number=numbers.get(healing_id, "")
            )
        return
    threads = max(1, min(settings.HEALING_DISPATCH_THREADS, len(pairs) // 250))
    shares = [pairs[index::threads] for index in range(threads)]
    if threads == 1:
        _publish(shares[0], numbers)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dispatch") as pool:
        for future in [pool.submit(_publish, share, numbers) for share in shares]:
            future.result()


def _publish(pairs: list[tuple[int, str]], numbers: dict[int, str]) -> None:
    with _heal_task().app.producer_or_acquire() as producer:
        for healing_id, token in pairs:
            heal_order_send(
                healing_id=healing_id,
                token=token,
                order_number=numbers.get(healing_id, ""),
                producer=producer,
            )
