import os

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "demo"
    verbose_name = "Live demo"

    def ready(self) -> None:
        # Only in the Celery workers that ``manage.py demo`` starts: they play
        # the same vendor-gateway weather (timeouts, outage) as the demo.
        weather = os.environ.get("DEMO_GATEWAY_WEATHER")
        if weather:
            from demo.weather import weather_follow

            weather_follow(weather)
