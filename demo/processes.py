"""The demo's process plumbing: the Celery worker and beat it starts in
Celery mode, and the signals that end it.

Kept apart from the command so its run reads as steps; everything here gets
the demo's settings and log folder as arguments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from demo.runtime import counters_read


def workers_start(
    *, weather: str, overrides: dict[str, Any], log_dir: Path
) -> list[subprocess.Popen]:
    """A Celery worker on every queue and a beat, as child processes with the
    demo's settings (``overrides``) and gateway weather; worker first, then
    beat (``workers_stop`` relies on the order). Each logs to its own file in
    ``log_dir``: the terminal belongs to the live view."""
    queues = sorted(
        {settings.CELERY_TASK_DEFAULT_QUEUE}
        | {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    )
    env = {
        **os.environ,
        **{key: str(value) for key, value in overrides.items()},
        "HEALING_RUN_ON_WORKER_START": "false",
        "DEMO_GATEWAY_WEATHER": weather,
    }
    if "EMAIL_BACKEND" not in os.environ and "EMAIL_HOST" not in os.environ:
        env["EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    commands = {
        "worker": [
            *celery,
            "worker",
            "-Q",
            ",".join(queues),
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
        ],
        "beat": [*celery, "beat", "--loglevel", "INFO"],
    }
    children = []
    for name, command in commands.items():
        log = (log_dir / f"demo-{name}.log").open("ab")
        children.append(
            subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=settings.BASE_DIR,
            )
        )
    return children


def workers_stop(children: list[subprocess.Popen], *, since: datetime) -> None:
    """Beat first; then give the worker a few seconds to finish the
    healings already dispatched, so the summary is not left in progress."""
    if not children:
        return
    worker, beat = children
    child_stop(beat)
    grace = time.monotonic() + 15
    while time.monotonic() < grace and counters_read(since=since).active:
        time.sleep(0.5)
    child_stop(worker)


def child_stop(child: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s: a stuck child must not keep the demo."""
    child.terminate()
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


class Stopper:
    """SIGINT / SIGTERM raise KeyboardInterrupt once; later ones are ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.stopping = False
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only (e.g. a test's thread)
        for signum in self.SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stopping:
            return
        self.stopping = True
        raise KeyboardInterrupt
