"""What the demo prints: the intro, the live progress, and the summary.

Every function takes what it shows as arguments and only prints: the demo
command owns the run (threads, workers, rules) and hands the numbers over, so
the terminal's text can change without touching how the demo runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from demo.runtime import ACTIONS, OUTCOMES, Counters, counters_read
from demo.scenario import DEMO_THRESHOLD_MINUTES, DemoUser, World
from demo.simulator import GatewayWeather, Simulator
from demo.vendors import VendorDesk

# The action table's column for each final outcome.
OUTCOME_LABELS: dict[str, str] = {
    "SUCCESS": "healed",
    "FAILED": "failed",
    "MANUAL_REQUIRED": "escalated",
    "SKIPPED": "skipped",
}


def intro_print(
    console: Console,
    *,
    users: Iterable[DemoUser],
    web_url: str,
    world: World,
    order_every: float,
    cycle_seconds: int,
    weather: GatewayWeather,
    log_path: Path,
) -> None:
    """Who can log in, where, and what the demo compressed: before the first
    line of progress, so a reader knows what the numbers will mean."""
    table = Table(title="Demo users (log in at /dashboard/ or /admin/)", title_justify="left")
    table.add_column("role")
    table.add_column("username")
    table.add_column("password")
    for user in users:
        table.add_row(user.role, user.username, user.password)
    console.print(table)
    console.print(
        f"web: {web_url}/dashboard/  admin: {web_url}/{settings.ADMIN_URL}  "
        f"API: {web_url}/api/v1/self-healing/"
    )
    outage = (
        f"vendor gateway: 15% timeouts, outage {weather.outage_start:.0f}-"
        f"{weather.outage_end:.0f} s of every {weather.period / 60:.0f} min"
    )
    console.print(
        f"marketplace: {len(world.vendor_profiles)} vendors (some never take assignments, "
        f"one accepts and never starts, one needs nudging), {world.backlog} orders already "
        f"in flight, a new order every {order_every:g} s"
    )
    console.print(
        f"rules: thresholds compressed to {DEMO_THRESHOLD_MINUTES} min (restored on exit), "
        f"ladders unchanged; healing cycle every {cycle_seconds} s; {outage}"
    )
    console.print(f"logs: {log_path}  —  Ctrl-C stops and prints the summary\n")


def progress_render(
    *, start: datetime, simulator: Simulator, weather: GatewayWeather | None
) -> Group:
    """One progress line and the action table, read fresh from the rows."""
    counters = counters_read(since=start)
    elapsed = (timezone.now() - start).total_seconds()
    gateway = ""
    if weather is not None:
        gateway = "  gateway: " + ("[red]OUTAGE[/red]" if weather.in_outage(elapsed) else "ok")
    head = Text.from_markup(
        f"t+{elapsed:4.0f}s  cycles {counters.cycles}  detected {counters.detected}  "
        f"escalated {counters.escalated}  notifications {counters.notifications}  "
        f"orders placed {simulator.created}  open {counters.open_orders}{gateway}"
    )
    return Group(head, action_table(counters))


def progress_watch(
    console: Console,
    *,
    start: datetime,
    deadline: float | None,
    simulator: Simulator,
    weather: GatewayWeather | None,
) -> None:
    """Until ``deadline`` (or Ctrl-C): a live view on a terminal; otherwise
    the progress line every 10 s, so a log or a pipe gets lines, not redraws."""

    def render() -> Group:
        return progress_render(start=start, simulator=simulator, weather=weather)

    if console.is_terminal:
        with Live(render(), console=console, refresh_per_second=2) as live:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(1)
                live.update(render())
        return
    next_print = 0.0
    while deadline is None or time.monotonic() < deadline:
        if time.monotonic() >= next_print:
            console.print(render().renderables[0])
            next_print = time.monotonic() + 10
        time.sleep(1)


def summary_print(
    console: Console,
    *,
    counters: Counters,
    start: datetime,
    simulator: Simulator,
    errors: int,
    desk: VendorDesk,
) -> dict[str, Any]:
    """The end-of-run tables and whether every recovery action was seen (the
    demo's point). Returns the vendor desk's counts it showed: the command's
    JSON line uses the same read, so the line and the table agree."""
    elapsed = (timezone.now() - start).total_seconds()
    console.print(f"\n[bold]Demo summary[/bold] after {elapsed:.0f} s")
    console.print(action_table(counters))
    totals = Table(show_header=False)
    totals.add_column("what")
    totals.add_column("count", justify="right")
    totals.add_row("healing cycles", str(counters.cycles))
    totals.add_row("stuck orders detected (healings)", str(counters.detected))
    totals.add_row("escalated to a person", str(counters.escalated))
    for kind, n in sorted(counters.notifications_by_type.items()):
        totals.add_row(f"notifications {kind}", str(n))
    totals.add_row("notifications raised", str(counters.notifications))
    totals.add_row("orders placed by the simulator", str(simulator.created))
    totals.add_row("vendor steps played", str(simulator.vendor_steps))
    vendors = desk.summary()
    totals.add_row("signed webhooks verified by vendors", str(vendors["webhooks_verified"]))
    totals.add_row("vendor replies over HTTP", str(vendors["vendor_replies_over_http"]))
    for action, n in vendors["vendor_replies_by_action"].items():
        totals.add_row(f"  vendor API {action} (200)", str(n))
    if errors:
        totals.add_row("[red]loop errors (see logs/demo.log)[/red]", str(errors))
    console.print(totals)
    seen = [a for a in ACTIONS if sum(counters.by_action.get(a, {}).values())]
    missing = [a for a in ACTIONS if a not in seen]
    console.print(
        "every recovery action at work: "
        + ("yes" if not missing else f"no (missing {', '.join(missing)})")
    )
    return vendors


def action_table(counters: Counters) -> Table:
    """Healings per recovery action and outcome, with those still running."""
    table = Table(title="Healings by recovery action", title_justify="left")
    table.add_column("action")
    table.add_column("detected", justify="right")
    for outcome in OUTCOMES:
        table.add_column(OUTCOME_LABELS[outcome], justify="right")
    table.add_column("in progress", justify="right")
    for action in ACTIONS:
        row = counters.by_action.get(action, {})
        active = row.get("PENDING", 0) + row.get("IN_PROGRESS", 0)
        table.add_row(
            action,
            str(sum(row.values())),
            *(str(row.get(outcome, 0)) for outcome in OUTCOMES),
            str(active),
        )
    return table
