"""CPU seconds by process group while a benchmark phase runs (issue 15's breakdown).

    python -m bench.cpu_by_process LOG START END

Waits until the text START appears in the file LOG (a ``bench_healing`` log,
say "pipeline: 2 workers"), then reads every process's CPU time from
``/proc`` every 0.3 s until END appears ("raw SQL:"), and prints CPU seconds
per group: Celery worker main processes, their pool children, PostgreSQL by
backend type (client backends, autovacuum, WAL writer, checkpointer...),
Redis, the benchmark's own process, the rest. A process that starts during
the window counts from zero; one that ends counts until its last reading.
Linux only (``/proc``); the server processes must run on this host.
"""

from __future__ import annotations

import argparse
import collections
import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    ppid: int
    cpu_s: float
    comm: str
    args: str


def processes_sample() -> dict[int, Sample]:
    """Every readable process's parent, CPU seconds (user + system) and command."""
    found: dict[int, Sample] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            args = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rpartition(")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICK
        found[int(entry)] = Sample(int(fields[1]), cpu, comm, args.strip())
    return found


def sample_merge(known: Sample | None, sample: Sample) -> Sample:
    """A process's newest reading, with its identity kept once it is exiting:
    an exiting process (a pool child at the worker's shutdown) has an empty
    command line and may be re-parented, but its CPU belongs to what it was."""
    if sample.args or known is None:
        return sample
    return Sample(known.ppid, sample.cpu_s, known.comm, known.args)


def _is_worker(sample: Sample | None) -> bool:
    return sample is not None and "celery" in sample.args and " worker" in sample.args


def process_group(sample: Sample, everyone: dict[int, Sample]) -> str:
    """The row a process's CPU is added to."""
    if sample.comm.startswith("postgres"):
        # "postgres: autovacuum worker", "postgres: walwriter", "postgres: user db host(port) idle"
        title = sample.args.removeprefix("postgres: ")
        for kind in ("autovacuum", "walwriter", "checkpointer", "background writer", "logger"):
            if title.startswith(kind):
                return f"postgres {kind}"
        return "postgres client backends"
    if "redis" in sample.comm:
        return "redis"
    if _is_worker(sample):
        return "celery pool children" if _is_worker(everyone.get(sample.ppid)) else "celery main"
    if "bench_healing" in sample.args:
        return "the benchmark's process"
    return f"other: {sample.comm}"


def _log_has(path: Path, text: str) -> bool:
    try:
        return text in path.read_text(errors="replace")
    except OSError:
        return False


def cpu_by_group(
    log: Path, start: str, end: str, *, every: float = 0.3
) -> tuple[float, dict[str, float]]:
    """Wall seconds of the window and CPU seconds per group inside it."""
    while not _log_has(log, start):
        time.sleep(0.2)
    before = processes_sample()
    began = time.monotonic()
    last: dict[int, Sample] = {}

    def read() -> None:
        for pid, sample in processes_sample().items():
            last[pid] = sample_merge(last.get(pid), sample)

    while not _log_has(log, end):
        read()
        time.sleep(every)
    read()
    wall = time.monotonic() - began
    totals: dict[str, float] = collections.defaultdict(float)
    for pid, sample in last.items():
        earlier = before.get(pid)
        counted = earlier.cpu_s if earlier is not None and earlier.comm == sample.comm else 0.0
        totals[process_group(sample, last)] += sample.cpu_s - counted
    return wall, dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("start")
    parser.add_argument("end")
    args = parser.parse_args()
    wall, totals = cpu_by_group(args.log, args.start, args.end)
    cores = os.cpu_count() or 1
    print(f"window {wall:.1f} s: {sum(totals.values()):.1f} CPU s of {cores * wall:.1f} available")
    print(f"{'process':32s} {'CPU s':>8s} {'of one core':>12s}")
    for group, seconds in sorted(totals.items(), key=lambda item: -item[1])[:14]:
        print(f"{group:32s} {seconds:8.2f} {100 * seconds / wall:11.1f}%")


if __name__ == "__main__":
    main()
