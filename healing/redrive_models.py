"""The record of a redrive execution (issue 19): one row per confirmation token.

The token hash is unique, so two concurrent executions with one token cannot
both start their healings: the second insert waits on the unique index, then
fails, and its transaction starts nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RedriveExecution(models.Model):
    token_hash = models.CharField(max_length=64, unique=True)
    filter_hash = models.CharField(max_length=64)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    healings_started = models.PositiveIntegerField(default=0)
    executed_at = models.DateTimeField()

    class Meta:
        db_table = "healing_redrive_executions"
        ordering = ["-executed_at"]

    def __str__(self) -> str:
        return f"redrive {self.pk} ({self.healings_started} healings)"
