"""Domain errors of the marketplace; the API maps them to HTTP responses."""


class DomainError(Exception):
    """A request the domain refuses. Never retried."""

    code = "domain_error"
    http_status = 409

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidTransition(DomainError):
    code = "invalid_transition"


class OrderMovedOn(DomainError):
    """The order is no longer in the status (or stuck episode) the caller expected."""

    code = "order_moved_on"


class NoVendorAvailable(DomainError):
    code = "no_vendor_available"


class TransientError(Exception):
    """A failure worth retrying: a timeout, a dropped connection, a busy vendor."""


class GatewayError(TransientError):
    """The vendor gateway did not deliver a message."""
