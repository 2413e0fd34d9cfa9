"""The web process as the Procfile runs it (gunicorn -c config/gunicorn.py), on a free port.

For tests that need a real HTTP client against a real server: schemathesis'
CLI, promtool on a live /metrics. The server reads the database pytest-django
made, so its test must commit its rows (``django_db(transaction=True)``), and
signs and checks JWTs with the test process's SECRET_KEY. No broker unless the
caller passes one: tasks run in the web process, as in the unit phase.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings

from tests.integration.workers import ROOT, test_database_url
from tests.multihost.hosts import procfile_argv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_web(tmp_path: Path, **env: str) -> Iterator[str]:
    """Start gunicorn; yield its base URL (http://127.0.0.1:<port>); stop it."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "HEALING_RUN_ON_WORKER_START": "false",
        **env,
    }
    environment.pop("TEST_DATABASE_NAME", None)
    if "CELERY_BROKER_URL" not in env:
        environment.pop("CELERY_BROKER_URL", None)
    log = tmp_path / f"gunicorn-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            procfile_argv("web"), cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, base, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_healthy(process: subprocess.Popen, base: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/v1/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer /api/v1/health:\n{log.read_text()[-3000:]}")
