"""Response shapes of the vendor and order APIs (field names stay snake_case)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from orders.models import Order
from orders.webhooks import vendor_deadline


class VendorOrderSerializer(serializers.Serializer):
    """An order as its vendor sees it (never another vendor, never the buyer's ledger)."""

    id = serializers.IntegerField()
    number = serializers.CharField()
    status = serializers.CharField()
    amount = serializers.DecimalField(source="total", max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    payment_method = serializers.CharField()
    created_at = serializers.DateTimeField()
    status_changed_at = serializers.DateTimeField()
    act_by = serializers.SerializerMethodField()

    class Meta:
        ref_name = "VendorOrder"

    def get_act_by(self, order: Order) -> Any:
        deadline = vendor_deadline(order=order)
        return serializers.DateTimeField().to_representation(deadline) if deadline else None


class StatusChangeSerializer(serializers.Serializer):
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    from_vendor_id = serializers.IntegerField(allow_null=True)
    to_vendor_id = serializers.IntegerField(allow_null=True)
    actor_type = serializers.CharField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "OrderStatusChange"


class OrderHealingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    trigger = serializers.CharField()
    issue_type = serializers.CharField()
    recovery_action = serializers.CharField()
    recovery_status = serializers.CharField()
    detected_status = serializers.CharField()
    resulting_status = serializers.CharField()
    previous_vendor_id = serializers.IntegerField(allow_null=True)
    new_vendor_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "OrderHealing"


class MarketplaceOrderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    status = serializers.CharField()
    buyer_id = serializers.IntegerField()
    vendor_id = serializers.IntegerField(allow_null=True)
    amount = serializers.DecimalField(source="total", max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    payment_method = serializers.CharField()
    created_at = serializers.DateTimeField()
    status_changed_at = serializers.DateTimeField()

    class Meta:
        ref_name = "MarketplaceOrder"
