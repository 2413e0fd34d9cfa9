"""Prometheus series of the vendors' circuit breakers (issue 18), read on each scrape.

Two kinds of series, chosen for bounded cardinality:

- ``healing_vendor_circuits{state}``: how many vendors are in each circuit
  state, CLOSED, OPEN and HALF_OPEN (the values ``orders.models.CircuitState``
  stores, spelled like every other label of this exporter). Three series
  whatever the number of vendors; a vendor with no circuit row is CLOSED.
  Alert on ``healing_vendor_circuits{state="OPEN"} > 0``.
- ``healing_vendor_circuit_opened_timestamp_seconds{vendor_id,state}``: per
  vendor, but only for the vendors whose circuit is not closed, and at most
  ``PER_VENDOR_MAX_SERIES`` of them (the longest open first): when its circuit
  opened (Unix time), so ``time() - …`` is how long it has been out. A vendor's
  series disappears when its circuit closes. Vendors past the cap are counted
  in ``healing_vendor_circuit_series_dropped`` (and always in the totals).
  The label is the vendor's id, never its (editable, unbounded) name.

Two statements per scrape, whatever the history: one count of the vendors
joined to their circuit rows (a primary-key join), and the circuits that are
not closed through their partial index (``vendor_circuit_open_idx``).
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Q
from django.db.models.functions import Coalesce
from prometheus_client.core import GaugeMetricFamily, Metric

from orders.models import CircuitState, Vendor, VendorCircuit

PER_VENDOR_MAX_SERIES = 50


class VendorCircuitCollector:
    """A custom collector: the circuits' state when Prometheus scrapes."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        # One statement: every vendor, and how many of them are open or half-open.
        by_state = Vendor.objects.aggregate(
            total=Count("id"),
            **{
                state: Count("id", filter=Q(circuit__state=state))
                for state in (CircuitState.OPEN, CircuitState.HALF_OPEN)
            },
        )
        not_closed_count = by_state[CircuitState.OPEN] + by_state[CircuitState.HALF_OPEN]
        by_state[CircuitState.CLOSED] = max(by_state.pop("total") - not_closed_count, 0)
        circuits = GaugeMetricFamily(
            "healing_vendor_circuits",
            "Vendors by circuit-breaker state (a vendor with no circuit row is CLOSED).",
            labels=["state"],
        )
        for state in CircuitState.values:
            circuits.add_metric([state], by_state[state])
        yield circuits

        opened = GaugeMetricFamily(
            "healing_vendor_circuit_opened_timestamp_seconds",
            "When a vendor's circuit opened (Unix time), for vendors whose circuit is not "
            f"closed, at most {PER_VENDOR_MAX_SERIES} (the longest open first).",
            labels=["vendor_id", "state"],
        )
        rows = (
            VendorCircuit.objects.exclude(state=CircuitState.CLOSED)
            .annotate(since=Coalesce("opened_at", "updated_at"))
            .order_by("since", "vendor_id")
            .values_list("vendor_id", "state", "since")[:PER_VENDOR_MAX_SERIES]
        )
        listed = 0
        for vendor_id, state, since in rows:
            opened.add_metric([str(vendor_id), state], since.timestamp())
            listed += 1
        yield opened
        yield GaugeMetricFamily(
            "healing_vendor_circuit_series_dropped",
            "Vendors whose circuit is not closed but which have no per-vendor series (the cap).",
            value=max(not_closed_count - listed, 0),
        )
