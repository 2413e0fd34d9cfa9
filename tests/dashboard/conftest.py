from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from healing.models import RecoveryStatus
from orders.roles import ADMIN, OPERATIONS, VIEWER, role_user_create
from tests.factories import (
    AdminNotificationFactory,
    HealingActionFactory,
    HealingCycleFactory,
    OrderFactory,
    UserFactory,
)

PASSWORD = "pw-123456-dashboard"


@pytest.fixture
def role_user():
    def make(role: str | None, username: str | None = None):
        name = username or f"user-{(role or 'none').lower()}"
        if role is None:
            return UserFactory(username=name)
        user, _ = role_user_create(username=name, password=PASSWORD, role=role)
        return user

    return make


@pytest.fixture
def admin_user(role_user):
    return role_user(ADMIN)


@pytest.fixture
def operations_user(role_user):
    return role_user(OPERATIONS)


@pytest.fixture
def viewer_user(role_user):
    return role_user(VIEWER)


def healing(*, status: str, action: str, detected_ago: timedelta, seconds: float | None = None):
    """A finished healing of a fresh order, detected ``detected_ago`` ago and
    completed ``seconds`` later."""
    detected = timezone.now() - detected_ago
    completed = detected + timedelta(seconds=seconds) if seconds is not None else None
    return HealingActionFactory(
        order=OrderFactory(),
        issue_detected_at=detected,
        created_at=detected,
        updated_at=detected,
        recovery_action=action,
        recovery_status=status,
        skip_reason="RECOVERED" if status == RecoveryStatus.SKIPPED else "",
        completed_at=completed if status != RecoveryStatus.PENDING else None,
        claim_token=None,
        lease_expires_at=None,
        admin_notified=status in (RecoveryStatus.FAILED, RecoveryStatus.MANUAL_REQUIRED),
    )


@pytest.fixture
def dashboard_dataset(db):
    """Two days of healings, stuck orders, notifications and cycles.

    Yesterday: 3 SUCCESS (recovery 10, 20, 30 s), 1 FAILED.
    Today:     2 SUCCESS (recovery 4, 8 s), 1 MANUAL_REQUIRED, 1 SKIPPED.
    Stuck now (default 30/60-minute rules): 2 PENDING, 1 CONFIRMED.
    Open notifications: 1 HIGH, 1 CRITICAL unacknowledged; 1 HIGH acknowledged.
    """
    now = timezone.now()
    # Keep "today" inside today even just after midnight.
    today = min(timedelta(minutes=5), now - now.replace(hour=0, minute=0, second=0))
    yesterday = today + timedelta(days=1)
    for seconds in (10, 20, 30):
        healing(status="SUCCESS", action="REASSIGN_VENDOR", detected_ago=yesterday, seconds=seconds)
    healing(status="FAILED", action="RETRY_WORKFLOW", detected_ago=yesterday, seconds=3)
    for seconds in (4, 8):
        healing(status="SUCCESS", action="RETRY_WORKFLOW", detected_ago=today, seconds=seconds)
    healing(status="MANUAL_REQUIRED", action="MANUAL_INTERVENTION", detected_ago=today, seconds=1)
    healing(status="SKIPPED", action="CANCEL_ORDER", detected_ago=today, seconds=0)
    stuck = [
        OrderFactory(status="PENDING", stuck_minutes=45),
        OrderFactory(status="PENDING", stuck_minutes=300),
        OrderFactory(status="CONFIRMED", stuck_minutes=90),
    ]
    OrderFactory(status="CONFIRMED", stuck_minutes=5)  # not stuck yet
    AdminNotificationFactory(severity="HIGH", title="Healing failed for ORD-1")
    AdminNotificationFactory(
        severity="CRITICAL",
        notification_type="SYSTEM_ALERT",
        order=None,
        dedup_key="guard",
        title="Blast-radius guard tripped",
    )
    AdminNotificationFactory(severity="HIGH", acknowledged_at=now, title="Seen already")
    for minutes in (3, 2, 1):
        HealingCycleFactory(started_at=now - timedelta(minutes=minutes), detected=minutes)
    return {"stuck": stuck}
