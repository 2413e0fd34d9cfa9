"""Routes of the vendor API (``/api/v1/vendor/``) and the order API (``/api/v1/orders``)."""

from __future__ import annotations

from django.urls import path

from orders import order_apis, vendor_apis

vendor_urlpatterns = [
    path("orders", vendor_apis.VendorOrderListApi.as_view(), name="vendor-orders"),
    path("orders/<str:order_id>", vendor_apis.VendorOrderDetailApi.as_view(), name="vendor-order"),
    path(
        "orders/<str:order_id>/confirm",
        vendor_apis.VendorOrderConfirmApi.as_view(),
        name="vendor-order-confirm",
    ),
    path(
        "orders/<str:order_id>/accept",
        vendor_apis.VendorOrderAcceptApi.as_view(),
        name="vendor-order-accept",
    ),
    path(
        "orders/<str:order_id>/start",
        vendor_apis.VendorOrderStartApi.as_view(),
        name="vendor-order-start",
    ),
    path(
        "orders/<str:order_id>/ship",
        vendor_apis.VendorOrderShipApi.as_view(),
        name="vendor-order-ship",
    ),
    path(
        "orders/<str:order_id>/deliver",
        vendor_apis.VendorOrderDeliverApi.as_view(),
        name="vendor-order-deliver",
    ),
    path(
        "orders/<str:order_id>/decline",
        vendor_apis.VendorOrderDeclineApi.as_view(),
        name="vendor-order-decline",
    ),
]

order_urlpatterns = [
    path("", order_apis.OrderCreateApi.as_view(), name="orders-create"),
]

# Mounted at "api/v1/orders/" (no route starts with a slash: urls.W002).
order_detail_urlpatterns = [
    path("<str:order_id>", order_apis.OrderDetailApi.as_view(), name="orders-get"),
    path("<str:order_id>/cancel", order_apis.OrderCancelApi.as_view(), name="orders-cancel"),
]
