"""The healing engine's errors: what a caller may see, and what a task retries."""

from __future__ import annotations

import uuid

from orders.errors import DomainError, TransientError


class NotStuck(DomainError):
    code = "not_stuck"


class ActionNotApplicable(DomainError):
    code = "action_not_applicable"


class CycleAlreadyRunning(DomainError):
    code = "cycle_running"
    http_status = 409


class HealingTransientError(TransientError):
    """A retryable failure; carries the claim token the retry must present."""

    def __init__(self, message: str, *, token: uuid.UUID) -> None:
        super().__init__(message)
        self.token = token


class StaleClaim(Exception):
    """This task no longer holds the healing: roll the apply step back."""
