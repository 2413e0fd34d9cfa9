"""The effective Celery configuration: a misspelled setting is silently ignored,
so assert what the app and the worker actually see."""

from __future__ import annotations

import ast
import copy
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from celery import beat, signals
from celery.apps import beat as celery_beat_app
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.beat import beat_jobs, beat_schedule_sync, interval_unit
from config.celery import _beat_stop_on_signal, app
from healing.selectors import cycle_interval_seconds
from healing.tasks import heal_order, run_cycle


def test_serialization_limits_events_and_results():
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.worker_send_task_events is True
    # Off by default: a second publish per heal task for Flower's "sent" state.
    assert conf.task_send_sent_event is False
    assert conf.task_ignore_result is True and conf.result_backend is None
    assert conf.broker_connection_retry_on_startup is True
    assert 1 <= conf.worker_prefetch_multiplier <= 8


def test_healing_work_goes_to_its_own_queue():
    assert app.conf.task_routes["healing.tasks.heal_order"] == {"queue": "healing"}
    assert app.amqp.router.route({}, heal_order.name)["queue"].name == "healing"
    assert app.amqp.router.route({}, run_cycle.name)["queue"].name == "default"


def test_heal_order_is_late_acked_and_requeued_when_its_worker_dies():
    assert heal_order.acks_late is True
    assert heal_order.reject_on_worker_lost is True


def test_visibility_timeout_outlasts_the_longest_retry_plus_the_hard_limit():
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > settings.HEALING_TASK_BACKOFF_MAX + app.conf.task_time_limit


def test_database_connections_are_reused_across_tasks():
    from celery.fixups.django import DjangoWorkerFixup

    # Without this Celery's Django fix-up closes the connection after every task.
    assert DjangoWorkerFixup(app).db_reuse_max and DjangoWorkerFixup(app).db_reuse_max >= 100


def test_worker_pool_and_beat_scheduler_come_from_settings():
    assert app.conf.worker_pool == settings.CELERY_WORKER_POOL
    assert app.conf.worker_concurrency == settings.CELERY_WORKER_CONCURRENCY
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"


def test_tasks_run_in_process_only_without_a_broker():
    assert app.conf.task_always_eager is (not settings.CELERY_BROKER_URL)


def test_without_a_broker_no_connection_warns_about_a_missing_hostname(caplog):
    # The cycle's dispatch takes a producer even when tasks run in-process; it
    # used to fall back to amqp://localhost with kombu's warning in the demo.
    assert not settings.CELERY_BROKER_URL
    with caplog.at_level(logging.WARNING), app.producer_or_acquire() as producer:
        assert producer.connection.transport_cls == "memory"
    assert not [r for r in caplog.records if "No hostname" in r.getMessage()]


# --- The beat schedule: one source (settings.BEAT_SCHEDULE), synced after migrate ----


def _row(name: str) -> PeriodicTask:
    return PeriodicTask.objects.select_related("interval").get(name=name)


def _schedule(**seconds: int) -> dict[str, dict]:
    """settings.BEAT_SCHEDULE with some jobs' intervals replaced (by job name)."""
    schedule = copy.deepcopy(settings.BEAT_SCHEDULE)
    for name, every in seconds.items():
        schedule[name.replace("_", " ")]["every_seconds"] = every
    return schedule


@pytest.mark.django_db
def test_migrate_creates_every_job_of_the_settings_schedule():
    for name, job in settings.BEAT_SCHEDULE.items():
        row = _row(name)
        assert row.task == job["task"] and row.enabled
        assert json.loads(row.kwargs) == job.get("kwargs", {})
        assert row.interval.schedule.run_every.total_seconds() == job["every_seconds"]
    cycle = _row("self-healing cycle")
    assert (cycle.interval.every, cycle.interval.period) == (5, "minutes")  # 300 s, as admin shows
    assert json.loads(cycle.kwargs) == {"trigger": "BEAT"}


@pytest.mark.django_db
def test_the_cycle_interval_setting_drives_an_untouched_row(settings):
    settings.BEAT_SCHEDULE = _schedule(**{"self-healing_cycle": 120})

    assert beat_schedule_sync()["self-healing cycle"] == "updated"

    row = _row("self-healing cycle")
    assert (row.interval.every, row.interval.period) == (2, "minutes")
    assert cycle_interval_seconds() == 120
    assert beat_schedule_sync()["self-healing cycle"] == "kept"  # a re-run changes nothing


@pytest.mark.django_db
def test_an_interval_edited_in_the_admin_is_never_overwritten(settings):
    row = _row("self-healing cycle")
    row.interval, _ = IntervalSchedule.objects.get_or_create(every=10, period="minutes")
    row.save(update_fields=["interval"])
    settings.BEAT_SCHEDULE = _schedule(**{"self-healing_cycle": 120})

    assert beat_schedule_sync()["self-healing cycle"] == "kept"

    assert _row("self-healing cycle").interval.every == 10


