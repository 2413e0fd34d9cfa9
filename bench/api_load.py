"""The API under load, alone and while a cycle heals (issue 21 item 7).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_api \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/3 ALLOW_INSECURE_DEFAULTS=true \\
    python -m bench.api_load [--orders 100000] [--stuck 5000] [--clients 20] [--seconds 30]

Seeds the database (its name must contain ``bench``), starts the web process
as the Procfile does (gunicorn with ``config/gunicorn.py``) on a local port,
and has ``--clients`` threads read stuck-orders, statistics and notifications
in a loop for ``--seconds``: once with nothing else running, once while
``--workers`` real Celery workers heal the stuck orders of a cycle started
through ``POST run-cycle?wait=0``. Prints p50 / p99 / errors of each phase next
to the target (p99 <= 1 s with a cycle running, no errors) and a JSON last line.
The request loop is bounded in time and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PATHS = (
    "/api/v1/self-healing/stuck-orders",
    "/api/v1/self-healing/statistics?days=7",
    "/api/v1/self-healing/notifications",
)
TARGET_P99_MS = 1000.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def load_run(*, base: str, token: str, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads, each its own keep-alive session, until the deadline."""
    import requests

    latencies: list[float] = []
    by_path: dict[str, list[float]] = {path: [] for path in PATHS}
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        step = index
        while time.monotonic() < deadline:
            path = PATHS[step % len(PATHS)]
            step += 1
            started = time.perf_counter()
            try:
                response = session.get(base + path, timeout=10)
                ok = response.status_code == 200
                problem = "" if ok else f"{response.status_code} {path}"
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__} {path}"
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                by_path[path].append(elapsed)
                if problem:
                    errors.append(problem)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 15)
    return {
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else 0.0,
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "errors": len(errors),
        "error_sample": sorted(set(errors))[:5],
        "paths": {
            path: {
                "requests": len(values),
                "p50_ms": round(statistics.median(values), 1) if values else 0.0,
                "p99_ms": round(_percentile(values, 0.99), 1),
            }
            for path, values in by_path.items()
        },
    }


def _children(pid: int) -> list[int]:
    out = subprocess.run(  # noqa: S603
        ["pgrep", "-P", str(pid)],  # noqa: S607 - procps, on PATH
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(child) for child in out.stdout.split()]


def _cpu_ticks(pids: list[int]) -> dict[int, int]:
    """User + system CPU ticks of each of ``pids`` so far (/proc/<pid>/stat)."""
    ticks: dict[int, int] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


def _postgres_pids() -> list[int]:
    """The PostgreSQL backends serving this database (the web's and the workers')."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [int(row[0]) for row in cursor.fetchall()]


def measured_run(
    *, base: str, token: str, clients: int, seconds: float, groups: dict[str, Any]
) -> dict[str, Any]:
    """:func:`load_run`, plus the CPU seconds each process group used meanwhile
    (``groups``: name -> a callable giving its pids, asked before and after, so
    a process started during the run counts from zero; "postgres" is every
    backend on the machine) and the 1-minute load average before and after."""
    before = {name: _cpu_ticks(pid_list()) for name, pid_list in groups.items()}
    load_before = os.getloadavg()[0]
    row = load_run(base=base, token=token, clients=clients, seconds=seconds)
    tick = os.sysconf("SC_CLK_TCK")
    row["cpu_s"] = {}
    for name, pid_list in groups.items():
        after = _cpu_ticks(pid_list())
        used = sum(value - before[name].get(pid, 0) for pid, value in after.items())
        row["cpu_s"][name] = round(used / tick, 1)
    row["load_avg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return row


class Web:
    """gunicorn as the Procfile's web line runs it, on a local port."""

    def __init__(self, *, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Web:
        env = {
            **os.environ,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "API_THROTTLE_ENABLED": "false",
            "WEB_ACCESS_LOG": os.devnull,
            "LOG_LEVEL": "WARNING",
        }
        self._out = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "config/gunicorn.py",
                "config.wsgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_up()
        return self

    def _wait_up(self, timeout: float = 60) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log}")
            try:
                requests.get(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f}s; see {self.log}")

    def pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        return [self.process.pid, *_children(self.process.pid)] if self.process else []

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self._out.close()


