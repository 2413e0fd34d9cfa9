from django.apps import AppConfig


class HealingConfig(AppConfig):
    name = "healing"
    verbose_name = "Self-healing"

    def ready(self) -> None:
        from healing import signals  # noqa: F401  (worker start-up hooks)
