"""Keeping the machinery alive: heartbeats and broken database connections.

- :class:`Heartbeat` calls a function every few seconds while a long step
  runs (a vendor call, a cycle), so a lease or a lock row stays fresh only as
  long as its holder is alive. One thread per process runs every heartbeat,
  on a database connection of its own that it closes when none is left.
- :func:`connection_drop_broken` closes the connection only when it is
  unusable. Not Django's ``close_old_connections()``: that also closes a
  healthy connection whose autocommit differs, which is every connection
  inside a test's transaction.
- Each worker's report of the healings it holds, and a liveness key, so the
  sweeper re-dispatches a dead worker's healings at once (below).
"""

from __future__ import annotations

import base64
import heapq
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down
from django.conf import settings
from django.db import connection, connections

from healing.dispatch import heal_pairs

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
    database from the thread. Disabled when ``enabled`` is False.

    Every heartbeat of a process is run by one shared thread (:class:`_Beater`):
    a heal wraps each vendor call in one, and starting and joining a thread
    per call cost ~12 % of a heal's time (docs/BENCHMARK.md "Heal path, issue
    15"). Entering and leaving is a heap push and a flag under a lock; when the
    block ends no beat of it runs any more (a beat in flight is waited for).
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
        self.due = 0.0
        self.stopped = False
        self.running = threading.Lock()  # held while one of its beats runs

    def __lt__(self, other: Heartbeat) -> bool:
        return self.due < other.due

    def __enter__(self) -> Heartbeat:
        if self.enabled:
            self.stopped = False
            self.due = time.monotonic() + self.interval
            _beater().add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A beat in flight is bounded by the statement/lock timeouts.
        with self.running:
            self.stopped = True

    def run_once(self) -> bool:
        """One beat, unless the block has ended; True to be scheduled again."""
        with self.running:
            if self.stopped:
                return False
            try:
                alive = self.beat()
            except Exception:
                logger.warning("heartbeat failed", extra={"heartbeat": self.name}, exc_info=True)
                # The thread's connection may be what failed: a new one next time.
                connections.close_all()
                return True
            self.beats += 1
            if not alive:
                self.lost = True
                return False
            return True


class _Beater:
    """The process's heartbeat thread: runs each registered heartbeat when it is due.

    The thread starts with the first heartbeat and ends after
    ``IDLE_SECONDS`` with none; it has its own database connection, opened by
    the first beat that needs one and closed whenever no heartbeat is left.
    """

    IDLE_SECONDS = 2.0

    def __init__(self) -> None:
        self._due: list[Heartbeat] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, heartbeat: Heartbeat) -> None:
        with self._wake:
            heapq.heappush(self._due, heartbeat)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)
                self._thread.start()
            elif self._due[0] is heartbeat:
                self._wake.notify()

    def _next(self) -> Heartbeat | None:
        """The next heartbeat once it is due; None when idle long enough to stop."""
        with self._wake:
            idle_since = time.monotonic()
            while True:
                while self._due and self._due[0].stopped:
                    heapq.heappop(self._due)
                now = time.monotonic()
                if self._due:
                    first = self._due[0]
                    if first.due <= now:
                        return heapq.heappop(self._due)
                    self._wake.wait(first.due - now)
                    idle_since = time.monotonic()
                elif now - idle_since >= self.IDLE_SECONDS:
                    self._thread = None
                    return None
                else:
                    self._wake.wait(self.IDLE_SECONDS - (now - idle_since))

    def _run(self) -> None:
        try:
            while (heartbeat := self._next()) is not None:
                if heartbeat.run_once():
                    heartbeat.due = time.monotonic() + heartbeat.interval
                    with self._wake:
                        heapq.heappush(self._due, heartbeat)
                elif not self._due:
                    connections.close_all()
        finally:
            connections.close_all()


_beaters: dict[int, _Beater] = {}
_beaters_lock = threading.Lock()


def _beater() -> _Beater:
    """This process's beater (a forked child gets its own: threads do not fork)."""
    pid = os.getpid()
    beater = _beaters.get(pid)
    if beater is None:
        with _beaters_lock:
            beater = _beaters.setdefault(pid, _Beater())
    return beater


def _forget_beaters() -> None:
    # A child forked while the parent's beater held its lock must not inherit it.
    global _beaters_lock
    _beaters.clear()
    _beaters_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_beaters)


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


