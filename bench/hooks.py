"""Loaded into benchmark workers with ``celery worker -I bench.hooks``.

Every finished task appends one line (task name, key, state, wall-clock time)
to a file of its own process under ``BENCH_OUTCOME_DIR``. The benchmark reads
those lines to know when the last task finished and how long each healing
took from dispatch to outcome, without a result backend and without adding a
broker or database round trip to the path it measures.
"""

from __future__ import annotations

import os
import threading
import time
from typing import IO, Any

from celery.signals import task_postrun

from healing.dispatch import heal_pairs

_DIR = os.environ.get("BENCH_OUTCOME_DIR", "")
# The thread pool runs tasks on many threads of one process; prefork children
# each open their own file after the fork.
_lock = threading.Lock()
_files: dict[int, IO[str]] = {}


def _file() -> IO[str]:
    pid = os.getpid()
    handle = _files.get(pid)
    if handle is None:
        # Line-buffered: a line is on disk when the task is done, so the
        # benchmark sees it without the worker having to shut down cleanly.
        handle = open(os.path.join(_DIR, f"{pid}.tsv"), "a", buffering=1)  # noqa: SIM115
        _files[pid] = handle
    return handle


@task_postrun.connect
def record_outcome(
    sender: Any = None,
    task_id: str | None = None,
    task: Any = None,
    args: tuple | None = None,
    state: str | None = None,
    retval: Any = None,
    **kwargs: Any,
) -> None:
    if not _DIR:
        return
    finished = time.time()
    if isinstance(retval, list):
        # A batch of healings: one line each, at the batch's end (a healing
        # committed earlier counts as finished then: the figures err slow).
        pairs = heal_pairs(args, kwargs.get("kwargs"))
        lines: list[tuple[Any, Any, Any]] = [
            (healing_id, "RETRY" if outcome in ("RETRY", "HANDED_ON") else state, outcome)
            for (healing_id, _), outcome in zip(pairs, retval, strict=False)
        ]
    else:
        key = args[0] if args else task_id
        lines = [(key, state, retval if isinstance(retval, str) else "")]
    with _lock:
        handle = _file()
        for key, row_state, outcome in lines:
            handle.write(f"{task.name}\t{key}\t{row_state}\t{outcome}\t{finished:.6f}\n")
