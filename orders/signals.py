"""What the marketplace announces; other apps (healing) react without orders importing them."""

from django.dispatch import Signal

# Sent inside the decline's transaction with order=, vendor_id=, reason=, now=.
# healing.receivers starts the REASSIGN_VENDOR healing in the same transaction.
order_vendor_declined = Signal()