# --- Which healings each worker holds (issue 16: a whole worker's death) -----------
#
# A worker SIGKILLed as a whole takes its prefetched messages with it: on Redis
# they stay unacknowledged until the visibility timeout (an hour), and the
# healings they carry wait for their queue-wait lease (10 minutes). So every
# worker's main process reports, every HEALING_WORKER_BEAT_SECONDS, the heal
# tasks it holds (running and prefetched) and refreshes a liveness key that
# expires HEALING_WORKER_DEAD_SECONDS after its last beat. The sweeper treats
# the healings of a worker whose key expired as lost at once. Off without
# REDIS_URL (the single-process demo). A worker shutting down (SIGTERM) drops
# its report first: its running heals finish under their leases and Celery
# hands its prefetched messages back to the broker.

WORKERS_KEY = "healing:workers"  # hash: worker id -> JSON [[healing id, token, started]]
ALIVE_KEY = "healing:worker-alive:"  # + worker id; expires when the worker stops beating

Held = tuple[int, str, float | None]  # healing id, token it was sent with, started (epoch)

_beat_state: dict[str, Any] = {"worker": None, "stopped": False}


def _redis(*, fresh: bool = False) -> Any:
    """The Redis of REDIS_URL, or None. ``fresh``: a client of its own (a
    signal handler must not share a connection the interrupted code may hold)."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    if fresh:
        return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    client = _beat_state.get("client")
    if client is None:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        _beat_state["client"] = client
    return client


def worker_held(requests: Iterable[Any], *, task_name: str) -> list[Held]:
    """The (healing id, token, started) of each ``task_name`` request."""
    held: list[Held] = []
    for request in requests:
        if request.name != task_name:
            continue
        for healing_id, token in heal_pairs(request.args, request.kwargs):
            held.append((healing_id, token, request.time_start))
    return held


def _worker_beat() -> None:
    worker, client = _beat_state["worker"], _redis()
    if worker is None or client is None or _beat_state["stopped"]:
        return
    from celery.worker import state

    from healing.dispatch import HEAL_ORDER

    try:
        requests = [*state.active_requests, *state.reserved_requests]
    except RuntimeError:  # changed size while copied (a pool without the event loop)
        return
    held = worker_held(requests, task_name=HEAL_ORDER)
    try:
        with client.pipeline() as pipe:
            pipe.hset(WORKERS_KEY, worker, json.dumps(held))
            pipe.set(ALIVE_KEY + worker, 1, px=int(settings.HEALING_WORKER_DEAD_SECONDS * 1000))
            pipe.execute()
    except redis.RedisError:
        logger.warning("worker liveness report failed", extra={"worker": worker}, exc_info=True)


@worker_ready.connect
def _worker_beat_start(sender: Any = None, **kwargs: Any) -> None:
    """In the worker's main process once it consumes: beat now and then on its timer."""
    if _redis() is None or settings.HEALING_WORKER_BEAT_SECONDS <= 0:
        return
    _beat_state["worker"] = f"{getattr(sender, 'hostname', 'worker')}:{os.getpid()}"
    _worker_beat()
    sender.timer.call_repeatedly(settings.HEALING_WORKER_BEAT_SECONDS, _worker_beat)


@worker_shutting_down.connect
@worker_shutdown.connect
def _worker_beat_stop(**kwargs: Any) -> None:
    worker = _beat_state["worker"]
    _beat_state["stopped"] = True
    client = _redis(fresh=True)
    if worker is None or client is None:
        return
    try:
        client.hdel(WORKERS_KEY, worker)
        client.delete(ALIVE_KEY + worker)
    except redis.RedisError:
        logger.warning("worker liveness report not removed", extra={"worker": worker})


def workers_lost() -> list[tuple[str, list[Held]]]:
    """Each worker whose liveness key expired, with the healings it last held."""
    client = _redis()
    if client is None:
        return []
    reports = client.hgetall(WORKERS_KEY)
    if not reports:
        return []
    names = [name.decode() if isinstance(name, bytes) else str(name) for name in reports]
    with client.pipeline() as pipe:
        for name in names:
            pipe.exists(ALIVE_KEY + name)
        alive = pipe.execute()
    lost = []
    for name, raw, is_alive in zip(names, reports.values(), alive, strict=True):
        if not is_alive:
            held = [
                (int(h), str(t), None if s is None else float(s)) for h, t, s in json.loads(raw)
            ]
            lost.append((name, held))
    return lost


def workers_forget(names: Iterable[str]) -> None:
    """Drop the reports of workers whose healings were re-dispatched."""
    client, names = _redis(), list(names)
    if client is not None and names:
        client.hdel(WORKERS_KEY, *names)


def workers_alive_held() -> set[tuple[int, str]]:
    """(healing id, token) of every heal a live worker reports holding."""
    client = _redis()
    if client is None:
        return set()
    reports = client.hgetall(WORKERS_KEY)
    names = [name.decode() if isinstance(name, bytes) else str(name) for name in reports]
    with client.pipeline() as pipe:
        for name in names:
            pipe.exists(ALIVE_KEY + name)
        alive = pipe.execute()
    held: set[tuple[int, str]] = set()
    for raw, is_alive in zip(reports.values(), alive, strict=True):
        if is_alive:
            held |= {(int(h), str(t)) for h, t, _ in json.loads(raw)}
    return held


