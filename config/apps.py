"""The project's own app config: wires what belongs to no app (the beat schedule)."""

from __future__ import annotations

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class ProjectConfig(AppConfig):
    name = "config"
    label = "project"
    verbose_name = "Project"

    def ready(self) -> None:
        from config.beat import beat_schedule_sync_after_migrate

        # After beat's own post_migrate work, whatever app migrated last: the
        # sync only needs django_celery_beat's tables.
        post_migrate.connect(
            beat_schedule_sync_after_migrate,
            sender=apps.get_app_config("django_celery_beat"),
            dispatch_uid="config.beat.beat_schedule_sync",
        )
