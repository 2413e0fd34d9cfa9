"""gunicorn settings for the web process (Procfile: gunicorn -c config/gunicorn.py).

Threads (gthread): POST run-cycle waits up to HEALING_API_WAIT_SECONDS for its
healings, and the API's reads are mostly database waits, so a sync worker per
request would queue every other caller behind them (issue 20 item 16, issue 21
item 7). Each worker serves WEB_THREADS requests at once; Django opens one
database connection per thread, so workers x threads is the connection budget.

Every value comes from the environment (12-factor) and is read once, when
gunicorn loads this file.
"""

from __future__ import annotations

import os

import gunicorn.http.wsgi


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_env_int('PORT', 8000)}"
workers = _env_int("WEB_CONCURRENCY", 3)
worker_class = "gthread"
threads = _env_int("WEB_THREADS", 4)
# A request that runs longer than this (the run-cycle wait is 10 s) is a bug.
timeout = _env_int("WEB_TIMEOUT", 60)
graceful_timeout = _env_int("WEB_GRACEFUL_TIMEOUT", 30)
keepalive = _env_int("WEB_KEEPALIVE", 5)
# Recycle workers now and then (jittered so they do not restart together).
max_requests = _env_int("WEB_MAX_REQUESTS", 5000)
max_requests_jitter = _env_int("WEB_MAX_REQUESTS_JITTER", 500)
accesslog = os.environ.get("WEB_ACCESS_LOG", "-")
errorlog = "-"
# The proxy in front (TRUSTED_PROXY_COUNT) terminates TLS; gunicorn itself
# does not interpret X-Forwarded-* (Django does, see api.clients).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# No "Server: gunicorn" banner (issue 21 item 6). gunicorn has no setting for
# it: every response carries "Server: <gunicorn.http.wsgi.SERVER>", and an
# application's own Server header is sent as a second one, not instead. The
# name is read per response, so replacing it here, before the workers fork,
# applies to all of them. tests/test_security_gunicorn.py starts gunicorn and
# checks the header, so an upgrade that moves the name fails a test instead of
# bringing the banner back silently. A reverse proxy in front should drop the
# header as well (nginx: "proxy_hide_header Server; server_tokens off;").
SERVER_HEADER = os.environ.get("WEB_SERVER_HEADER", "")
gunicorn.http.wsgi.SERVER = SERVER_HEADER
