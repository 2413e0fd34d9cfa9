from django.apps import AppConfig


class HealingConfig(AppConfig):
    name = "healing"
    verbose_name = "Self-healing"

    def ready(self) -> None:
        from healing import (
            receivers,  # noqa: F401  (orders.signals: vendor decline)
            signals,  # noqa: F401  (worker start-up hooks)
            vendor_hooks,  # noqa: F401  (vendor time: thresholds, due-time recompute)
        )
