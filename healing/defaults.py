"""The default escalation ladders (docs/DECISIONS.md "Healing flow"), keyed by order status."""

from healing.models import ISSUE_TYPE_FOR_STATUS, RecoveryAction
from orders.constants import DEFAULT_STUCK_THRESHOLDS_MINUTES

DEFAULT_LADDERS: dict[str, list[str]] = {
    "PENDING": [
        RecoveryAction.REASSIGN_VENDOR,
        RecoveryAction.REASSIGN_VENDOR,
        RecoveryAction.CANCEL_ORDER,
    ],
    "CONFIRMED": [RecoveryAction.RETRY_WORKFLOW, RecoveryAction.RETRY_WORKFLOW],
    "ACCEPTED": [RecoveryAction.REASSIGN_VENDOR, RecoveryAction.REASSIGN_VENDOR],
    "PROCESSING": [RecoveryAction.RETRY_WORKFLOW, RecoveryAction.RETRY_WORKFLOW],
}


def default_rules() -> list[dict]:
    return [
        {
            "status": status,
            "issue_type": ISSUE_TYPE_FOR_STATUS[status],
            "threshold_minutes": minutes,
            "ladder": [str(step) for step in DEFAULT_LADDERS[status]],
        }
        for status, minutes in DEFAULT_STUCK_THRESHOLDS_MINUTES.items()
    ]
