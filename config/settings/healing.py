"""Settings, part 3: healing, the vendor gateway and edges, notifications, vendor health."""

from __future__ import annotations

from .base import env_bool, env_float, env_int, env_list, env_str

# --- Healing ----------------------------------------------------------------

HEALING_CYCLE_INTERVAL_SECONDS = env_int("HEALING_CYCLE_INTERVAL_SECONDS", 300)
# --- Healing: leases, sweeper, cycle lock (issue 16) ---
# A claimed healing's lease: renewed by its running task (at claim, during and
# after a long vendor call); once it runs out the sweeper re-dispatches it.
HEALING_LEASE_SECONDS = env_int("HEALING_LEASE_SECONDS", 60)
# The lease must outlast the vendor gateway timeout by this (check healing.E002).
HEALING_LEASE_MARGIN_SECONDS = env_float("HEALING_LEASE_MARGIN_SECONDS", 10.0)
# How often a running heal renews its lease during a long vendor call.
HEALING_LEASE_RENEW_SECONDS = env_float(
    "HEALING_LEASE_RENEW_SECONDS", max(HEALING_LEASE_SECONDS / 3, 0.1)
)
# A dispatched healing no task has claimed yet waits in the queue: its lease
# covers the queue's drain time at a backlog, or queued tasks get re-sent.
HEALING_DISPATCH_LEASE_SECONDS = env_int("HEALING_DISPATCH_LEASE_SECONDS", 600)
# Reassignment (issue 15 H5): at most this many offers to one vendor per
# minute (issue 18; 0: no limit), and each healing picks among the best
# HEALING_REASSIGN_SPREAD candidates by its id (issue 16; 1: always the best),
# so concurrent reassignments do not all queue on one vendor's row.
HEALING_VENDOR_OFFERS_PER_MINUTE = env_int("HEALING_VENDOR_OFFERS_PER_MINUTE", 0)
HEALING_REASSIGN_SPREAD = env_int("HEALING_REASSIGN_SPREAD", 1)
# A vendor with at most this many free slots ranks after every roomier one
# (issue 16): a full vendor that gets one slot back no longer draws every heal
# in flight into a race for it (9 % of heals retried at a 25,000-order
# backlog; 0 with it, bench.reassign_backlog). Cover the reassignments that
# run at once: worker hosts x pool processes (threads). 0: rank by rate only.
HEALING_REASSIGN_HEADROOM = env_int("HEALING_REASSIGN_HEADROOM", 8)
# Celery task events (received/started/succeeded) for heal_order, three broker
# messages a heal from the worker's main process: on the quiet 2-core run 8
# they cost a quarter of the throughput (242 heals/s with them, 320/s
# without; docs/BENCHMARK.md). Off by default: Flower still shows the workers,
# the queues and every other task, and each heal's state is its healing row
# (API, dashboard, /metrics). true shows every heal in Flower's task views.
HEALING_TASK_EVENTS = env_bool("HEALING_TASK_EVENTS", default=False)
# The lease sweeper (beat): expired leases re-dispatched between cycles.
HEALING_SWEEP_SECONDS = env_int("HEALING_SWEEP_SECONDS", 15)
HEALING_SWEEP_BATCH = env_int("HEALING_SWEEP_BATCH", 500)
HEALING_SWEEP_MAX_BATCHES = env_int("HEALING_SWEEP_MAX_BATCHES", 20)
# Each worker reports the heals it holds every HEALING_WORKER_BEAT_SECONDS (in
# Redis, REDIS_URL); one silent for HEALING_WORKER_DEAD_SECONDS is dead and the
# sweeper re-sends its healings without waiting for their leases (0: off).
HEALING_WORKER_BEAT_SECONDS = env_float("HEALING_WORKER_BEAT_SECONDS", 5.0)
HEALING_WORKER_DEAD_SECONDS = env_float("HEALING_WORKER_DEAD_SECONDS", 20.0)
# The RUNNING cycle row's heartbeat: refreshed while the cycle works; a row
# whose heartbeat is older than the stale age is abandoned (its holder died).
HEALING_CYCLE_HEARTBEAT_SECONDS = env_float("HEALING_CYCLE_HEARTBEAT_SECONDS", 10.0)
HEALING_CYCLE_STALE_SECONDS = env_int("HEALING_CYCLE_STALE_SECONDS", 60)
# Stuck orders a cycle detects and writes per batch: a long outage's backlog
# (100k stuck) is never held in memory at once (issue 15).
HEALING_CYCLE_BATCH = env_int("HEALING_CYCLE_BATCH", 5000)
# Deploy-safety checks (healing.checks, E001...) a deployment knowingly
# overrides, e.g. the fault suite's shortened leases.
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS")
# A cycle row left running longer than this (a crashed cycle) no longer blocks.
HEALING_CYCLE_LOCK_SECONDS = env_int("HEALING_CYCLE_LOCK_SECONDS", 900)
HEALING_GUARD_MIN_STUCK = env_int("HEALING_GUARD_MIN_STUCK", 2000)
HEALING_GUARD_MAX_SHARE = env_float("HEALING_GUARD_MAX_SHARE", 0.5)
HEALING_STARTUP_DELAY_SECONDS = env_int("HEALING_STARTUP_DELAY_SECONDS", 10)
# Threads publishing a cycle's tasks: sending is bound by broker round trips.
HEALING_DISPATCH_THREADS = env_int("HEALING_DISPATCH_THREADS", 8)
# Messages buffered per Redis round trip when a cycle publishes (kombu Producer.batch).
HEALING_DISPATCH_BATCH = env_int("HEALING_DISPATCH_BATCH", 500)
# Healings one heal task runs, one after another, when a cycle sends many
# (each keeps its own claim, lease and outcome): Celery's cost per task is
# shared by them. A dispatch is never split into fewer than
# HEALING_TASK_BATCH_MIN_TASKS tasks, so a small cycle keeps its parallelism;
# re-sends of lost healings always go one a task. 1 turns batching off.
HEALING_TASK_BATCH = env_int("HEALING_TASK_BATCH", 10)
HEALING_TASK_BATCH_MIN_TASKS = env_int("HEALING_TASK_BATCH_MIN_TASKS", 32)
HEALING_RUN_ON_WORKER_START = env_bool("HEALING_RUN_ON_WORKER_START", default=True)

