"""Real Celery worker processes for the benchmark (the same command the Procfile runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery.signals import after_task_publish

from healing.dispatch import heal_pairs

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Finished:
    task: str
    key: str
    state: str
    outcome: str
    at: float


class OutcomeLog:
    """Reads the lines ``bench.hooks`` appends, incrementally, across all worker processes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._offsets: dict[Path, int] = {}
        self.rows: list[Finished] = []

    def poll(self) -> list[Finished]:
        new: list[Finished] = []
        for path in sorted(self.directory.glob("*.tsv")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
            # Only whole lines: a worker may be half-way through writing one.
            end = data.rfind(b"\n") + 1
            self._offsets[path] = offset + end
            for line in data[:end].decode().splitlines():
                task, key, state, outcome, at = line.split("\t")
                new.append(Finished(task, key, state, outcome, float(at)))
        self.rows.extend(new)
        return new


class PublishTimes:
    """Wall-clock time each ``task`` left this process (Celery's
    after_task_publish), to compare with the times ``OutcomeLog`` reads."""

    def __init__(self, *, task: str) -> None:
        self.task = task
        self.sent: dict[str, float] = {}

    def __call__(self, sender: Any = None, body: Any = None, **kwargs: Any) -> None:
        if sender != self.task:
            return
        if isinstance(body, tuple | list):
            args, kwargs = body[0], body[1]
        else:
            args, kwargs = body.get("args", ()), body.get("kwargs", {})
        at = time.time()
        for healing_id, _ in heal_pairs(args, kwargs) or [(args[0], "")]:
            self.sent[str(healing_id)] = at

    @contextmanager
    def recording(self) -> Iterator[PublishTimes]:
        after_task_publish.connect(self, weak=False)
        try:
            yield self
        finally:
            after_task_publish.disconnect(self)


def broker_purge(url: str) -> None:
    """Empty the healing queue (and its priority variants) and kombu's unacked
    bookkeeping on the Redis broker at ``url``: leftovers of an interrupted
    run would be counted."""
    client = redis.Redis.from_url(url)
    for pattern in ("healing*", "unacked*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)


class BenchWorker:
    """One ``celery -A config worker`` process (plus its pool children)."""

    def __init__(
        self,
        *,
        name: str,
        pool: str,
        concurrency: int,
        env: dict[str, str],
        outcome_dir: Path,
        log_path: Path,
        queues: str = "healing",
    ) -> None:
        self.name = name
        self.pool = pool
        self.concurrency = concurrency
        self.queues = queues
        self.env = {
            **os.environ,
            # No cycle of its own: the benchmark decides when cycles run.
            "HEALING_RUN_ON_WORKER_START": "false",
            "BENCH_OUTCOME_DIR": str(outcome_dir),
            **env,
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> BenchWorker:
        self._log = self.log_path.open("ab")
        self._ready_from = self.log_path.stat().st_size
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed args
            worker_argv(
                name=self.name,
                pool=self.pool,
                concurrency=self.concurrency,
                queues=self.queues,
                imports=("bench.hooks",),
            ),
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own process group, so stopping it reaches the pool children.
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        wait_ready(
            self.process, self.log_path, since=self._ready_from, timeout=timeout, label=self.name
        )

    def pids(self) -> list[int]:
        """The main process and its pool children (prefork forks them)."""
        if self.process is None:
            return []
        out = subprocess.run(  # noqa: S603
            ["pgrep", "-P", str(self.process.pid)],  # noqa: S607 - procps, on PATH
            capture_output=True,
            text=True,
            check=False,
        )
        return [self.process.pid, *(int(pid) for pid in out.stdout.split())]

    def peak_rss_mb(self) -> dict[int, float]:
        """VmHWM (peak resident set) of each process, in MB."""
        peaks: dict[int, float] = {}
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = int(line.split()[1]) / 1024
        return peaks

    def stop(self, timeout: float = 30) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()


class WorkerGroup:
    """``count`` workers started together; stopped together even on error."""

    def __init__(self, workers: list[BenchWorker]) -> None:
        self.workers = workers

    def __enter__(self) -> WorkerGroup:
        try:
            for worker in self.workers:
                worker.start()
            for worker in self.workers:
                worker.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def peak_rss_mb(self) -> dict[int, float]:
        peaks: dict[int, float] = {}
        for worker in self.workers:
            peaks.update(worker.peak_rss_mb())
        return peaks


def worker_argv(
    *, name: str, pool: str, concurrency: int, queues: str, imports: tuple[str, ...] = ()
) -> list[str]:
    """The ``celery worker`` command line the Procfile's worker runs, with a
    pool, a concurrency, queues and a node name of the caller's choosing."""
    argv = [sys.executable, "-m", "celery", "-A", "config", "worker"]
    for module in imports:
        argv += ["-I", module]
    return [
        *argv,
        "-Q", queues,
        "-P", pool,
        "-c", str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "-l", "INFO",
        "-n", f"{name}@%h",
    ]  # fmt: skip


def wait_ready(
    process: subprocess.Popen[bytes], log_path: Path, *, since: int, timeout: float, label: str
) -> None:
    """Wait until the worker logs "ready." after byte ``since`` of its log (a
    log reused across restarts must not count an earlier start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker {label} exited: {_tail(log_path)}")
        with log_path.open("rb") as handle:
            handle.seek(since)
            if b"ready." in handle.read():
                return
        time.sleep(0.2)
    raise RuntimeError(f"worker {label} not ready after {timeout:.0f}s: {_tail(log_path)}")


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-3000:]
