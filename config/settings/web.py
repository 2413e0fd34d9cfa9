"""Settings, part 5: REST framework, JWT, OpenAPI, the API, logging, metrics,
login lockout and CSP.

Adds its apps and middleware to the lists defined in ``base``.
"""

from __future__ import annotations

import os
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from config.logging import build_logging

from .base import (
    DEBUG,
    INSTALLED_APPS,
    MIDDLEWARE,
    SECRET_KEY,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
)

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
