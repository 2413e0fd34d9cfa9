"""Workers run at CELERY_WORKER_NICE, below the web's CPU priority (issue 21 item 7).

Read from /proc/<pid>/stat of a real worker: the main process, its prefork
children, and every thread of a threads pool.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.celery import worker_nice_apply
from healing.tasks import noop
from tests.integration.workers import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _nice(stat: Path) -> int:
    # Fields after the command name: state is field 3, nice is field 19.
    return int(stat.read_text().rsplit(")", 1)[1].split()[16])


def test_a_prefork_worker_and_its_children_run_at_the_configured_nice():
    with Worker(pool="prefork", concurrency=2, env={"CELERY_WORKER_NICE": "7"}) as worker:
        assert wait_until(lambda: len(worker.children()) == 2, timeout=10)
        pids = [worker.process.pid, *worker.children()]

        assert [_nice(Path(f"/proc/{pid}/stat")) for pid in pids] == [7, 7, 7]


def test_every_thread_of_a_threads_pool_runs_at_the_configured_nice():
    with Worker(pool="threads", concurrency=3, env={"CELERY_WORKER_NICE": "5"}) as worker:
        tasks = Path(f"/proc/{worker.process.pid}/task")
        for index in range(30):  # the pool starts a thread when a task arrives
            noop.delay(index)
        assert wait_until(lambda: len(list(tasks.iterdir())) >= 2, timeout=15)

        assert {_nice(stat) for stat in tasks.glob("*/stat")} == {5}


def test_nice_zero_leaves_the_worker_at_the_starting_priority():
    with Worker(pool="prefork", concurrency=1, env={"CELERY_WORKER_NICE": "0"}) as worker:
        assert _nice(Path(f"/proc/{worker.process.pid}/stat")) == os.getpriority(os.PRIO_PROCESS, 0)


def test_the_level_is_clamped_and_never_raised_back():
    # In a child process: a priority once lowered cannot be raised again.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        levels = (worker_nice_apply(25), worker_nice_apply(3))
        os.write(write, f"{levels[0]} {levels[1]}".encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 64).decode() == "19 19"
