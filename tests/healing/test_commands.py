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
    from healing.cycle import healing_cycle_run
    from healing.models import HealingCycle
    from healing.tasks import metrics_rollup

    OrderFactory.create_batch(2, status="CONFIRMED", stuck_minutes=61)
    sent: list = []
    healing_cycle_run(trigger="CLI", dispatch=sent.extend)  # tasks "in flight"
    cycle = HealingCycle.objects.get()
    assert (cycle.pending, cycle.healed) == (2, 0)
    from healing.execution import healing_execute

    for healing_id, token in sent:
        healing_execute(healing_id=healing_id, token=token)

    metrics_rollup()

    cycle.refresh_from_db()
    assert (cycle.pending, cycle.healed) == (0, 2)


# --- Bad numbers, long lists and pipes (issue 20 item 13) -------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "argument --limit: must be at least 1, got 0"),
        ("-1", "argument --limit: must be at least 1, got -1"),
        ("abc", "argument --limit: expected a positive whole number, got 'abc'"),
    ],
)
def test_stuck_orders_refuses_a_limit_below_one(value, message):
    # --limit 0 used to print one order and "1 stuck order(s)".
    with pytest.raises(CommandError, match=message):
        run("stuck_orders", "--limit", value)


def test_stuck_orders_with_a_limit_says_how_many_it_shows_of_how_many():
    OrderFactory.create_batch(12, status="CONFIRMED", stuck_minutes=75)

    limited = run("stuck_orders", "--limit", "5").splitlines()
    everything = run("stuck_orders").splitlines()

    assert limited[-1] == "showing 5 of 12 stuck order(s)"
    assert len(limited) == 2 + 5 + 1  # header, rule, rows, footer
    assert everything[-1] == "12 stuck order(s)"
    assert run("stuck_orders", "--limit", "12").splitlines()[-1] == "12 stuck order(s)"


def test_stuck_orders_stops_quietly_when_the_reader_goes_away():
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    OrderFactory.create_batch(3, status="CONFIRMED", stuck_minutes=75)
    call_command("stuck_orders", stdout=ClosedPipe())  # no exception


@pytest.mark.postgres
def test_stuck_orders_piped_into_a_closed_reader_has_no_traceback():
    # `manage.py stuck_orders | head`: the reader is gone before the first line.
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.db import connection

    OrderFactory.create_batch(3, status="CONFIRMED", stuck_minutes=75)
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "stuck_orders"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DEBUG": "true", "ENV_FILE": "", "DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, stderr
    assert "BrokenPipeError" not in stderr and "Traceback" not in stderr


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("100000000", "argument --days: must be at most 36,500, got 100,000,000"),
        ("0", "argument --days: must be at least 1, got 0"),
    ],
)
def test_rebuild_metrics_refuses_a_day_count_out_of_range(days, message):
    # 100000000 used to end in an OverflowError traceback from date arithmetic.
    with pytest.raises(CommandError, match=message):
        run("rebuild_metrics", "--days", days)


def test_rebuild_metrics_out_of_range_on_the_command_line_is_one_error_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [sys.executable, "manage.py", "rebuild_metrics", "--days", "100000000"],
        cwd=Path(__file__).resolve().parents[2],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DEBUG": "true",
            "ENV_FILE": "",
            "SQLITE_PATH": str(tmp_path / "x.sqlite3"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "manage.py rebuild_metrics: error: argument --days: must be at most 36,500, got 100,000,000"
    )
