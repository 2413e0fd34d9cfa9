"""Domain errors of the marketplace; the API maps them to HTTP responses."""

# The base lives with the API's one exception handler; every app's errors subclass it.
from api.errors import DomainError


class InvalidTransition(DomainError):
    code = "invalid_transition"


class OrderMovedOn(DomainError):
    """The order is no longer in the status (or stuck episode) the caller expected."""

    code = "order_moved_on"


class NoVendorAvailable(DomainError):
    code = "no_vendor_available"


class CreditLimitExceeded(DomainError):
    """A CREDIT order larger than what the buyer's credit line has left (409)."""

    code = "credit_limit_exceeded"


class TransientError(Exception):
    """A failure worth retrying: a timeout, a dropped connection, a busy vendor."""


class GatewayError(TransientError):
    """The vendor gateway did not deliver a message."""
