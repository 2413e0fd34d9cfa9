"""Stuck thresholds defined once; the healing rules are seeded from these."""

from orders.models import OrderStatus

DEFAULT_STUCK_THRESHOLDS_MINUTES: dict[str, int] = {
    OrderStatus.PENDING: 30,
    OrderStatus.CONFIRMED: 60,
    OrderStatus.ACCEPTED: 120,
    OrderStatus.PROCESSING: 180,
}
