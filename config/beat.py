"""The periodic jobs' single source: ``settings.BEAT_SCHEDULE`` -> beat's database.

django-celery-beat runs what its ``PeriodicTask`` rows say, and operators edit
those rows in the admin (Periodic tasks). The rows are made from the settings
by :func:`beat_schedule_sync`, which runs after every ``migrate``
(``post_migrate``, see ``config.apps``):

- a job with no row gets one, from its setting (``HEALING_CYCLE_INTERVAL_SECONDS``
  and friends);
- a row still on the schedule the sync last wrote follows the setting when it
  changes (the last written value is in the row's description);
- a row an operator changed in the admin is never touched again.

Not Celery's ``beat_schedule`` setting: the database scheduler writes that over
the rows on every beat start, which would undo an operator's edit.

Rows from before this sync (migration ``healing.0003`` wrote them with no
description) count as unchanged while they still have that migration's
interval, so an existing database adopts the settings the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

# What migration healing.0003 wrote before this sync existed (name -> seconds).
LEGACY_INTERVAL_SECONDS = {
    "self-healing cycle": 300,
    "healing metrics roll-up": 60,
    "admin notifications sweep": 60,
}

_MARKER = re.compile(r"\[schedule from settings: every (\d+) s\]")
_UNITS = (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))


@dataclass(frozen=True)
class Job:
    name: str
    task: str
    every_seconds: int
    kwargs: dict[str, Any]


def beat_jobs(schedule: dict[str, dict[str, Any]] | None = None) -> list[Job]:
    """The configured jobs, validated: a typo in the schedule is an error here."""
    schedule = settings.BEAT_SCHEDULE if schedule is None else schedule
    jobs = []
    for name, entry in schedule.items():
        every = int(entry["every_seconds"])
        if every < 1:
            raise ValueError(f"BEAT_SCHEDULE[{name!r}]: every_seconds must be at least 1")
        jobs.append(
            Job(name=name, task=entry["task"], every_seconds=every, kwargs=entry.get("kwargs", {}))
        )
    return jobs


def interval_unit(seconds: int) -> tuple[int, str]:
    """(every, period) in the largest whole unit: 300 s -> (5, "minutes"), as the admin shows."""
    for period, size in _UNITS:
        if seconds % size == 0:
            return seconds // size, period
    raise AssertionError("unreachable: every whole number of seconds has a unit")


def _row_seconds(row: Any) -> int | None:
    interval = row.interval
    if interval is None:
        return None  # a crontab or clocked schedule: an operator's choice
    size = dict(_UNITS).get(interval.period)
    return interval.every * size if size else None


def _last_synced_seconds(row: Any) -> int | None:
    match = _MARKER.search(row.description or "")
    if match:
        return int(match.group(1))
    if not row.description:
        return LEGACY_INTERVAL_SECONDS.get(row.name)
    return None


def _description(job: Job) -> str:
    return (
        f"Created from settings.BEAT_SCHEDULE. Edit the schedule here to override "
        f"the setting for good. [schedule from settings: every {job.every_seconds} s]"
    )


def beat_schedule_sync() -> dict[str, str]:
    """Create or follow each job's row; what happened to each (created/updated/kept).

    The real models, not a migration state's: ``PeriodicTask.save`` tells a
    running beat that the schedule changed.
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    interval_model, task_model = IntervalSchedule, PeriodicTask
    outcome: dict[str, str] = {}
    for job in beat_jobs():
        every, period = interval_unit(job.every_seconds)
        row = task_model.objects.filter(name=job.name).select_related("interval").first()
        if row is None:
            interval, _ = interval_model.objects.get_or_create(every=every, period=period)
            task_model.objects.create(
                name=job.name,
                task=job.task,
                interval=interval,
                kwargs=json.dumps(job.kwargs),
                description=_description(job),
            )
            outcome[job.name] = "created"
            continue
        current = _row_seconds(row)
        if current is None or current != _last_synced_seconds(row):
            outcome[job.name] = "kept"  # changed in the admin: the operator's value stands
            continue
        if (
            current == job.every_seconds
            and row.task == job.task
            and _MARKER.search(row.description)
        ):
            outcome[job.name] = "kept"
            continue
        row.interval, _ = interval_model.objects.get_or_create(every=every, period=period)
        row.task = job.task
        row.description = _description(job)
        row.save(update_fields=["interval", "task", "description"])
        outcome[job.name] = "updated"
    return outcome


def beat_schedule_sync_after_migrate(
    *, apps: Apps | None = None, using: str = DEFAULT_DB_ALIAS, **kwargs: Any
) -> None:
    """post_migrate receiver: skipped while beat's tables are not there (migrating to zero)."""
    if using != DEFAULT_DB_ALIAS:
        return
    state = apps or global_apps
    try:
        state.get_model("django_celery_beat", "PeriodicTask")
        state.get_model("django_celery_beat", "IntervalSchedule")
    except LookupError:
        return
    beat_schedule_sync()