@pytest.mark.django_db
def test_a_deleted_job_comes_back_and_other_rows_are_left_alone():
    PeriodicTask.objects.filter(name="admin notifications sweep").delete()
    PeriodicTask.objects.create(
        name="operator's own job",
        task="healing.tasks.metrics_rollup",
        interval=IntervalSchedule.objects.get_or_create(every=7, period="days")[0],
    )

    outcome = beat_schedule_sync()

    assert outcome["admin notifications sweep"] == "created"
    assert _row("admin notifications sweep").interval.every == 1
    assert _row("operator's own job").interval.every == 7


@pytest.mark.django_db
def test_an_existing_database_adopts_the_rows_of_the_old_migration(settings):
    # What healing.0003 used to write: no description, 5 minutes.
    row = _row("self-healing cycle")
    row.description = ""
    row.interval, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    row.save(update_fields=["description", "interval"])
    settings.BEAT_SCHEDULE = _schedule(**{"self-healing_cycle": 60})

    assert beat_schedule_sync()["self-healing cycle"] == "updated"
    assert (
        _row("self-healing cycle").interval.every,
        _row("self-healing cycle").interval.period,
    ) == (
        1,
        "minutes",
    )


@pytest.mark.parametrize(
    ("seconds", "unit"),
    [(300, (5, "minutes")), (90, (90, "seconds")), (7200, (2, "hours")), (86400, (1, "days"))],
)
def test_intervals_are_stored_in_their_largest_whole_unit(seconds, unit):
    assert interval_unit(seconds) == unit


def test_a_zero_interval_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        beat_jobs({"x": {"task": "healing.tasks.run_cycle", "every_seconds": 0}})


def test_the_beat_migration_reads_nothing_from_live_modules():
    path = Path(__file__).resolve().parents[1] / "healing/migrations/0003_beat_schedule.py"
    tree = ast.parse(path.read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {"django.db"}
    assert "settings" not in path.read_text().split('"""')[-1]


def test_a_fresh_database_gets_the_schedule_from_the_environment(tmp_path):
    # A brand-new database, migrated by a separate process as `make run` does.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DEBUG": "true",
        "ENV_FILE": "",
        "SQLITE_PATH": str(tmp_path / "fresh.sqlite3"),
        "HEALING_CYCLE_INTERVAL_SECONDS": "120",
    }
    code = (
        "import django; django.setup();"
        "from django.core.management import call_command;"
        "call_command('migrate', verbosity=0);"
        "from django_celery_beat.models import PeriodicTask;"
        "t = PeriodicTask.objects.get(name='self-healing cycle');"
        "print(t.interval.every, t.interval.period, t.task)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "minutes", "healing.tasks.run_cycle"]


def test_every_task_sent_by_name_is_registered_in_a_bare_process():
    """Services send tasks through the registry by name (they never import the
    tasks modules): a fresh process — a web worker — must have them all."""
    import subprocess
    import sys

    code = (
        "import django; django.setup(); from celery import current_app; "
        "names = ['healing.tasks.heal_order', 'healing.tasks.run_cycle', "
        "'notifications.tasks.notification_deliver']; "
        "missing = [n for n in names if n not in current_app.tasks]; "
        "print(missing); raise SystemExit(1 if missing else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


class _SendInterrupted(beat.Scheduler):
    """Each tick is a send that SIGTERM interrupts, under a library that
    replaces the handler's SystemExit with an error of its own, which beat
    logs and ticks on: redis-py's read finishing on the socket Celery's
    handler has just closed ("I/O operation on closed file")."""

    ticks = 0
    closed = False

    def tick(self, *args: object, **kwargs: object) -> float:
        type(self).ticks += 1
        if type(self).ticks > 3:
            raise RuntimeError("beat ticked on after SIGTERM")
        try:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            finally:
                raise ValueError("I/O operation on closed file.")  # noqa: B012
        except Exception:  # noqa: S110 - beat's apply_entry logs it and goes on
            pass
        return 0.01

    def close(self) -> None:
        type(self).closed = True


@pytest.fixture
def beat_service():
    """A real beat loop on the scheduler above; the process's own SIGTERM and
    SIGINT handlers put back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    _SendInterrupted.ticks, _SendInterrupted.closed = 0, False
    try:
        yield beat.Service(app=app, scheduler_cls=_SendInterrupted, remote_control=False)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_sigterm_in_the_middle_of_a_send_stops_beat_and_saves_its_schedule(beat_service):
    celery_beat_app.Beat(app=app, quiet=True).install_sync_handler(beat_service)
    beat_service.start()  # beat_init puts the project's handler in place of Celery's
    assert _SendInterrupted.ticks == 1
    assert _SendInterrupted.closed


def test_celerys_own_handler_loses_that_sigterm(beat_service):
    """Why config.celery replaces it: with Celery's handler alone beat ticks on.
    When this fails, Celery no longer loses the signal and the replacement
    can go."""
    signals.beat_init.disconnect(_beat_stop_on_signal)
    try:
        celery_beat_app.Beat(app=app, quiet=True).install_sync_handler(beat_service)
        with pytest.raises(RuntimeError, match="ticked on after SIGTERM"):
            beat_service.start()
    finally:
        signals.beat_init.connect(_beat_stop_on_signal)
    assert _SendInterrupted.ticks == 4
