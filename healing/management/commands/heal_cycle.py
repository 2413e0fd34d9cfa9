from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from healing.cycle import healing_cycle_run
from healing.models import Trigger


class Command(BaseCommand):
    help = "Run one healing cycle now; the last line is a JSON summary."

    def handle(self, *args: Any, **options: Any) -> None:
        result = healing_cycle_run(trigger=Trigger.CLI)
        summary: dict[str, Any] = {
            "ran": result.ran,
            "cycle_id": result.cycle_id,
            "detected": result.detected,
            "dispatched": result.dispatched,
            "healed": result.healed,
            "failed": result.failed,
            "skipped": result.skipped,
            "escalated": result.escalated,
            "pending": result.pending,
            "guard_tripped": result.guard_tripped,
        }
        if not result.ran:
            summary["reason"] = result.reason
        self.stdout.write(json.dumps(summary))
