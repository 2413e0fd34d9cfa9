"""The Celery application, configured from Django settings (CELERY_ namespace)."""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery, platforms, signals

from config.env import settings_load_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Without a broker tasks run in-process (CELERY_TASK_ALWAYS_EAGER), yet the
# cycle's dispatch still takes a producer from the pool: an in-memory
# transport with a host name keeps kombu from falling back to amqp://localhost
# and warning "No hostname was supplied" in the demo.
IN_PROCESS_BROKER_URL = "memory://localhost/"

app = Celery("self_healing")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _settings_check(sender: Celery, **kwargs: Any) -> None:
    # `celery worker/beat` read the configuration while parsing options: a
    # missing SECRET_KEY is one line and exit 2 there too, not a traceback.
    settings_load_or_exit(program="celery")


@app.on_after_configure.connect
def _in_process_broker(sender: Celery, source: Any, **kwargs: Any) -> None:
    if not source.broker_url:
        source.broker_url = IN_PROCESS_BROKER_URL


def worker_nice_apply(level: int) -> int:
    """Lower this process's CPU priority to nice ``level`` (0-19) and return the
    level it runs at; never raises a priority (that would need privileges)."""
    level = max(0, min(int(level), 19))
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if level > current:
        os.setpriority(os.PRIO_PROCESS, 0, level)
    return os.getpriority(os.PRIO_PROCESS, 0)


@signals.worker_init.connect
def _worker_nice(**kwargs: Any) -> None:
    # Heals may yield the CPU to the web process on a shared host (issue 21
    # item 7, settings CELERY_WORKER_NICE, off by default). Set in the main process before its pool
    # starts: prefork children and pool threads inherit it; set again in each
    # child in case a pool was started some other way.
    from django.conf import settings

    worker_nice_apply(settings.CELERY_WORKER_NICE)


@signals.worker_process_init.connect
def _worker_process_nice(**kwargs: Any) -> None:
    from django.conf import settings

    worker_nice_apply(settings.CELERY_WORKER_NICE)


def beat_stop_on_signal(service: Any) -> None:
    """SIGTERM and SIGINT stop `celery beat` by setting its shutdown flag.

    Celery's own handler closes the scheduler (its broker connection
    included) inside the signal handler and then raises SystemExit where the
    signal landed. When that is in the middle of a send, redis-py's read
    finishes on the connection just closed, raises ValueError ("I/O operation
    on closed file") over the SystemExit, and beat's ``apply_entry`` logs it
    as a scheduling error and ticks on: the SIGTERM is lost and beat runs
    until it is killed (seen in tests/multihost/test_two_beats.py, one run in
    two). Here the handler does no I/O: it sets the flag the loop checks, then
    raises SystemExit to cut a sleep short. If that exception is swallowed,
    the loop still ends at its next check (within beat's max interval), and
    the loop's own ``finally`` saves the schedule as before.
    """

    def _stop(signum: int, frame: Any) -> None:
        service.stop()
        raise SystemExit()

    platforms.signals.update(SIGTERM=_stop, SIGINT=_stop)


@signals.beat_init.connect
def _beat_stop_on_signal(sender: Any = None, **kwargs: Any) -> None:
    # An embedded beat in a thread (worker -B without a process) cannot take
    # signals; only the main thread installs handlers.
    if threading.current_thread() is threading.main_thread():
        beat_stop_on_signal(sender)
