"""The demo's moving parts: an in-process beat, the simulator loop, the web
server, and the counters the terminal shows.

Each loop runs in its own thread with its own database connection (Django
opens one per thread) and closes it when it ends.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import close_old_connections, connections
from django.db.models import Count
from django_celery_beat.models import PeriodicTask

from config.celery import app as celery_app
from demo.scenario import CYCLE_TASK
from healing.models import HealingAction, HealingCycle, RecoveryAction, RecoveryStatus, Trigger
from notifications.models import AdminNotification

logger = logging.getLogger("demo")


class Loop(threading.Thread):
    """Call ``step`` every ``every`` seconds (fixed rate) until stopped."""

    def __init__(self, name: str, every: float, step: Callable[[], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.every = every
        self.step = step
        self.stopping = threading.Event()
        self.errors = 0

    def run(self) -> None:
        next_at = time.monotonic()
        try:
            while not self.stopping.is_set():
                close_old_connections()
                try:
                    self.step()
                except Exception:
                    self.errors += 1
                    logger.exception("%s: step failed", self.name)
                next_at += self.every
                self.stopping.wait(max(next_at - time.monotonic(), 0))
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class BeatJob:
    name: str
    task: str
    every: float
    kwargs: dict[str, Any]
    next_at: float = 0.0


class InProcessBeat:
    """What celery beat does, for the embedded default (no broker).

    Reads the same database schedule as beat (django-celery-beat's
    PeriodicTask rows), runs the healing cycle every ``cycle_seconds`` with
    trigger DEMO, and runs the other enabled interval jobs (metrics roll-up,
    notification sweep) at their own intervals. Tasks execute in this thread
    (Celery's eager mode), so heal_order runs right after its cycle commits.
    """

    def __init__(self, *, cycle_seconds: float) -> None:
        # Register the tasks Celery autodiscovers (a worker does this at start).
        celery_app.loader.import_default_modules()
        self.jobs = [BeatJob("self-healing cycle", CYCLE_TASK, cycle_seconds, {"trigger": "DEMO"})]
        for entry in PeriodicTask.objects.filter(enabled=True, interval__isnull=False).exclude(
            task=CYCLE_TASK
        ):
            if entry.task not in celery_app.tasks:
                logger.warning("beat job %s: task %s is not registered", entry.name, entry.task)
                continue
            self.jobs.append(
                BeatJob(
                    entry.name,
                    entry.task,
                    entry.interval.schedule.run_every.total_seconds(),
                    json.loads(entry.kwargs or "{}"),
                )
            )
        self.runs: dict[str, int] = {job.name: 0 for job in self.jobs}

    def step(self) -> None:
        now = time.monotonic()
        for job in self.jobs:
            if now < job.next_at:
                continue
            job.next_at = now + job.every
            celery_app.tasks[job.task].apply(kwargs=job.kwargs)
            self.runs[job.name] += 1


class WebServer:
    """The WSGI app (API, admin, dashboard, static files) on a thread."""

    def __init__(self, host: str, port: int) -> None:
        # WSGIHandler, not get_wsgi_application(): the latter re-runs
        # django.setup(), which would reset the demo's logging.
        handler = StaticFilesHandler(WSGIHandler())
        self.httpd = ThreadedWSGIServer((host, port), WSGIRequestHandler, allow_reuse_address=True)
        self.httpd.set_app(handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="web", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        if isinstance(host, bytes):  # socketserver's type allows bytes; AF_INET gives str
            host = host.decode()
        return f"http://{host}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


ACTIONS: tuple[str, ...] = tuple(RecoveryAction.values)
OUTCOMES: tuple[str, ...] = (
    RecoveryStatus.SUCCESS,
    RecoveryStatus.FAILED,
    RecoveryStatus.MANUAL_REQUIRED,
    RecoveryStatus.SKIPPED,
)


@dataclass
class Counters:
    """What happened since the demo started, read from the rows."""

    cycles: int = 0
    detected: int = 0
    by_action: dict[str, dict[str, int]] = field(default_factory=dict)
    escalated: int = 0
    notifications: int = 0
    notifications_by_type: dict[str, int] = field(default_factory=dict)
    active: int = 0
    orders_created: int = 0
    open_orders: int = 0

    def healed(self, action: str) -> int:
        return self.by_action.get(action, {}).get(RecoveryStatus.SUCCESS, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "detected": self.detected,
            "healed_by_action": {action: self.healed(action) for action in ACTIONS},
            "by_action": self.by_action,
            "escalated": self.escalated,
            "notifications": self.notifications,
            "notifications_by_type": self.notifications_by_type,
        }


def counters_read(*, since: datetime) -> Counters:
    from orders.models import OPEN_STATUSES, Order

    counters = Counters()
    counters.cycles = HealingCycle.objects.filter(
        started_at__gte=since, trigger__in=[Trigger.DEMO, Trigger.BEAT, Trigger.STARTUP]
    ).count()
    healings = HealingAction.objects.filter(issue_detected_at__gte=since)
    for action, status, n in (
        healings.order_by()
        .values_list("recovery_action", "recovery_status")
        .annotate(n=Count("id"))
        .values_list("recovery_action", "recovery_status", "n")
    ):
        counters.by_action.setdefault(action, {})[status] = n
        counters.detected += n
        if status == RecoveryStatus.MANUAL_REQUIRED:
            counters.escalated += n
        if status in (RecoveryStatus.PENDING, RecoveryStatus.IN_PROGRESS):
            counters.active += n
    notifications = AdminNotification.objects.filter(created_at__gte=since)
    counters.notifications_by_type = dict(
        notifications.order_by()
        .values_list("notification_type")
        .annotate(n=Count("id"))
        .values_list("notification_type", "n")
    )
    counters.notifications = sum(counters.notifications_by_type.values())
    counters.orders_created = Order.objects.filter(created_at__gte=since).count()
    counters.open_orders = Order.objects.filter(status__in=OPEN_STATUSES).count()
    return counters
