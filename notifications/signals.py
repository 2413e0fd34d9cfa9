"""What the alerting app tells the apps that raise notifications."""

from django.dispatch import Signal

# Sent inside the resolving transaction with ``notification``, ``user`` and
# ``now``: the app that owns the matter reacts (healing hands a manual
# intervention back to automation).
notification_resolved = Signal()
