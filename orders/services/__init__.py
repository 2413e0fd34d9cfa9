"""The only code that changes an order's status (invariant 1).

Every change is a compare-and-set ``UPDATE ... WHERE status = <expected>``
(and, for healing, ``AND stuck_since = <detected clock>``) followed by its
history row in the same transaction. A caller whose expectation no longer
holds gets ``OrderMovedOn`` and nothing is written.

The services open their transaction with ``savepoint=False``: called alone
they are one transaction; called inside a healing's apply step they join it
without extra SAVEPOINT statements, and any error aborts the whole step. A
caller that wants to catch ``OrderMovedOn`` and carry on inside its own
transaction wraps the call in ``transaction.atomic()``.

The package's modules: ``core`` (the state machine, the compare-and-set and
its history row), ``creation``, ``progress`` (forward steps, a vendor's
decline, cancellation), ``repairs`` (reassignment, a restarted clock) and
``credit`` (the limit at intake, the refund). Callers import from
``orders.services``.
"""

from orders.services.core import TRANSITIONS, Actor
from orders.services.creation import order_create
from orders.services.credit import credit_charge_check, credit_refund
from orders.services.progress import (
    order_accept,
    order_cancel,
    order_confirm,
    order_deliver,
    order_ship,
    order_start_processing,
    order_transition,
    order_vendor_decline,
)
from orders.services.repairs import order_reassign_vendor, order_restart_clock

__all__ = [
    "TRANSITIONS",
    "Actor",
    "credit_charge_check",
    "credit_refund",
    "order_accept",
    "order_cancel",
    "order_confirm",
    "order_create",
    "order_deliver",
    "order_reassign_vendor",
    "order_restart_clock",
    "order_ship",
    "order_start_processing",
    "order_transition",
    "order_vendor_decline",
]
