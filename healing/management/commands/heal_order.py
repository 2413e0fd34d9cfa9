from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from healing.errors import HealingTransientError
from healing.execution import healing_execute, healing_initiate
from healing.models import HealingAction, RecoveryAction, RecoveryStatus, Trigger
from orders.errors import DomainError
from orders.models import Order


class Command(BaseCommand):
    help = "Heal one order now (the rule's recommendation unless --action is given)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("order_id", help="The order's id.")
        parser.add_argument("--action", default=None, help=", ".join(RecoveryAction.values))

    def handle(self, *args: Any, order_id: str, action: str | None, **options: Any) -> None:
        if not order_id.isdigit():
            raise CommandError(f"order id must be a positive integer, got {order_id!r}")
        if action is not None and action not in RecoveryAction.values:
            raise CommandError(
                f"unknown action {action!r}; use one of {', '.join(RecoveryAction.values)}"
            )
        order = Order.objects.filter(pk=int(order_id)).first()
        if order is None:
            raise CommandError(f"order {order_id} does not exist")
        try:
            healing = healing_initiate(order=order, trigger=Trigger.CLI, recovery_action=action)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        if healing.recovery_status == RecoveryStatus.PENDING:
            try:
                # healing_initiate hands out a PENDING healing with its claim token.
                assert healing.claim_token is not None
                healing_execute(healing_id=healing.pk, token=healing.claim_token)
            except HealingTransientError as exc:
                raise CommandError(f"transient failure, try again: {exc}") from exc
        healing = HealingAction.objects.get(pk=healing.pk)
        self.stdout.write(
            json.dumps(
                {
                    "healing_id": healing.pk,
                    "order_id": healing.order_id,
                    "recovery_action": healing.recovery_action,
                    "recovery_status": healing.recovery_status,
                    "skip_reason": healing.skip_reason,
                    "error": healing.error_message,
                    "previous_vendor_id": healing.previous_vendor_id,
                    "new_vendor_id": healing.new_vendor_id,
                }
            )
        )
        if healing.recovery_status == RecoveryStatus.FAILED:
            raise CommandError(f"healing {healing.pk} failed: {healing.error_message}")
