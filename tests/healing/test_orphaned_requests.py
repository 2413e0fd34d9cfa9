"""A heal whose pool child died without Celery reporting the job lost is rescued
on the next liveness beat (healing.sweeper.requests_orphaned_rescue).

The fault suite's recovery-time test proves it end to end (a child SIGKILLed
just after accepting a heal left the healing waiting for its lease in about
one kill in three); this checks which requests qualify."""

from __future__ import annotations

import os
import subprocess
import sys

from healing.sweeper import requests_orphaned_rescue


class FakeHealRequest:
    """What the check reads of a HealRequest: the child's pid, args, the rescue."""

    def __init__(self, worker_pid: int | None, *, rescued: bool = False) -> None:
        self.worker_pid = worker_pid
        self.args = [7, "token"]
        self.kwargs: dict = {}
        self._healing_rescued = rescued
        self.rescues = 0

    def _rescue(self) -> None:
        self.rescues += 1
        self._healing_rescued = True


class OtherRequest:
    worker_pid = 1
    args = [1, "x"]


def _exited_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_only_a_started_heal_whose_child_is_gone_is_rescued_and_only_once():
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        gone = FakeHealRequest(_exited_pid())
        running = FakeHealRequest(alive.pid)
        not_started = FakeHealRequest(None)
        thread_pool = FakeHealRequest(os.getpid())  # runs in the main process itself
        already = FakeHealRequest(_exited_pid(), rescued=True)
        requests = [gone, running, not_started, thread_pool, already, OtherRequest()]

        assert requests_orphaned_rescue(requests) == 1
        assert requests_orphaned_rescue(requests) == 0  # the next beat: done already
    finally:
        alive.kill()
        alive.wait()
    assert [r.rescues for r in (gone, running, not_started, thread_pool, already)] == [
        1,
        0,
        0,
        0,
        0,
    ]


def test_a_child_that_died_but_is_not_reaped_yet_counts_as_gone():
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, still a zombie
        request = FakeHealRequest(zombie.pid)
        assert requests_orphaned_rescue([request]) == 1
    finally:
        zombie.wait()
