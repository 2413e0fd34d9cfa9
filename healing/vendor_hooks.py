"""Vendor time's links to the healing engine ("Vendor time", issue 18).

orders computes each open order's due time but does not import healing,
where the thresholds live: this module tells it where to read them, and
recomputes due times in bulk when a rule or a vendor's calendar changes.
Connected in ``HealingConfig.ready``.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from healing.models import StuckRule
from orders.models import Vendor
from orders.vendor_time import due_at_recompute, thresholds_register

CALENDAR_FIELDS = frozenset({"time_zone", "working_hours", "holidays"})


def rule_threshold(status: str) -> int | None:
    """The enabled rule's threshold for ``status`` (None: no rule, no due time)."""
    return (
        StuckRule.objects.filter(status=status, enabled=True)
        .values_list("threshold_minutes", flat=True)
        .first()
    )


thresholds_register(rule_threshold)


@receiver(post_save, sender=StuckRule, dispatch_uid="healing.due_at_on_rule_change")
def due_at_on_rule_change(*, instance: StuckRule, **kwargs: Any) -> None:
    status = instance.status
    transaction.on_commit(lambda: due_at_recompute(statuses=[status]))


@receiver(post_save, sender=Vendor, dispatch_uid="healing.due_at_on_calendar_change")
def due_at_on_calendar_change(
    *, instance: Vendor, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    if created or (update_fields is not None and not CALENDAR_FIELDS & set(update_fields)):
        return
    vendor_id = instance.pk
    transaction.on_commit(lambda: due_at_recompute(vendor_ids=[vendor_id]))
