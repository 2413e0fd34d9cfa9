"""Is the broker reachable from this process? (issue 17)

POST run-cycle asks before the cycle takes its lock and claims healings: a web
host cut off from the broker answers a clear 503 and leaves nothing
half-done, instead of claiming healings no message will carry (the leases
would bring them back, but only after a lease). A broker lost after the check
is still covered by the leases and the sweeper.
"""

from __future__ import annotations

from celery import current_app
from django.conf import settings
from kombu.exceptions import OperationalError

from orders.errors import DomainError


class BrokerUnavailable(DomainError):
    code = "broker_unavailable"
    http_status = 503


def broker_check(*, url: str | None = None, timeout: int = 2) -> None:
    """Raise BrokerUnavailable unless one connection to the broker (``url``, by
    default the configured one) opens within ``timeout``. In-process tasks (no
    broker configured) have nothing to reach."""
    if url is None and settings.CELERY_TASK_ALWAYS_EAGER:
        return
    try:
        with current_app.connection_for_write(url) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except (OperationalError, OSError) as exc:
        raise BrokerUnavailable(
            f"the task broker cannot be reached from this web host ({type(exc).__name__}); "
            "no cycle was started, try again when it is back"
        ) from exc
