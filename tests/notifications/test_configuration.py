"""Settings and task names other code relies on: a typo must not pass silently."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from config.celery import app
from notifications.apps import notification_settings_check


def test_the_contracted_task_names_are_registered():
    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    assert "notifications.tasks.notification_deliver" in app.tasks
    assert "notifications.tasks.notifications_sweep" in app.tasks
    assert app.tasks["notifications.tasks.notification_deliver"].acks_late is True


@pytest.mark.django_db
def test_the_sweep_is_scheduled_every_minute_in_beat():
    task = PeriodicTask.objects.get(task="notifications.tasks.notifications_sweep")
    assert task.enabled and task.interval.every == 1 and task.interval.period == "minutes"


def test_safe_defaults_keep_every_external_channel_off():
    from django.conf import settings

    assert settings.NOTIFICATION_WEBHOOK_URL == ""
    assert settings.NOTIFICATION_SMS_ENABLED is False
    assert settings.NOTIFICATION_WHATSAPP_ENABLED is False
    assert settings.NOTIFICATION_FAILURE_RATE_THRESHOLD == 0.2
    assert settings.NOTIFICATION_CHANNELS["LOW"] == ["dashboard"]


def test_a_misspelled_channel_or_severity_is_a_system_check_error(settings):
    settings.NOTIFICATION_CHANNELS = {"HIGH": ["dashboard", "emial"], "URGENT": ["email"]}
    errors = notification_settings_check()
    assert {e.id for e in errors} == {"notifications.E001", "notifications.E002"}
    assert any("emial" in e.msg for e in errors)
    settings.NOTIFICATION_CHANNELS = {"HIGH": ["dashboard", "email"]}
    assert notification_settings_check() == []
