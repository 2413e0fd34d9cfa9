"""GET /api/v1/health: no token needed; database, broker and cycle checks, 503 when one fails."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_defaults")]


# --- health ---------------------------------------------------------------------


def test_health_needs_no_token_and_checks_database_and_broker(settings):
    settings.CELERY_BROKER_URL = ""

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "cycles"}
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["cycles"] == {"ok": True, "detail": "no cycle has run yet"}


def test_health_is_503_when_no_cycle_ran_for_three_intervals(settings):
    from datetime import timedelta

    from django.utils import timezone

    from healing.models import HealingCycle

    settings.CELERY_BROKER_URL = ""
    settings.HEALING_CYCLE_INTERVAL_SECONDS = 300
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(task="healing.tasks.run_cycle").delete()  # use the setting
    cycle = HealingCycle.objects.create(
        started_at=timezone.now() - timedelta(seconds=899), trigger="BEAT", status="FINISHED"
    )
    assert APIClient().get("/api/v1/health").status_code == 200

    HealingCycle.objects.filter(pk=cycle.pk).update(
        started_at=timezone.now() - timedelta(seconds=901)
    )
    response = APIClient().get("/api/v1/health")

    assert response.status_code == 503
    assert "cycles" in response.json()["error"]["message"]
    assert response.json()["checks"]["cycles"]["ok"] is False


def test_health_ignores_a_bad_token():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer garbage")

    assert client.get("/api/v1/health").status_code == 200


def test_health_is_503_when_the_broker_does_not_answer(settings, monkeypatch):
    from kombu import Connection

    from config.celery import app

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    monkeypatch.setattr(app, "connection_for_write", lambda: Connection(settings.CELERY_BROKER_URL))

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "unhealthy"
    assert "broker" in body["error"]["message"]
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_health_is_503_when_the_database_does_not_answer(settings, monkeypatch):
    settings.CELERY_BROKER_URL = ""

    class DownConnection:
        vendor = "postgresql"

        def cursor(self):
            from django.db import OperationalError

            raise OperationalError("connection refused")

    monkeypatch.setattr("healing.apis_health.connection", DownConnection())

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "ok": False,
        "detail": "OperationalError: connection refused",
    }
