"""What Flower sees of a heal (issue 15): a real worker's task events, received
as Flower receives them (celery.events.Receiver on the broker).

heal_order sends none unless HEALING_TASK_EVENTS=true (three broker messages
a heal, a quarter of the throughput on 2 cores); every other task keeps its
events, so Flower's worker and task views still work.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest

from config.celery import app
from healing.tasks import heal_order, noop
from tests.integration.workers import Worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _task_events(seconds: float = 10.0) -> tuple[set[str], set[str]]:
    """The task event types a heal sent, and those of a no-op sent after it."""
    events: dict[str, set[str]] = defaultdict(set)
    stop = threading.Event()
    errors: list[BaseException] = []

    def on_event(event: dict) -> None:
        if event["type"].startswith("task-"):
            events[event["uuid"]].add(event["type"])

    def listen() -> None:
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": on_event})
            while not stop.is_set():
                try:
                    receiver.capture(limit=None, timeout=0.5, wakeup=False)
                except (TimeoutError, OSError):
                    continue
                except Exception as exc:
                    errors.append(exc)
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    # Events reach only a bound receiver: no-ops until one is seen.
    deadline = time.monotonic() + 20
    while not events and time.monotonic() < deadline:
        noop.delay(0)
        time.sleep(0.5)
    # A healing that does not exist: the heal runs and ends at once (STALE).
    heal = heal_order.delay(999_999_999, "00000000-0000-0000-0000-000000000000").id
    after = noop.delay(1).id  # one pool process: it runs after the heal
    deadline = time.monotonic() + seconds
    while "task-succeeded" not in events.get(after, set()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    stop.set()
    listener.join(5)
    assert not errors, errors
    return set(events.get(heal, set())), set(events.get(after, set()))


@pytest.mark.parametrize(("setting", "heal_events"), [(None, False), ("true", True)])
def test_heal_tasks_show_in_flower_only_when_asked_and_other_tasks_always(setting, heal_events):
    env = {"CELERY_WORKER_SEND_TASK_EVENTS": "true"}
    if setting is not None:
        env["HEALING_TASK_EVENTS"] = setting
    with Worker(pool="prefork", concurrency=1, env=env):
        heal, after = _task_events()

    assert "task-succeeded" in after  # Flower's task views still work
    assert ("task-succeeded" in heal) is heal_events
