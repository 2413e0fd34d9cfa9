from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from celery import current_app
from celery.signals import before_task_publish
from django.db import connection

from healing.dispatch import HEAL_ORDER
from orders.gateway import Delivery, DeliveryFailed, OutboundMessage


class ScriptedGateway:
    """A vendor gateway for tests: records calls, fails on demand, and can
    run a side effect (another actor) while the "network call" is in flight."""

    name = "scripted"

    def __init__(self, *, fail: int = 0, during: Callable[[OutboundMessage], None] | None = None):
        self.fail = fail
        self.during = during
        self.sent: list[OutboundMessage] = []
        self.lock = threading.Lock()

    def send(self, message: OutboundMessage) -> Delivery:
        with self.lock:
            self.sent.append(message)
            failing = self.fail > 0
            if failing:
                self.fail -= 1
        if self.during is not None:
            self.during(message)
        if failing:
            raise DeliveryFailed(
                Delivery(message=message, backend=self.name, status="FAILED", error="timeout")
            )
        return Delivery(message=message, backend=self.name)


@pytest.fixture
def gateway() -> ScriptedGateway:
    return ScriptedGateway()


def run_in_threads(*targets: Callable[[], object], timeout: float = 30) -> list[object]:
    """Run callables at once on their own threads (and database connections)."""
    barrier = threading.Barrier(len(targets))
    results: list[object] = [None] * len(targets)

    def wrap(index: int, target: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = target()
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=wrap, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results


@dataclass(frozen=True)
class Published:
    """One heal task as it left for the broker."""

    headers: dict[str, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@pytest.fixture
def heal_publishes() -> Iterator[list[Published]]:
    """Publish heal tasks for real on the in-memory transport (no broker is
    configured in the unit phase) and keep each message's headers and arguments."""
    kept: list[Published] = []

    def keep(sender: Any = None, headers: Any = None, body: Any = None, **kwargs: Any) -> None:
        if sender == HEAL_ORDER:
            kept.append(Published(dict(headers or {}), tuple(body[0]), dict(body[1])))

    before_task_publish.connect(keep, weak=False)
    eager = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = False
    try:
        yield kept
    finally:
        current_app.conf.task_always_eager = eager
        before_task_publish.disconnect(keep)
