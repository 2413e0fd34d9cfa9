"""The two measuring aids of docs/BENCHMARK.md round 5: the delaying TCP forwarder
and the CPU-by-process reader."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

from bench.cpu_by_process import (
    Sample,
    cpu_by_group,
    process_group,
    processes_sample,
    sample_merge,
)
from bench.delay_proxy import proxy_serve


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_proxy_delays_each_direction_and_keeps_the_bytes():
    echo_port, proxy_port = _free_port(), _free_port()

    async def scenario() -> tuple[bytes, float, float]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        echo_server = await asyncio.start_server(echo, "127.0.0.1", echo_port)
        proxy = asyncio.create_task(proxy_serve(proxy_port, echo_port, delay=0.02))
        await asyncio.sleep(0.1)
        timings = []
        for port in (echo_port, proxy_port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.perf_counter()
            writer.write(b"x" * 100_000)
            received = await reader.readexactly(100_000)
            timings.append(time.perf_counter() - started)
            writer.close()
        proxy.cancel()
        echo_server.close()
        return received, timings[0], timings[1]

    received, direct, proxied = asyncio.run(scenario())
    assert received == b"x" * 100_000
    assert proxied >= 0.04 > direct  # 20 ms there, 20 ms back


def test_processes_are_grouped_by_what_they_are():
    def sample(pid_parent: int, args: str, comm: str = "python") -> Sample:
        return Sample(pid_parent, 1.0, comm, args)

    main = sample(1, "python -m celery -A config worker -Q healing")
    everyone = {10: main, 11: sample(10, "python -m celery -A config worker -Q healing")}
    assert process_group(main, everyone) == "celery main"
    assert process_group(everyone[11], everyone) == "celery pool children"
    assert process_group(sample(1, "postgres: autovacuum worker", "postgres"), {}) == (
        "postgres autovacuum"
    )
    backend = sample(1, "postgres: postgres bench 127.0.0.1(5000) idle", "postgres")
    assert process_group(backend, {}) == "postgres client backends"
    assert process_group(sample(1, "redis-server *:6379", "redis-server"), {}) == "redis"


def test_cpu_is_counted_between_the_two_log_lines(tmp_path: Path):
    log = tmp_path / "bench.log"
    log.write_text("")
    mine = processes_sample()[os.getpid()]
    assert mine.cpu_s > 0

    def phase() -> None:
        time.sleep(0.3)
        log.write_text("pipeline: start\n")
        # This thread's time: the sampler's own CPU must not shorten the spin;
        # sleep(0) hands the GIL over, or the sampler (this process's main
        # thread) can be starved until the spin ends.
        spin_until = time.thread_time() + 0.5
        while time.thread_time() < spin_until:
            time.sleep(0)
        log.write_text("pipeline: start\nraw SQL: next\n")

    worker = threading.Thread(target=phase)
    worker.start()
    wall, totals = cpu_by_group(log, "pipeline:", "raw SQL:", every=0.05)
    worker.join()
    assert wall >= 0.4
    own = sum(seconds for group, seconds in totals.items() if group.startswith("other: "))
    assert own >= 0.4  # this test's own spinning, in its window


def test_an_exiting_child_keeps_the_group_it_had():
    # A pool child at shutdown: no command line, re-parented to init.
    child = Sample(10, 2.0, "python", "python -m celery -A config worker -Q healing")
    exiting = sample_merge(child, Sample(1, 2.5, "python", ""))
    assert (exiting.ppid, exiting.cpu_s, exiting.args) == (10, 2.5, child.args)
    assert sample_merge(None, Sample(1, 1.0, "python", "")).args == ""
