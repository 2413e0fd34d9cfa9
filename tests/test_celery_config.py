"""The effective Celery configuration: a misspelled setting is silently ignored,
so assert what the app and the worker actually see."""

from __future__ import annotations

from django.conf import settings

from config.celery import app
from healing.tasks import heal_order, run_cycle


def test_serialization_limits_events_and_results():
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.worker_send_task_events is True
    assert conf.task_send_sent_event is True
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
