"""The web process's gunicorn config: threads, workers, and no Server banner.

A misspelled gunicorn setting is silently ignored, so the config file is
loaded the way gunicorn loads it and every public lower-case name must be a
gunicorn setting. The integration test starts the Procfile's command line.
"""

from __future__ import annotations

import os
import re
import runpy
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gunicorn.config import Config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "gunicorn.py"


def _load(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[Config, dict]:
    for name in ("WEB_CONCURRENCY", "WEB_THREADS", "PORT", "GUNICORN_BIND"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    namespace = runpy.run_path(str(CONFIG))
    cfg = Config()
    # What gunicorn.app.base.Application.load_config_from_file does.
    for key, value in namespace.items():
        if key in cfg.settings:
            cfg.set(key.lower(), value)
    return cfg, namespace


def test_every_setting_in_the_file_is_a_gunicorn_setting(monkeypatch):
    cfg, namespace = _load(monkeypatch)
    public = {
        key
        for key, value in namespace.items()
        if key.islower()
        and not key.startswith("_")
        and not isinstance(value, type(os))
        and key != "annotations"  # from __future__ import annotations
    }
    assert public - set(cfg.settings) == set()


def test_the_web_process_runs_threads_with_defaults(monkeypatch):
    cfg, _ = _load(monkeypatch)
    assert cfg.worker_class_str == "gthread"
    assert cfg.threads == 4
    assert cfg.workers == 3
    assert cfg.bind == ["0.0.0.0:8000"]
    assert cfg.accesslog == "-"


def test_threads_workers_and_port_come_from_the_environment(monkeypatch):
    cfg, _ = _load(monkeypatch, WEB_THREADS="8", WEB_CONCURRENCY="2", PORT="9001")
    assert (cfg.threads, cfg.workers, cfg.bind) == (8, 2, ["0.0.0.0:9001"])


def test_the_procfile_web_line_uses_the_config_file():
    web = next(
        line.split(":", 1)[1].strip()
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    assert shlex.split(web) == ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi:application"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn_server(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
        "DEBUG": "false",
        "SECRET_KEY": "gunicorn-test-key",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
    }
    env.pop("CELERY_BROKER_URL", None)
    log = tmp_path / "gunicorn.log"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(gunicorn), "-c", "config/gunicorn.py", "config.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited: {log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail(f"gunicorn did not listen: {log.read_text()}")
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_gunicorn_serves_with_threads_and_no_server_banner(gunicorn_server):
    base, log = gunicorn_server
    with urllib.request.urlopen(base + "/admin/login/", timeout=10) as response:
        assert response.status == 200
        servers = response.headers.get_all("Server") or []
        assert all("gunicorn" not in value.lower() for value in servers), servers
        assert all(value.strip() == "" for value in servers), servers
        assert "Content-Security-Policy" in response.headers
    assert re.search(r"Using worker: gthread", log.read_text())
