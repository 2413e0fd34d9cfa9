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
        from healing.checks import checks_register  # deploy-safety checks (issue 16)

        checks_register()
