"""Issue 16: every deploy-safety check trips on the setting it guards, and a
worker refuses to start on one, with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from kombu import Queue

from healing import checks
from healing.checks import healing_checks

ROOT = Path(__file__).resolve().parents[2]


def ids(**kwargs) -> list[str | None]:
    return [error.id for error in healing_checks(**kwargs)]


@pytest.fixture(autouse=True)
def _sane(settings):
    """Start from a configuration every check accepts."""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3900}
    settings.HEALING_TASK_BACKOFF_MAX = 120.0
    settings.CELERY_TASK_TIME_LIMIT = 90
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 60
    settings.HEALING_TASK_BATCH = 10
    settings.HEALING_LEASE_SECONDS = 60
    settings.HEALING_LEASE_RENEW_SECONDS = 20.0
    settings.HEALING_LEASE_MARGIN_SECONDS = 10.0
    settings.VENDOR_GATEWAY_TIMEOUT_SECONDS = 5.0
    settings.HEALING_CYCLE_LOCK_SECONDS = 900
    settings.HEALING_CYCLE_STALE_SECONDS = 60
    settings.HEALING_CYCLE_HEARTBEAT_SECONDS = 10.0
    settings.CELERY_WORKER_PREFETCH_MULTIPLIER = 4
    settings.HEALING_DISPATCH_LEASE_SECONDS = 600
    settings.HEALING_WORKER_BEAT_SECONDS = 5.0
    settings.HEALING_WORKER_DEAD_SECONDS = 20.0
    settings.SILENCED_SYSTEM_CHECKS = []
    return settings


def test_the_default_shaped_configuration_passes_every_check():
    assert ids(deploy=True) == []


def test_e001_visibility_timeout_shorter_than_retry_plus_hard_limit(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 200}
    assert ids() == ["healing.E001"]
    settings.CELERY_BROKER_URL = "amqp://guest@localhost//"  # RabbitMQ has no visibility timeout
    assert ids() == []


def test_e002_lease_shorter_than_gateway_timeout_plus_margin(settings):
    settings.HEALING_LEASE_SECONDS = 12
    settings.HEALING_LEASE_RENEW_SECONDS = 4.0
    assert ids() == ["healing.E002"]


def test_e002_a_lease_renewed_no_more_often_than_it_lasts(settings):
    settings.HEALING_LEASE_RENEW_SECONDS = 60.0
    assert ids() == ["healing.E002"]


def test_e003_acks_late_without_reject_on_worker_lost(settings):
    careless = SimpleNamespace(name="x.careless", acks_late=True, reject_on_worker_lost=False)
    careful = SimpleNamespace(name="x.careful", acks_late=True, reject_on_worker_lost=True)
    error = checks._acks_late([careless, careful])
    assert error is not None and error.id == "healing.E003" and "x.careless" in error.msg
    assert "x.careful" not in error.msg
    assert ids() == []  # the project's own tasks are careful
    settings.CELERY_TASK_ACKS_LATE = True
    assert ids() == ["healing.E003"]
    settings.CELERY_TASK_REJECT_ON_WORKER_LOST = True
    assert ids() == []


def test_e004_eager_tasks_with_debug_off_is_a_deploy_check(settings):
    settings.DEBUG = False
    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert ids() == []
    assert ids(deploy=True) == ["healing.E004"]
    settings.DEBUG = True
    assert ids(deploy=True) == []


def test_e005_cycle_lock_shorter_than_a_cycle_can_take(settings):
    settings.HEALING_CYCLE_LOCK_SECONDS = 60
    assert ids() == ["healing.E005"]


def test_e005_stale_age_not_above_the_cycle_heartbeat(settings):
    settings.HEALING_CYCLE_STALE_SECONDS = 15
    assert ids() == ["healing.E005"]


def test_e006_prefetch_holding_more_than_the_dispatch_lease_covers(settings):
    settings.CELERY_WORKER_PREFETCH_MULTIPLIER = 200
    assert ids() == ["healing.E006"]


def test_e006_counts_every_healing_of_a_batch_up_to_the_soft_time_limit(settings):
    settings.HEALING_DISPATCH_LEASE_SECONDS = 150
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 60
    settings.HEALING_TASK_BATCH = 1
    assert ids() == []  # 4 tasks x 5 s
    settings.HEALING_TASK_BATCH = 10
    assert ids() == ["healing.E006"]  # 4 tasks x min(10 x 5 s, 60 s)
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 30
    assert ids() == []  # 4 x 30 s


def test_e008_a_worker_dead_age_not_above_twice_its_beat(settings):
    settings.HEALING_WORKER_DEAD_SECONDS = 9.0
    assert ids() == ["healing.E008"]
    settings.HEALING_WORKER_BEAT_SECONDS = 0  # worker reports off: nothing to check
    assert ids() == []


def test_e007_quorum_queues_with_global_qos(settings):
    settings.CELERY_BROKER_URL = "amqp://guest@localhost//"
    settings.CELERY_TASK_QUEUES = [
        Queue("healing", queue_arguments={"x-queue-type": "quorum"}),
    ]
    assert ids() == []  # Celery detects the quorum queue and uses per-consumer QoS
    settings.CELERY_WORKER_DETECT_QUORUM_QUEUES = False
    assert ids() == ["healing.E007"]
    settings.CELERY_TASK_QUEUES = None
    settings.CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    assert ids() == ["healing.E007"]


def test_a_silenced_check_is_not_reported(settings):
    settings.HEALING_CYCLE_LOCK_SECONDS = 60
    settings.SILENCED_SYSTEM_CHECKS = ["healing.E005"]
    assert ids() == []


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    return {**env, "DEBUG": "true", "ENV_FILE": "", **extra}


def test_manage_py_check_reports_a_tripped_check():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=_env(HEALING_CYCLE_LOCK_SECONDS="30"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "healing.E005" in result.stderr + result.stdout


def test_a_worker_with_a_bad_configuration_refuses_to_start_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo"],
        cwd=ROOT,
        env=_env(HEALING_CYCLE_LOCK_SECONDS="30", CELERY_BROKER_URL="redis://127.0.0.1:6379/15"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(lines) == 1 and "healing.E005" in lines[0]
