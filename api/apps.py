from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The HTTP plumbing is an app only for its one table: token revocations."""

    name = "api"
    verbose_name = "API"
    default_auto_field = "django.db.models.BigAutoField"
