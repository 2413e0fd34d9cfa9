"""Keeping the machinery alive: heartbeats and broken database connections.

- :class:`Heartbeat` calls a function every few seconds on a thread of its own
  while a long step runs (a vendor call, a cycle), so a lease or a lock row
  stays fresh only as long as its holder is alive. The thread has its own
  database connection and closes it when it stops.
- :func:`connection_drop_broken` closes the connection only when it is
  unusable. Not Django's ``close_old_connections()``: that also closes a
  healthy connection whose autocommit differs, which is every connection
  inside a test's transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from django.db import connection, connections

logger = logging.getLogger("healing")


def connection_drop_broken(*, check: bool = True) -> bool:
    """Close the default connection if it is broken; True when it was closed.

    ``check=False`` trusts a connection on which no error happened (no round
    trip): the cheap variant for the heal task, which runs hundreds of times
    a second; an error there drops the connection before the retry anyway.
    """
    conn = connection
    if conn.in_atomic_block or conn.connection is None:
        return False
    if not check and not conn.errors_occurred:
        return False
    if conn.is_usable():
        conn.errors_occurred = False
        return False
    conn.close()
    return True


class Heartbeat:
    """Run ``beat`` every ``interval`` seconds until the block ends.

    ``beat`` returns False to stop beating (the lease was taken over); an
    exception in it is logged and the next beat tries again. The first beat
    comes one interval after the start: a short step never touches the
    database from the thread. Disabled (no thread) when ``enabled`` is False.
    """

    def __init__(
        self, *, interval: float, beat: Callable[[], bool], name: str, enabled: bool = True
    ) -> None:
        self.interval = interval
        self.beat = beat
        self.name = name
        self.enabled = enabled and interval > 0
        self.beats = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            # A beat in flight is bounded by the statement/lock timeouts.
            self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    alive = self.beat()
                except Exception:
                    logger.warning(
                        "heartbeat failed", extra={"heartbeat": self.name}, exc_info=True
                    )
                    continue
                self.beats += 1
                if not alive:
                    self.lost = True
                    return
        finally:
            connections.close_all()


def heartbeats_enabled() -> bool:
    """Threads beat on PostgreSQL only: SQLite (the single-process demo) has
    one writer at a time, and nothing else would take a lease over."""
    return connection.vendor == "postgresql"


# --- What the machinery is doing with a healing (issue 16, visibility) -------------

QUEUED = "queued"  # dispatched, no task has claimed it yet
RUNNING = "running"  # a task holds its lease
RETRYING = "retrying"  # waiting for its scheduled retry (next_attempt_at)
LEASE_EXPIRED = "lease_expired"  # its task was lost: awaiting re-dispatch
FINISHED = "finished"
MACHINERY_STATES = (QUEUED, RUNNING, RETRYING, LEASE_EXPIRED, FINISHED)


def machinery_state(
    *,
    recovery_status: str,
    lease_expires_at: datetime | None,
    next_attempt_at: datetime | None,
    now: datetime,
) -> str:
    """One of MACHINERY_STATES, so a wedged heal never looks like a running one."""
    if recovery_status not in ("PENDING", "IN_PROGRESS"):
        return FINISHED
    if lease_expires_at is not None and lease_expires_at < now:
        return LEASE_EXPIRED
    if next_attempt_at is not None:
        return RETRYING
    return QUEUED if recovery_status == "PENDING" else RUNNING
