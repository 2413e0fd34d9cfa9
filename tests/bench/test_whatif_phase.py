"""bench.whatif_phase: the benchmark's ``whatif_7d_s`` over the data set's own window."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bench.whatif_phase import whatif_phase
from tests.factories import OrderFactory, OrderStatusChangeFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]


def test_times_the_replay_over_the_window_ending_at_the_newest_history_row():
    """The window follows the data set's clock, not the wall clock: history
    written 10 days ahead of now (as a reused data set's is 10 days behind) is
    replayed, and the factory's "order placed" rows of today fall outside the
    7 days. One order sat 25 min in PENDING (flagged at 20, not at today's
    30), one 45 min (flagged by both)."""
    start = timezone.now() + timedelta(days=10)
    for minutes in (25, 45):
        order = OrderFactory()
        OrderStatusChangeFactory(order=order, from_status="", to_status="PENDING", created_at=start)
        OrderStatusChangeFactory(
            order=order,
            to_status="CANCELLED",
            actor_type="USER",
            created_at=start + timedelta(minutes=minutes),
        )

    result = whatif_phase(days=7, runs=2)

    assert set(result) == {
        "whatif_7d_s",
        "whatif_history_rows",
        "whatif_flagged_current",
        "whatif_flagged_proposed",
    }
    assert result["whatif_7d_s"] >= 0
    assert result["whatif_history_rows"] == 4
    assert (result["whatif_flagged_current"], result["whatif_flagged_proposed"]) == (1, 2)


def test_refuses_an_empty_history_and_bad_arguments():
    with pytest.raises(ValueError, match="no status history"):
        whatif_phase()
    with pytest.raises(ValueError, match="at least 1"):
        whatif_phase(days=0)
