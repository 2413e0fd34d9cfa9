from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from healing.models import HealingAction
from tests.factories import OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_stuck_orders_prints_a_table():
    order = OrderFactory(status="CONFIRMED", stuck_minutes=75)
    OrderFactory(status="CONFIRMED", stuck_minutes=5)

    out = run("stuck_orders")

    lines = out.splitlines()
    assert "recommended" in lines[0] and "attempts" in lines[0]
    assert any(
        order.number in line and "STUCK_CONFIRMED" in line and "RETRY_WORKFLOW" in line
        for line in lines
    )
    assert lines[-1] == "1 stuck order(s)"


def test_heal_cycle_ends_with_a_json_summary():
    VendorFactory()
    OrderFactory(status="PENDING", stuck_minutes=31)
    OrderFactory(status="CONFIRMED", stuck_minutes=61)

    summary = json.loads(run("heal_cycle").splitlines()[-1])

    assert summary["detected"] == 2 and summary["healed"] == 2
    assert {"failed", "skipped", "escalated", "guard_tripped"} <= summary.keys()
    assert summary["guard_tripped"] is False


def test_heal_order_runs_the_named_action():
    order = OrderFactory(status="CONFIRMED", stuck_minutes=1)
    result = json.loads(run("heal_order", str(order.pk), "--action", "RETRY_WORKFLOW"))
    assert (result["recovery_action"], result["recovery_status"]) == ("RETRY_WORKFLOW", "SUCCESS")
    assert HealingAction.objects.get().trigger == "CLI"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["abc"], "order id must be a positive integer"),
        (["999999"], "order 999999 does not exist"),
        (["1", "--action", "EXPLODE"], "unknown action 'EXPLODE'"),
    ],
)
def test_heal_order_bad_input_is_one_readable_error(args, message):
    OrderFactory()
    with pytest.raises(CommandError, match=message):
        run("heal_order", *args)


def test_heal_order_refuses_a_fresh_order_without_action():
    order = OrderFactory(status="PENDING", stuck_minutes=1)
    with pytest.raises(CommandError, match="under its 30 min threshold"):
        run("heal_order", str(order.pk))


def test_the_minute_job_brings_a_cycles_counters_up_to_date():
    from healing.models import HealingCycle
    from healing.services import healing_cycle_run
    from healing.tasks import metrics_rollup

    OrderFactory.create_batch(2, status="CONFIRMED", stuck_minutes=61)
    sent: list = []
    healing_cycle_run(trigger="CLI", dispatch=sent.extend)  # tasks "in flight"
    cycle = HealingCycle.objects.get()
    assert (cycle.pending, cycle.healed) == (2, 0)
    from healing.services import healing_execute

    for healing_id, token in sent:
        healing_execute(healing_id=healing_id, token=token)

    metrics_rollup()

    cycle.refresh_from_db()
    assert (cycle.pending, cycle.healed) == (0, 2)