# --- Vendor gateway ---------------------------------------------------------

# record (default): record messages only; webhook: POST to the vendor's URL;
# simulated: answer with configured latency and failure rate (demo, bench).
VENDOR_GATEWAY_BACKEND = env_str("VENDOR_GATEWAY_BACKEND", "record")
VENDOR_GATEWAY_TIMEOUT_SECONDS = env_float("VENDOR_GATEWAY_TIMEOUT_SECONDS", 5.0)
VENDOR_GATEWAY_SIM_LATENCY_MS = env_float("VENDOR_GATEWAY_SIM_LATENCY_MS", 0.0)
VENDOR_GATEWAY_SIM_FAILURE_RATE = env_float("VENDOR_GATEWAY_SIM_FAILURE_RATE", 0.0)

# --- Vendor and marketplace edges (issue 14) --------------------------------

# After a rotation the previous webhook secret keeps signing (a second
# signature) and the previous API key keeps working for this long.
VENDOR_SECRET_GRACE_SECONDS = env_int("VENDOR_SECRET_GRACE_SECONDS", 24 * 3600)
# Idempotency-Key rows are replayed for this long, then a key may be reused.
IDEMPOTENCY_KEY_TTL_SECONDS = env_int("IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600)
# How long a request waits for a concurrent one holding the same key.
IDEMPOTENCY_WAIT_SECONDS = env_float("IDEMPOTENCY_WAIT_SECONDS", 10.0)

# --- Notifications ----------------------------------------------------------

# Channels per severity (comma-separated: dashboard, email, webhook, sms,
# whatsapp). A listed channel that is not configured below is left out, so the
# defaults are safe: with nothing set, only the dashboard and the console email.
NOTIFICATION_CHANNELS = {
    "LOW": env_list("NOTIFICATION_CHANNELS_LOW", "dashboard"),
    "MEDIUM": env_list("NOTIFICATION_CHANNELS_MEDIUM", "dashboard,email"),
    "HIGH": env_list("NOTIFICATION_CHANNELS_HIGH", "dashboard,email,webhook"),
    "CRITICAL": env_list("NOTIFICATION_CHANNELS_CRITICAL", "dashboard,email,webhook,sms,whatsapp"),
}
# Email: Django's mail framework; console unless SMTP is configured.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if env_str("EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "self-healing@localhost")
NOTIFICATION_EMAIL_TO = env_list("NOTIFICATION_EMAIL_TO", "admins@localhost")
# Webhook: JSON POST with a Slack-compatible body; off while the URL is empty.
NOTIFICATION_WEBHOOK_URL = env_str("NOTIFICATION_WEBHOOK_URL")
NOTIFICATION_HTTP_TIMEOUT_SECONDS = env_float("NOTIFICATION_HTTP_TIMEOUT_SECONDS", 5.0)
# SMS and WhatsApp: one HTTP messaging gateway (bearer token); off by default.
NOTIFICATION_MESSAGING_GATEWAY_URL = env_str("NOTIFICATION_MESSAGING_GATEWAY_URL")
NOTIFICATION_MESSAGING_GATEWAY_TOKEN = env_str("NOTIFICATION_MESSAGING_GATEWAY_TOKEN")
NOTIFICATION_SMS_ENABLED = env_bool("NOTIFICATION_SMS_ENABLED", default=False)
NOTIFICATION_SMS_TO = env_list("NOTIFICATION_SMS_TO")
NOTIFICATION_WHATSAPP_ENABLED = env_bool("NOTIFICATION_WHATSAPP_ENABLED", default=False)
NOTIFICATION_WHATSAPP_TO = env_list("NOTIFICATION_WHATSAPP_TO")
# Absolute links in messages ("https://ops.example.com"); relative when empty.
NOTIFICATION_ADMIN_BASE_URL = env_str("NOTIFICATION_ADMIN_BASE_URL")
# Delivery retries per channel: capped exponential backoff with jitter.
NOTIFICATION_DELIVERY_MAX_RETRIES = env_int("NOTIFICATION_DELIVERY_MAX_RETRIES", 5)
NOTIFICATION_DELIVERY_BACKOFF_BASE = env_float("NOTIFICATION_DELIVERY_BACKOFF_BASE", 5.0)
NOTIFICATION_DELIVERY_BACKOFF_MAX = env_float("NOTIFICATION_DELIVERY_BACKOFF_MAX", 300.0)
# A delivery with no attempt for this long (a lost task) is sent again by the sweep.
NOTIFICATION_REDELIVER_AFTER_SECONDS = env_int("NOTIFICATION_REDELIVER_AFTER_SECONDS", 900)
# Re-notify unacknowledged CRITICAL and HIGH notifications.
NOTIFICATION_RENOTIFY_INTERVAL_MINUTES = env_int("NOTIFICATION_RENOTIFY_INTERVAL_MINUTES", 30)
NOTIFICATION_RENOTIFY_LIMIT = env_int("NOTIFICATION_RENOTIFY_LIMIT", 3)
# System alert: healing failure rate over a window (the seed's 20 %); the
# MEDIUM early warning fires above half of it.
NOTIFICATION_FAILURE_RATE_THRESHOLD = env_float("NOTIFICATION_FAILURE_RATE_THRESHOLD", 0.2)
NOTIFICATION_FAILURE_RATE_WINDOW_MINUTES = env_int("NOTIFICATION_FAILURE_RATE_WINDOW_MINUTES", 60)
NOTIFICATION_FAILURE_RATE_MIN_HEALINGS = env_int("NOTIFICATION_FAILURE_RATE_MIN_HEALINGS", 10)
# LOW early warning: a vendor whose orders were detected stuck this often in a day.
NOTIFICATION_VENDOR_TIMEOUTS_PER_DAY = env_int("NOTIFICATION_VENDOR_TIMEOUTS_PER_DAY", 3)

# --- Vendor health, calendars and silences (issue 18) -------------------------
# A vendor's circuit opens after VENDOR_CIRCUIT_FAILURE_THRESHOLD gateway
# failures within VENDOR_CIRCUIT_WINDOW_SECONDS; after
# VENDOR_CIRCUIT_COOLDOWN_SECONDS one probe may go (its lease:
# VENDOR_CIRCUIT_PROBE_SECONDS). State in PostgreSQL (orders.health).
VENDOR_CIRCUIT_FAILURE_THRESHOLD = env_int("VENDOR_CIRCUIT_FAILURE_THRESHOLD", 5)
VENDOR_CIRCUIT_WINDOW_SECONDS = env_int("VENDOR_CIRCUIT_WINDOW_SECONDS", 300)
VENDOR_CIRCUIT_COOLDOWN_SECONDS = env_int("VENDOR_CIRCUIT_COOLDOWN_SECONDS", 60)
VENDOR_CIRCUIT_PROBE_SECONDS = env_int("VENDOR_CIRCUIT_PROBE_SECONDS", 30)
# The simulated gateway fails every call to these vendor ids (demo and tests).
VENDOR_GATEWAY_SIM_FAILING_VENDORS = [
    int(value) for value in env_list("VENDOR_GATEWAY_SIM_FAILING_VENDORS") if value.strip()
]
