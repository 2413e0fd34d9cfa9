"""The demo's vendor-gateway weather inside its Celery workers.

The simulated gateway reads ``VENDOR_GATEWAY_SIM_FAILURE_RATE`` on every call;
before each task a worker process sets it from the demo's schedule, so an
outage the demo announces is an outage its workers see (prefork children
included: the signal runs in the process that executes the task).
"""

from __future__ import annotations

import time
from typing import Any

from celery.signals import task_prerun
from django.conf import settings


def weather_follow(value: str) -> None:
    from demo.simulator import GatewayWeather

    started_at, weather = GatewayWeather.from_env(value)

    def set_failure_rate(**kwargs: Any) -> None:
        settings.VENDOR_GATEWAY_SIM_FAILURE_RATE = weather.failure_rate(time.time() - started_at)

    task_prerun.connect(set_failure_rate, weak=False)
