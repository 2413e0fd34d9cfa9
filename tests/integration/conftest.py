from __future__ import annotations

import pytest
import redis
from django.conf import settings


@pytest.fixture(scope="session", autouse=True)
def _broker_is_real() -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.fail(
            "integration tests need a real broker: run them through `make test` "
            "(which sets CELERY_BROKER_URL) or set CELERY_BROKER_URL yourself"
        )
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
