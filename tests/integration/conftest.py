from __future__ import annotations

import pytest
from django.conf import settings

from tests.multihost.brokers import broker_flush


@pytest.fixture(scope="session", autouse=True)
def _broker_is_real() -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.fail(
            "integration tests need a real broker: run them through `make test` "
            "(which sets CELERY_BROKER_URL) or set CELERY_BROKER_URL yourself"
        )
    broker_flush(settings.CELERY_BROKER_URL)