def broker_orphans(*, now: float, min_age: float, task_name: str) -> list[Held]:
    """Heal messages a Redis broker delivered more than ``min_age`` seconds ago
    and no live worker reports holding: their consumer died with them.

    Read from kombu's Redis transport, which keeps every delivered and not yet
    acknowledged message in a hash (``unacked``) with its delivery time in a
    sorted set (``unacked_index``) until the visibility timeout (an hour)
    puts it back. A message with an ETA (a retry's countdown) counts from
    that. "started" is the delivery time: a claim since then is the holder's.
    Empty on other brokers: RabbitMQ requeues a dead consumer's messages.
    """
    url = str(settings.CELERY_BROKER_URL or "")
    if not url.startswith(("redis://", "rediss://")):
        return []
    options: dict[str, Any] = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    index_key = str(options.get("unacked_index_key", "unacked_index"))
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        scored: list[Any] = list(
            client.zrangebyscore(index_key, "-inf", now - min_age, withscores=True)
        )
        tags = [tag for tag, _ in scored]
        raws: list[Any] = (
            list(client.hmget(str(options.get("unacked_key", "unacked")), tags)) if tags else []
        )
    finally:
        client.close()
    scores = [float(score) for _, score in scored]
    live = workers_alive_held()
    orphans: list[Held] = []
    for raw, delivered in zip(raws, scores, strict=True):
        for healing_id, token, eta in _heal_message(raw, task_name=task_name):
            if (healing_id, token) in live:
                continue
            if eta is not None and eta > now - min_age:
                continue
            orphans.append((healing_id, token, delivered))
    return orphans


# Read from a queue's lists this many messages a round trip.
QUEUE_SCAN_CHUNK = 1000


def broker_tokens(*, queues: Iterable[str], task_name: str) -> set[str] | None:
    """The claim token of every healing a Redis broker still holds a
    ``task_name`` message for: waiting in one of ``queues`` (each of its
    priority lists) or delivered and not yet acknowledged. None on other
    brokers, which keep no such record to read.

    The queues are read before the unacknowledged hash: a message moving
    from the one to the other meanwhile is seen in the second. The one
    moment no structure holds it is inside a consumer, between kombu's
    BRPOP and its write to the hash; a message caught there looks lost, and
    re-sending it costs a delivery that finds its token stale.
    """
    url = str(settings.CELERY_BROKER_URL or "")
    if not url.startswith(("redis://", "rediss://")):
        return None
    options: dict[str, Any] = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    sep = str(options.get("sep", "\x06\x16"))
    steps = [int(step) for step in options.get("priority_steps", [0, 3, 6, 9])]
    lists = [queue if not step else f"{queue}{sep}{step}" for queue in queues for step in steps]
    tokens: set[str] = set()
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    try:
        for name in lists:
            start = 0
            while True:
                chunk = client.lrange(name, start, start + QUEUE_SCAN_CHUNK - 1)
                for raw in chunk:
                    tokens.update(token for _, token, _ in _heal_payload(raw, task_name))
                if len(chunk) < QUEUE_SCAN_CHUNK:
                    break
                start += QUEUE_SCAN_CHUNK
        unacked = client.hvals(str(options.get("unacked_key", "unacked")))
    finally:
        client.close()
    for raw in unacked:
        tokens.update(token for _, token, _ in _heal_message(raw, task_name=task_name))
    return tokens


def _heal_payload(raw: bytes | str, task_name: str) -> list[Held]:
    """The healings of a message as a queue's list holds it (no envelope)."""
    try:
        return _heal_parse(json.loads(raw), task_name=task_name)
    except (ValueError, TypeError):
        return []


def _heal_message(raw: bytes | str | None, *, task_name: str) -> list[Held]:
    """(healing id, token, ETA epoch or None) of each healing a kombu Redis
    payload of ``task_name`` carries (several for a batch)."""
    if raw is None:
        return []
    try:
        return _heal_parse(json.loads(raw)[0], task_name=task_name)
    except (ValueError, KeyError, IndexError, TypeError):
        return []


def _heal_parse(message: Any, *, task_name: str) -> list[Held]:
    try:
        headers = message.get("headers") or {}
        if headers.get("task") != task_name:
            return []
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs = json.loads(body)[:2]
        eta = headers.get("eta")
        at = datetime.fromisoformat(eta).timestamp() if eta else None
        return [(healing_id, token, at) for healing_id, token in heal_pairs(args, kwargs)]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return []
