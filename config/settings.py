"""Settings for the self-healing orders service.

Every value comes from the environment (12-factor). With nothing set the
service runs on an embedded default: a SQLite file and Celery tasks executed
in-process, so a newcomer can try it without any server.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from config.env import env_file_load
from config.logging import build_logging

BASE_DIR = Path(__file__).resolve().parent.parent

# `.env` (or ENV_FILE) completes the environment before anything reads it;
# variables already set win (config.env).
ENV_FILE_READ = env_file_load(base_dir=BASE_DIR)


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# --- Core -------------------------------------------------------------------

DEBUG = env_bool("DEBUG", default=False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and not env_bool("ALLOW_INSECURE_DEFAULTS", default=False):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment or in .env "
            "(cp .env.example .env), or set DEBUG=true for local development."
        )
    # Development default only: never used when DEBUG is off in production.
    SECRET_KEY = "dev-insecure-self-healing-orders-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "django_celery_beat",
    "rest_framework_api_key",
    # The project itself: the beat schedule's sync after migrate (config.beat).
    "config.apps.ProjectConfig",
    "orders",
    "healing",
    "notifications",
    "dashboard",
    "demo",
    "bench",  # manage.py bench_healing
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------

SQLITE_PATH = env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    }
    # --- Database timeouts and keepalives (issue 16) ---
    # No statement waits on a lock for long, no statement runs away, no
    # transaction left idle by a frozen worker holds its locks, and a
    # partitioned connection is noticed in about a minute, not two hours.
    # 0 turns a timeout off. Behind pgbouncer (transaction mode) the startup
    # "options" are not forwarded: set DB_SERVER_OPTIONS=false and put the
    # timeouts on the database role (ALTER ROLE ... SET), see README.
    DB_LOCK_TIMEOUT_MS = env_int("DB_LOCK_TIMEOUT_MS", 5000)
    DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 60000)
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS = env_int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60000)
    _postgres = "postgresql" in DATABASES["default"]["ENGINE"]
    # Behind pgbouncer in transaction mode (deploy/pgbouncer.ini): no
    # server-side cursors (they outlive the lent connection's transaction).
    DB_POOLER = env_str("DB_POOLER")
    if DB_POOLER == "pgbouncer":
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    if _postgres and env_bool("DB_SERVER_OPTIONS", default=DB_POOLER != "pgbouncer"):
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
            f"-c lock_timeout={DB_LOCK_TIMEOUT_MS} "
            f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS} "
            f"-c idle_in_transaction_session_timeout={DB_IDLE_IN_TRANSACTION_TIMEOUT_MS} "
            # JIT compiles a plan whose estimate passes jit_above_cost: on a
            # stuck-order scan after the clocks moved that was 190 ms of
            # compiling for a 30 ms query (issue 15). Short OLTP statements
            # never win it back.
            f"-c jit={'on' if env_bool('DB_JIT', default=False) else 'off'}"
        )
    if _postgres:
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            {
                "keepalives": 1,
                "keepalives_idle": env_int("DB_KEEPALIVES_IDLE", 30),
                "keepalives_interval": env_int("DB_KEEPALIVES_INTERVAL", 10),
                "keepalives_count": env_int("DB_KEEPALIVES_COUNT", 3),
            }
        )
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                # WAL lets the demo's web process read while the healing thread
                # writes; IMMEDIATE transactions take the write lock up front so
                # two writers queue on the busy timeout instead of failing with
                # "database is locked" on lock upgrade.
                "init_command": (
                    "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=20000;"
                ),
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
if env_str("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static -----------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []

ADMIN_URL = env_str("ADMIN_URL", "admin/")
LOGIN_URL = f"/{ADMIN_URL}login/"

# Request body limits: the API takes small JSON bodies only.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

# --- Security (safe defaults when DEBUG is off) -----------------------------

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$", r"^metrics$"]
X_FRAME_OPTIONS = "DENY"

# --- Cache ------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A Redis that drops packets must not hang a request: the
            # throttles and read caches fail open on the error (api.throttles).
            "OPTIONS": {
                "socket_connect_timeout": env_float("CACHE_SOCKET_TIMEOUT", 1.0),
                "socket_timeout": env_float("CACHE_SOCKET_TIMEOUT", 1.0),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -----------------------------------------------------------------

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
# No broker configured: tasks run in-process (the embedded default).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# Nothing reads task results: outcomes are rows in healing_actions.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = "UTC"
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 90)
# Healing tasks are short: a small prefetch keeps work spread across workers
# and limits what a killed worker holds unacknowledged.
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 4)
# Task events, for Flower (their cost: docs/BENCHMARK.md, issue 15). The
# worker's events feed Flower's live view and stay on. The task-sent event
# only adds Flower's "sent" state before "received" and makes every published
# heal task a second publish (0.7 ms of the cycle's fan-out per task), so it
# is off unless asked for.
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_WORKER_SEND_TASK_EVENTS", default=True)
CELERY_TASK_SEND_SENT_EVENT = env_bool("CELERY_TASK_SEND_SENT_EVENT", default=False)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "healing.tasks.heal_order": {"queue": "healing"},
    # bench_healing's broker-and-worker baseline drains on the same queue.
    "healing.tasks.noop": {"queue": "healing"},
    "healing.tasks.run_cycle": {"queue": "default"},
}
CELERY_WORKER_POOL = env_str("CELERY_WORKER_POOL", "prefork")
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", os.cpu_count() or 2)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Retry policy of heal_order (exponential backoff with full jitter, capped).
HEALING_TASK_MAX_RETRIES = env_int("HEALING_TASK_MAX_RETRIES", 5)
HEALING_TASK_BACKOFF_BASE = env_float("HEALING_TASK_BACKOFF_BASE", 2.0)
HEALING_TASK_BACKOFF_MAX = env_float("HEALING_TASK_BACKOFF_MAX", 120.0)

# The Redis visibility timeout must outlast the longest retry countdown plus
# the hard time limit, or Redis redelivers a task that is merely waiting.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int(
        "CELERY_VISIBILITY_TIMEOUT",
        int(HEALING_TASK_BACKOFF_MAX + CELERY_TASK_TIME_LIMIT + 3600),
    ),
    # kombu's default, spelled out: one list per step, step 0 consumed first.
    # healing.dispatch sends first heals at 6 and re-sends of lost ones at 0.
    "priority_steps": [0, 3, 6, 9],
}
# Celery's Django fix-up closes the connection after every task unless this is
# set; reusing it is the difference between ~76 and ~300 heals/s per machine.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)

# --- Celery: brokers across machines (issue 17) ---
# Redis or RabbitMQ (CELERY_BROKER_URL=amqp://user:pass@host:5672//). The two
# queues are declared explicitly so RabbitMQ keeps them durable (messages are
# persistent by default: a broker restart loses nothing queued). The visibility
# timeout above is a Redis transport option; the amqp transport ignores it.
# CELERY_QUEUE_TYPE=quorum declares replicated quorum queues instead (RabbitMQ
# 3.8+, a cluster of 3 to be worth it). Quorum queues refuse global QoS:
# worker_detect_quorum_queues makes the worker apply the prefetch per consumer,
# and countdown retries then go through Celery's native delayed delivery, which
# routes through topic exchanges only (on a direct one a retry would wait in the
# worker's memory until its ETA). tests/multihost/test_quorum_queues.py.
CELERY_QUEUE_TYPE = env_str("CELERY_QUEUE_TYPE", "classic")
if CELERY_QUEUE_TYPE not in ("classic", "quorum"):
    raise ImproperlyConfigured("CELERY_QUEUE_TYPE must be 'classic' or 'quorum'")
_QUEUE_ARGUMENTS = {"x-queue-type": "quorum"} if CELERY_QUEUE_TYPE == "quorum" else None
_EXCHANGE_TYPE = "topic" if CELERY_QUEUE_TYPE == "quorum" else "direct"
CELERY_TASK_QUEUES = tuple(
    Queue(
        name,
        Exchange(name, type=_EXCHANGE_TYPE),
        routing_key=name,
        durable=True,
        queue_arguments=_QUEUE_ARGUMENTS,
    )
    for name in ("healing", "default")
)
CELERY_WORKER_DETECT_QUORUM_QUEUES = True
if CELERY_QUEUE_TYPE == "quorum":
    CELERY_BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE = "quorum"

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
HEALING_TASK_EVENTS = env_bool("HEALING_TASK_EVENTS", default=True)
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

# --- Beat schedule (the single source) --------------------------------------

# django-celery-beat's database rows are made from this after every `migrate`
# (config.beat): a missing row is created, a row still on the last synced
# value follows a changed setting, a row edited in the admin is left alone.
HEALING_METRICS_ROLLUP_INTERVAL_SECONDS = env_int("HEALING_METRICS_ROLLUP_INTERVAL_SECONDS", 60)
HEALING_MONITORING_INTERVAL_SECONDS = env_int("HEALING_MONITORING_INTERVAL_SECONDS", 60)
NOTIFICATION_SWEEP_INTERVAL_SECONDS = env_int("NOTIFICATION_SWEEP_INTERVAL_SECONDS", 60)
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "self-healing cycle": {
        "task": "healing.tasks.run_cycle",
        "every_seconds": HEALING_CYCLE_INTERVAL_SECONDS,
        "kwargs": {"trigger": "BEAT"},
    },
    "healing metrics roll-up": {
        "task": "healing.tasks.metrics_rollup",
        "every_seconds": HEALING_METRICS_ROLLUP_INTERVAL_SECONDS,
    },
    "healing monitoring": {
        "task": "healing.tasks.monitoring_check",
        "every_seconds": HEALING_MONITORING_INTERVAL_SECONDS,
    },
    "healing lease sweeper": {
        "task": "healing.tasks.leases_sweep",
        "every_seconds": HEALING_SWEEP_SECONDS,
    },
    "admin notifications sweep": {
        "task": "notifications.tasks.notifications_sweep",
        "every_seconds": NOTIFICATION_SWEEP_INTERVAL_SECONDS,
    },
    # Expired Idempotency-Keys (orders.idempotency) are deleted hourly.
    "idempotency keys purge": {
        "task": "orders.tasks.idempotency_keys_purge",
        "every_seconds": 3600,
    },
}
for _name, _job in BEAT_SCHEDULE.items():
    if _job["every_seconds"] < 1:
        raise ImproperlyConfigured(f"the interval of {_name!r} must be at least 1 second")

# --- REST framework, JWT, OpenAPI -------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.RoleAutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PARSER_CLASSES": ["api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # A password change revokes every token (a hash of the password hash is a
    # claim, checked on each request and on refresh: api.auth).
    "CHECK_REVOKE_TOKEN": True,
    "SIGNING_KEY": env_str("JWT_SIGNING_KEY", SECRET_KEY),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Self-healing orders API",
    "DESCRIPTION": "Detects stuck marketplace orders, repairs them, and reports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's assets come from drf-spectacular-sidecar: no CDN needed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Path ids are integers, free text excludes NUL (api.schema; issue 20).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.postprocess_path_ids",
        "api.schema.postprocess_nul_free",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RecoveryActionEnum": "healing.models.RecoveryAction",
        "IssueTypeEnum": "healing.models.IssueType",
        "RecoveryStatusEnum": "healing.models.RecoveryStatus",
        # Every choice set behind a field named "status", named once
        # (otherwise drf_spectacular.W001 and a hashed name like Status1f3Enum).
        "OrderStatusEnum": "orders.models.OrderStatus",
        "CycleStatusEnum": "healing.models.CycleStatus",
        "HealthStatusEnum": ["ok", "unavailable"],
        # Redrive's two statuses: unnamed, they took RecoveryStatusEnum's name
        # and the schema offered all six (PENDING was a 400).
        "RedriveStatusEnum": ["FAILED", "MANUAL_REQUIRED"],
    },
}

# --- API --------------------------------------------------------------------

INSTALLED_APPS += ["drf_spectacular_sidecar", "api"]
# The web process (gunicorn) serves static files itself — Swagger UI's sidecar
# assets among them — straight from the app folders, so /api/docs/ works with
# no CDN, no collectstatic and no separate file server.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "api.middleware.StaticFilesMiddleware",
)
WHITENOISE_USE_FINDERS = True
# Throttles (api.throttles) read these per request, so tests can
# switch them off or change a rate with override_settings. Counters live in
# the default cache (Redis when REDIS_URL is set).
API_THROTTLE_ENABLED = env_bool("API_THROTTLE_ENABLED", default=True)
API_THROTTLE_RATES = {
    "auth": env_str("API_THROTTLE_AUTH_RATE", "20/min"),
    "healing": env_str("API_THROTTLE_HEALING_RATE", "30/min"),
}
# POST run-cycle waits this long for the cycle's healings, polling this often.
# Heavy reads (stuck-orders, statistics) are computed at most this often and
# served with their age (api.caching); 0 computes every request.
API_READ_CACHE_SECONDS = env_float("API_READ_CACHE_SECONDS", 5.0)
HEALING_API_WAIT_SECONDS = env_float("HEALING_API_WAIT_SECONDS", 10.0)
HEALING_API_POLL_SECONDS = env_float("HEALING_API_POLL_SECONDS", 0.25)
# How many reverse proxies in front of the web process append to
# X-Forwarded-For. The client address (throttling, /metrics access, logs) is
# the right-most hop they did not add; 0 = REMOTE_ADDR, the header ignored.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more")

# --- Logging ----------------------------------------------------------------

# JSON lines (python-json-logger) carrying cycle_id, healing_id, order_id,
# action and outcome; plain text when DEBUG is on. With LOG_DIR set, also the
# daily files combined-YYYY-MM-DD.log and error-YYYY-MM-DD.log.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_DIR = env_str("LOG_DIR")
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOGGING = build_logging(debug=LOG_FORMAT == "plain", level=LOG_LEVEL, log_dir=LOG_DIR)
# Celery's two INFO lines per task ("received", "succeeded in"): off with
# CELERY_TASK_INFO_LOGS=false (warnings and errors still log; issue 15).
if not env_bool("CELERY_TASK_INFO_LOGS", default=True):
    for _celery_logger in ("celery.app.trace", "celery.worker.strategy"):
        LOGGING.setdefault("loggers", {})[_celery_logger] = {"level": "WARNING"}

# --- Metrics (Prometheus /metrics) ------------------------------------------

# /metrics answers a request carrying "Authorization: Bearer <METRICS_TOKEN>",
# or one from an address in METRICS_ALLOWED_IPS (addresses or CIDR networks;
# loopback by default; METRICS_ALLOWED_IPS= empty allows no address, so only
# the token opens it).
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", "127.0.0.1/32,::1/128")
# Behind a reverse proxy the address checked is the trusted-proxy rule's
# (TRUSTED_PROXY_COUNT, api.clients). The old METRICS_TRUST_X_FORWARDED_FOR=true
# means one trusted proxy; it never again trusts the client's own first entry.
METRICS_TRUST_X_FORWARDED_FOR = env_bool("METRICS_TRUST_X_FORWARDED_FOR", default=False)
if METRICS_TRUST_X_FORWARDED_FOR and "TRUSTED_PROXY_COUNT" not in os.environ:
    TRUSTED_PROXY_COUNT = 1

# --- Security: login lockout, CSP -------------------------------------------

# The admin and dashboard login forms lock out (django-axes) after
# LOGIN_FAILURE_LIMIT failures per username or per client address, for
# LOGIN_COOLOFF_MINUTES; a success resets the count. Lockouts are rows in the
# admin ("Axes" section) and a WARNING in the log. The API's token endpoint is
# throttled by api.throttles instead (config.lockout.lockout_exempt).
INSTALLED_APPS += ["axes"]
AUTHENTICATION_BACKENDS = [
    "config.lockout.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AXES_ENABLED = env_bool("LOGIN_LOCKOUT_ENABLED", default=True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "axes/lockout.html"
# The log names the username and address locked (axes masks both by default).
AXES_SENSITIVE_PARAMETERS: list[str] = []
# The same client address as throttling and /metrics: TRUSTED_PROXY_COUNT hops.
AXES_CLIENT_IP_CALLABLE = "api.clients.client_address"
AXES_WHITELIST_CALLABLE = "config.lockout.lockout_exempt"
# Content-Security-Policy on every response (config.middleware).
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "config.middleware.ContentSecurityPolicyMiddleware",
)
CSP_ENABLED = env_bool("CSP_ENABLED", default=True)
CSP_REPORT_ONLY = env_bool("CSP_REPORT_ONLY", default=False)
CSP_REPORT_URI = env_str("CSP_REPORT_URI")

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
