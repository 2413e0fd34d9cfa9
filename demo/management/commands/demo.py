"""``python manage.py demo`` (``make demo``): the whole system, live, in one command.

Embedded default (no CELERY_BROKER_URL): web, an in-process beat and the
simulator run as threads of this process; Celery tasks run in-process. With
CELERY_BROKER_URL (and DATABASE_URL) set, the demo starts a real Celery
worker and beat as child processes instead of the in-process beat
(``--no-workers`` when you run them yourself, e.g. with honcho).

See docs/DEMO.md for what is compressed for the demo and why.
What it prints is in demo/report.py; the worker and beat it starts, and
its signal handling, in demo/processes.py.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any, TextIO, cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test.utils import override_settings
from django.utils import timezone
from django.utils.log import configure_logging
from rich.console import Console

from config.celery import app as celery_app
from demo.processes import Stopper, workers_start, workers_stop
from demo.report import intro_print, progress_watch, summary_print
from demo.runtime import InProcessBeat, Loop, WebServer, counters_read
from demo.scenario import (
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
        intro_print(
            console,
            users=users,
            web_url=web.url,
            world=world,
            order_every=opts["order_every"],
            cycle_seconds=opts["cycle_seconds"],
            weather=weather,
            log_path=LOG_DIR / "demo.log",
        )
        loops: list[Loop] = [Loop("simulator", 1.0, simulator.tick)]
        children: list[subprocess.Popen] = []
        if celery_mode:
            if not opts["no_workers"]:
                children = workers_start(
                    weather=weather.to_env(started_at=start.timestamp()),
                    overrides=DEMO_SETTINGS,
                    log_dir=LOG_DIR,
                )
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
        stopper = Stopper()
        stopper.install()
        try:
            progress_watch(
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
            workers_stop(children, since=start)
            desk.stop()
            web.stop()
        finally:
            demo_rules_restore(previous_rules)
            demo_beat_interval_restore(previous_interval)
        counters = counters_read(since=start)
        vendors = summary_print(
            console,
            counters=counters,
            start=start,
            simulator=simulator,
            errors=sum(loop.errors for loop in loops),
            desk=desk,
        )
        self.stdout.write(
            "demo summary: " + json.dumps({**counters.as_dict(), **vendors}, sort_keys=True)
        )
        stopper.uninstall()