def _token(base: str, username: str, password: str) -> str:
    import requests

    response = requests.post(
        f"{base}/api/v1/auth/token", json={"username": username, "password": password}, timeout=10
    )
    response.raise_for_status()
    return str(response.json()["access"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--stuck", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from bench.workers import BenchWorker, WorkerGroup
    from orders.roles import OPERATIONS, role_user_create

    if "bench" not in settings.DATABASES["default"]["NAME"]:
        sys.exit("bench.api_load replaces its database's data: use a database named *bench*")
    if not os.environ.get("CELERY_BROKER_URL"):
        sys.exit("bench.api_load needs CELERY_BROKER_URL (its workers heal the cycle)")
    from config.database import database_ensure

    if database_ensure(settings.DATABASES["default"]):  # a fresh machine has none
        print(f"created database {settings.DATABASES['default']['NAME']}", flush=True)
    call_command("migrate", verbosity=0)
    print(f"seeding {args.orders:,} orders, {args.stuck:,} stuck", flush=True)
    call_command("seed_marketplace", orders=args.orders, stuck=args.stuck, quiet=True)
    password = "bench-api-load-0123"
    role_user_create(username="bench-load", password=password, role=OPERATIONS)
    base = f"http://127.0.0.1:{args.port}"
    logs = Path(tempfile.mkdtemp(prefix="bench-api-"))
    figures: dict[str, Any] = {}
    with Web(port=args.port, log=logs / "web.log") as web:
        token = _token(base, "bench-load", password)
        groups: dict[str, Any] = {
            "web": web.pids,
            "postgres": _postgres_pids,
            "client": lambda: [os.getpid()],
        }
        print(f"phase 1: {args.clients} clients for {args.seconds:.0f}s, nothing else running")
        figures["idle"] = measured_run(
            base=base, token=token, clients=args.clients, seconds=args.seconds, groups=groups
        )
        workers = [
            BenchWorker(
                name=f"api-load-{index}",
                pool="prefork",
                concurrency=args.concurrency,
                env={"VENDOR_GATEWAY_BACKEND": "simulated", "LOG_LEVEL": "INFO"},
                outcome_dir=logs,
                log_path=logs / f"worker-{index}.log",
                queues="healing,default",
            )
            for index in range(args.workers)
        ]
        with WorkerGroup(workers) as group:
            import requests

            groups["workers"] = lambda: [pid for worker in group.workers for pid in worker.pids()]

            started = requests.post(
                f"{base}/api/v1/self-healing/run-cycle?wait=0",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            print(f"phase 2: cycle started ({started.status_code}); same load while it heals")
            figures["cycle"] = measured_run(
                base=base, token=token, clients=args.clients, seconds=args.seconds, groups=groups
            )
    _report(figures, args)


def _report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    idle, cycle = figures["idle"], figures["cycle"]
    met = cycle["p99_ms"] <= TARGET_P99_MS and cycle["errors"] == 0 and idle["errors"] == 0
    print()
    print(f"{'phase':<22}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, row in (("alone", idle), ("while a cycle heals", cycle)):
        print(
            f"{name:<22}{row['requests']:>10}{row['p50_ms']:>10}{row['p99_ms']:>10}{row['errors']:>8}"
        )
    print(
        f"target: p99 <= {TARGET_P99_MS:.0f} ms with a cycle running, 0 errors -> "
        f"{'met' if met else 'NOT met'}"
    )
    for name, row in (("alone", idle), ("while a cycle heals", cycle)):
        paths = ", ".join(
            f"{path.rsplit('/', 1)[1].split('?')[0]} {split['p50_ms']:.0f}/{split['p99_ms']:.0f}"
            for path, split in row["paths"].items()
        )
        cpu = ", ".join(f"{group} {used:.1f}" for group, used in row["cpu_s"].items())
        print(f"  {name}: p50/p99 ms by path: {paths}")
        print(
            f"  {name}: CPU s in {args.seconds:.0f}s: {cpu}; "
            f"load average {row['load_avg'][0]} -> {row['load_avg'][1]}"
        )
    for row in (idle, cycle):
        for sample in row["error_sample"]:
            print(f"  error: {sample}")
    print(
        json.dumps(
            {
                "api_p50_ms": idle["p50_ms"],
                "api_p99_ms": idle["p99_ms"],
                "api_p50_ms_cycle": cycle["p50_ms"],
                "api_p99_ms_cycle": cycle["p99_ms"],
                "api_errors": idle["errors"] + cycle["errors"],
                "api_requests": idle["requests"] + cycle["requests"],
                "clients": args.clients,
                "seconds": args.seconds,
                "stuck": args.stuck,
            }
        )
    )


if __name__ == "__main__":
    main()
