"""``python manage.py demo`` (``make demo``): the whole system, live, in one command.

Embedded default (no CELERY_BROKER_URL): web, an in-process beat and the
simulator run as threads of this process; Celery tasks run in-process. With
CELERY_BROKER_URL (and DATABASE_URL) set, the demo starts a real Celery
worker and beat as child processes instead of the in-process beat
(``--no-workers`` when you run them yourself, e.g. with honcho).

See docs/DEMO.md for what is compressed for the demo and why.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO, cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test.utils import override_settings
from django.utils import timezone
from django.utils.log import configure_logging
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from config.celery import app as celery_app
from demo.runtime import (
    ACTIONS,
    OUTCOMES,
    Counters,
    InProcessBeat,
    Loop,
    WebServer,
    counters_read,
)
from demo.scenario import (
    DEMO_THRESHOLD_MINUTES,
    RELIABLE,
    demo_beat_interval_restore,
    demo_beat_interval_set,
    demo_data_reset,
    demo_marketplace_seed,
    demo_rules_compress,
    demo_rules_restore,
    demo_users_create,
)
from demo.simulator import GatewayWeather, Simulator
from demo.vendors import VendorDesk
from orders.models import Vendor

LOG_DIR = Path(settings.BASE_DIR) / "logs"

# What the demo changes for its own process (and its child workers).
DEMO_SETTINGS: dict[str, Any] = {
    "VENDOR_GATEWAY_BACKEND": "simulated",
    "VENDOR_GATEWAY_SIM_LATENCY_MS": 40.0,
    "VENDOR_GATEWAY_SIM_FAILURE_RATE": 0.15,
    # Two quick retries: a gateway outage turns into FAILED healings (and
    # notifications) within one cycle instead of after minutes of backoff.
    "HEALING_TASK_MAX_RETRIES": 2,
    "HEALING_TASK_BACKOFF_BASE": 0.5,
    "HEALING_TASK_BACKOFF_MAX": 2.0,
}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise CommandError(f"{name} must be a whole number of seconds, got {value!r}") from exc


class Command(BaseCommand):
    help = (
        "Run the live demo: demo users, an unreliable marketplace, web on :8000, "
        "healing on a schedule, live progress. Ctrl-C (or DEMO_SECONDS) ends it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seconds",
            type=int,
            default=_env_int("DEMO_SECONDS", 0),
            help="Stop after this many seconds and print the summary (env DEMO_SECONDS; "
            "0 = until Ctrl-C).",
        )
        parser.add_argument("--host", default=os.environ.get("DEMO_HOST", "127.0.0.1"))
        parser.add_argument(
            "--port",
            type=int,
            default=_env_int("DEMO_PORT", 8000),
            help="Web port (env DEMO_PORT); 0 picks a free one.",
        )
        parser.add_argument(
            "--cycle-seconds", type=int, default=5, help="Healing cycle interval (default 5)."
        )
        parser.add_argument(
            "--order-every", type=float, default=2.0, help="Seconds between new orders."
        )
        parser.add_argument("--seed", type=int, default=7, help="Random seed of the simulator.")
        parser.add_argument(
            "--no-workers",
            action="store_true",
            help="Celery mode: do not start a worker and beat (you run them).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run although DEBUG is off (the demo replaces the marketplace data).",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if not settings.DEBUG and not opts["force"]:
            raise CommandError(
                "The demo replaces all marketplace and healing data in its database. "
                "Run it with DEBUG=true (make demo does), or pass --force."
            )
        if opts["seconds"] < 0:
            raise CommandError("--seconds must be 0 (until Ctrl-C) or more")
        celery_mode = bool(settings.CELERY_BROKER_URL)
        # The real stream under Django's wrapper (the stub types unknown
        # attributes of OutputWrapper as callables, through its __getattr__).
        out = cast("TextIO", self.stdout._out)
        console = Console(file=out, highlight=False, width=None if out.isatty() else 110)
        LOG_DIR.mkdir(exist_ok=True)
        self._logging_to_file(LOG_DIR / "demo.log")
        overrides = dict(DEMO_SETTINGS)
        if not os.environ.get("EMAIL_BACKEND") and not os.environ.get("EMAIL_HOST"):
            # Keep the terminal for progress: the demo's emails go to files.
            overrides["EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
            overrides["EMAIL_FILE_PATH"] = str(LOG_DIR / "demo-mail")
        eager = celery_app.conf.task_always_eager
        try:
            with override_settings(**overrides):
                self._run(console=console, celery_mode=celery_mode, opts=opts)
        finally:
            celery_app.conf.task_always_eager = eager
            configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)

    # --- Set-up and tear-down -------------------------------------------------

    def _logging_to_file(self, path: Path) -> None:
        """Logs to a file: the terminal belongs to the live view."""
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {
                    "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
                },
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "filename": str(path),
                        "formatter": "plain",
                    }
                },
                "root": {"handlers": ["file"], "level": "INFO"},
                "loggers": {
                    "django.db.backends": {"level": "WARNING"},
                    # Django's default config gives "django" its own console
                    # handler under DEBUG: replace it.
                    "django": {"handlers": ["file"], "level": "INFO", "propagate": False},
                    "django.server": {"handlers": ["file"], "level": "INFO", "propagate": False},
                },
            }
        )
        # Any other logger that writes to the terminal now writes to the file.
        for logger in logging.root.manager.loggerDict.values():
            if isinstance(logger, logging.Logger) and logger.handlers and logger.name != "django":
                logger.handlers = [
                    h for h in logger.handlers if type(h) is not logging.StreamHandler
                ]

    def _run(self, *, console: Console, celery_mode: bool, opts: dict[str, Any]) -> None:
        rng = random.Random(opts["seed"])
        db = settings.DATABASES["default"]
        console.print(
            f"[bold]Self-healing orders — live demo[/bold]  database: "
            f"{db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or db['NAME']}  "
            f"tasks: {'Celery on ' + settings.CELERY_BROKER_URL if celery_mode else 'in-process'}"
        )
        demo_data_reset()
        users = demo_users_create()
        start = timezone.now()
        world = demo_marketplace_seed(now=start, rng=rng)
        previous_rules = demo_rules_compress()
        previous_interval = demo_beat_interval_set(seconds=opts["cycle_seconds"])
        weather = GatewayWeather(base_failure_rate=DEMO_SETTINGS["VENDOR_GATEWAY_SIM_FAILURE_RATE"])
        simulator = Simulator(
            world=world,
            rng=rng,
            started_at=start,
            new_order_every=opts["order_every"],
            # In Celery mode the workers play the weather (demo/weather.py).
            weather=None if celery_mode else weather,
        )
        try:
            web = WebServer(opts["host"], opts["port"])
        except OSError as exc:
            demo_rules_restore(previous_rules)
            demo_beat_interval_restore(previous_interval)
            raise CommandError(
                f"cannot listen on {opts['host']}:{opts['port']} ({exc}); "
                "set DEMO_PORT to another port"
            ) from exc
        # The reliable vendors take the production path: signed webhooks to a
        # local desk, answers through the vendor API over HTTP.
        desk = VendorDesk(api_url=web.url, rng=random.Random(opts["seed"]))
        desk.start()
        for vendor in Vendor.objects.filter(
            pk__in=[pk for pk, profile in world.vendor_profiles.items() if profile == RELIABLE]
        ):
            desk.vendor_connect(vendor=vendor)
        self._intro(
            console,
            users=users,
            web_url=web.url,
            world=world,
            opts=opts,
            celery_mode=celery_mode,
            weather=weather,
        )
        loops: list[Loop] = [Loop("simulator", 1.0, simulator.tick)]
        children: list[subprocess.Popen] = []
        if celery_mode:
            if not opts["no_workers"]:
                children = self._celery_start(weather.to_env(started_at=start.timestamp()))
        else:
            # In-process: every task, heal_order included, runs in this process.
            celery_app.conf.task_always_eager = True
            beat = InProcessBeat(cycle_seconds=opts["cycle_seconds"])
            loops.append(Loop("beat", 0.25, beat.step))
        # Celery's Django fix-up re-runs django.setup() (and its logging
        # config) when the tasks are imported: point the logs at the file again.
        self._logging_to_file(LOG_DIR / "demo.log")
        web.start()
        for loop in loops:
            loop.start()
        deadline = time.monotonic() + opts["seconds"] if opts["seconds"] else None
        # Ctrl-C or SIGTERM ends the demo once; a second signal while it
        # cleans up (timeout(1) signals twice, impatient users press twice)
        # must not skip restoring the rules.
        stopper = _Stopper()
        stopper.install()
        try:
            self._watch(
                console,
                start=start,
                deadline=deadline,
                simulator=simulator,
                # Your own workers (--no-workers) do not play the outage.
                weather=None if celery_mode and opts["no_workers"] else weather,
            )
        except KeyboardInterrupt:
            console.print("\nstopping…")
        stopper.stopping = True
        try:
            for loop in loops:
                loop.stop()
            for loop in loops:
                loop.join(timeout=30)
            self._celery_stop(children, since=start)
            desk.stop()
            web.stop()
        finally:
            demo_rules_restore(previous_rules)
            demo_beat_interval_restore(previous_interval)
        counters = counters_read(since=start)
        self._summary(
            console,
            counters=counters,
            start=start,
            simulator=simulator,
            errors=sum(loop.errors for loop in loops),
            desk=desk,
        )
        stopper.uninstall()

    def _intro(
        self,
        console: Console,
        *,
        users: Any,
        web_url: str,
        world: Any,
        opts: dict[str, Any],
        celery_mode: bool,
        weather: GatewayWeather,
    ) -> None:
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
            f"in flight, a new order every {opts['order_every']:g} s"
        )
        console.print(
            f"rules: thresholds compressed to {DEMO_THRESHOLD_MINUTES} min (restored on exit), "
            f"ladders unchanged; healing cycle every {opts['cycle_seconds']} s; {outage}"
        )
        console.print(f"logs: {LOG_DIR / 'demo.log'}  —  Ctrl-C stops and prints the summary\n")

    def _celery_start(self, weather: str) -> list[subprocess.Popen]:
        queues = sorted(
            {settings.CELERY_TASK_DEFAULT_QUEUE}
            | {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
        )
        env = {
            **os.environ,
            **{key: str(value) for key, value in DEMO_SETTINGS.items()},
            "HEALING_RUN_ON_WORKER_START": "false",
            "DEMO_GATEWAY_WEATHER": weather,
        }
        if "EMAIL_BACKEND" not in os.environ and "EMAIL_HOST" not in os.environ:
            env["EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        commands = {
            "worker": [
                *celery,
                "worker",
                "-Q",
                ",".join(queues),
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
            ],
            "beat": [*celery, "beat", "--loglevel", "INFO"],
        }
        children = []
        for name, command in commands.items():
            log = (LOG_DIR / f"demo-{name}.log").open("ab")
            children.append(
                subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=settings.BASE_DIR,
                )
            )
        return children

    def _celery_stop(self, children: list[subprocess.Popen], *, since: Any) -> None:
        """Beat first; then give the worker a few seconds to finish the
        healings already dispatched, so the summary is not left in progress."""
        if not children:
            return
        worker, beat = children
        _stop(beat)
        grace = time.monotonic() + 15
        while time.monotonic() < grace and counters_read(since=since).active:
            time.sleep(0.5)
        _stop(worker)

    # --- Live view and summary ----------------------------------------------------

    def _watch(
        self,
        console: Console,
        *,
        start: Any,
        deadline: float | None,
        simulator: Simulator,
        weather: GatewayWeather | None,
    ) -> None:
        def render() -> Group:
            counters = counters_read(since=start)
            elapsed = (timezone.now() - start).total_seconds()
            gateway = ""
            if weather is not None:
                gateway = "  gateway: " + (
                    "[red]OUTAGE[/red]" if weather.in_outage(elapsed) else "ok"
                )
            head = Text.from_markup(
                f"t+{elapsed:4.0f}s  cycles {counters.cycles}  detected {counters.detected}  "
                f"escalated {counters.escalated}  notifications {counters.notifications}  "
                f"orders placed {simulator.created}  open {counters.open_orders}{gateway}"
            )
            return Group(head, _action_table(counters))

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

    def _summary(
        self,
        console: Console,
        *,
        counters: Counters,
        start: Any,
        simulator: Simulator,
        errors: int,
        desk: VendorDesk,
    ) -> None:
        elapsed = (timezone.now() - start).total_seconds()
        console.print(f"\n[bold]Demo summary[/bold] after {elapsed:.0f} s")
        console.print(_action_table(counters))
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
        self.stdout.write(
            "demo summary: " + json.dumps({**counters.as_dict(), **vendors}, sort_keys=True)
        )


def _stop(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


class _Stopper:
    """SIGINT / SIGTERM raise KeyboardInterrupt once; later ones are ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.stopping = False
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only (e.g. a test's thread)
        for signum in self.SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.stopping:
            return
        self.stopping = True
        raise KeyboardInterrupt


def _action_table(counters: Counters) -> Table:
    table = Table(title="Healings by recovery action", title_justify="left")
    table.add_column("action")
    table.add_column("detected", justify="right")
    labels = {
        "SUCCESS": "healed",
        "FAILED": "failed",
        "MANUAL_REQUIRED": "escalated",
        "SKIPPED": "skipped",
    }
    for outcome in OUTCOMES:
        table.add_column(labels[outcome], justify="right")
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
