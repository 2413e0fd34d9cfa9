"""Where settings come from (.env, one loader) and what a command does when they
are wrong (one line, exit 2): issue 20 items 8 and 9."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import env_file_load, env_file_path

ROOT = Path(__file__).resolve().parents[1]

# Nothing from the developer's shell or pytest's own defaults.
BARE_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": os.environ.get("HOME", "/tmp"),
}


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=ROOT,
        env={**BARE_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def settings_seen(code: str, **env: str) -> str:
    """What a manage.py process sees: `manage.py shell -c`, the last stdout line."""
    result = run([sys.executable, "manage.py", "shell", "-c", code], **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


# --- .env: one loader, used by settings -------------------------------------------


def test_the_env_file_completes_the_environment_and_never_overrides_it(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("C_FROM_FILE=file\nC_BOTH=file\n# a comment\nexport C_EXPORTED='quoted'\n")
    monkeypatch.setenv("ENV_FILE", str(env_file))
    monkeypatch.setenv("C_BOTH", "process")
    for name in ("C_FROM_FILE", "C_EXPORTED"):
        monkeypatch.delenv(name, raising=False)

    assert env_file_load(base_dir=tmp_path) == env_file

    assert os.environ["C_FROM_FILE"] == "file"
    assert os.environ["C_EXPORTED"] == "quoted"
    assert os.environ["C_BOTH"] == "process"  # the process environment wins
    for name in ("C_FROM_FILE", "C_EXPORTED"):
        monkeypatch.delenv(name)


def test_env_file_names_the_file_and_empty_means_none(tmp_path, monkeypatch):
    monkeypatch.delenv("ENV_FILE", raising=False)
    assert env_file_path(base_dir=tmp_path) == tmp_path / ".env"
    monkeypatch.setenv("ENV_FILE", "deploy/prod.env")
    assert env_file_path(base_dir=tmp_path) == tmp_path / "deploy/prod.env"
    monkeypatch.setenv("ENV_FILE", "")
    assert env_file_path(base_dir=tmp_path) is None
    assert env_file_load(base_dir=tmp_path) is None


def test_a_named_env_file_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("ENV_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(ImproperlyConfigured, match="does not exist"):
        env_file_load(base_dir=tmp_path)


def test_manage_py_reads_the_copied_env_example(tmp_path):
    # `cp .env.example .env && make run`: make run's migrate is a manage.py
    # command, which used to die on SECRET_KEY because only honcho read .env.
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text())

    seen = settings_seen(
        "from django.conf import settings as s;"
        "print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)",
        ENV_FILE=str(env_file),
    )

    assert seen == "True django.db.backends.postgresql redis://127.0.0.1:6379/0"


def test_debug_from_the_shell_keeps_the_database_of_the_env_file(tmp_path):
    # `DEBUG=true make run` used to migrate the demo's SQLite file while beat
    # ran on PostgreSQL: now every process takes DATABASE_URL from .env.
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DEBUG=false\nSECRET_KEY=from-the-file\nDATABASE_URL=postgres://u@db.example:5432/shop\n"
    )

    seen = settings_seen(
        "from django.conf import settings as s;"
        "print(s.DEBUG, s.SECRET_KEY, s.DATABASES['default']['HOST'])",
        ENV_FILE=str(env_file),
        DEBUG="true",
    )

    assert seen == "True from-the-file db.example"


def test_make_run_migrates_with_the_same_loader_as_its_processes():
    makefile = (ROOT / "Makefile").read_text()
    run_target = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    # No environment prefix of its own on migrate, no SQLite path: manage.py
    # (config.env) reads .env exactly as the web, worker, beat and Flower do.
    migrate_line = next(line for line in run_target.splitlines() if "migrate" in line)
    assert migrate_line.strip().startswith("$(PY) manage.py migrate")
    assert "honcho start" in run_target


# --- A configuration error: one line naming the fix, exit non-zero ----------------


@pytest.mark.parametrize(
    "args",
    [
        ["manage.py", "--help"],
        ["manage.py", "check"],
        ["manage.py", "migrate", "--help"],
        ["manage.py", "stuck_orders"],
    ],
)
def test_manage_py_without_a_secret_key_prints_one_line(args):
    result = run([sys.executable, *args], ENV_FILE="", DEBUG="false")

    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert line.startswith("manage.py: configuration error: SECRET_KEY is not set")
    assert "DEBUG=true" in line and ".env" in line


def test_a_malformed_variable_names_itself_in_one_line():
    result = run([sys.executable, "manage.py", "check"], ENV_FILE="", DEBUG="maybe")

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "manage.py: configuration error: DEBUG must be a boolean (true/false), got 'maybe'"
    ]


def test_the_celery_worker_without_a_secret_key_prints_one_line():
    result = run([sys.executable, "-m", "celery", "-A", "config", "worker"], ENV_FILE="")

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "celery: configuration error: SECRET_KEY is not set. Set it in the environment or "
        "in .env (cp .env.example .env), or set DEBUG=true for local development."
    ]


# --- A database that is not there yet: one line, and make run creates it -----------


def _database_env(name: str, *, port: int | None = None) -> dict[str, str]:
    """A manage.py environment whose DATABASE_URL names ``name`` on the tests' server."""
    from django.db import connection

    db = connection.settings_dict
    host, user = db.get("HOST") or "127.0.0.1", db.get("USER") or "postgres"
    port = port or int(db.get("PORT") or 5432)
    return {
        "ENV_FILE": "",
        "DEBUG": "true",
        "DATABASE_URL": f"postgres://{user}@{host}:{port}/{name}",
    }


def _database_drop(name: str) -> None:
    import psycopg
    from django.db import connection

    from config.database import server_params

    with psycopg.connect(
        dbname="postgres", autocommit=True, **server_params(connection.settings_dict)
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_a_command_against_a_database_that_does_not_exist_prints_one_line():
    # `cp .env.example .env && make run` on a new machine stopped at migrate
    # with psycopg's "database does not exist" under a 40-line traceback.
    name = f"never_created_{os.getpid()}"
    result = run([sys.executable, "manage.py", "migrate", "--no-input"], **_database_env(name))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("manage.py: cannot connect to the database: connection failed")
    assert f'database "{name}" does not exist' in line
    assert "python manage.py create_database" in line


@pytest.mark.postgres
def test_create_database_creates_a_missing_database_once_then_migrate_runs():
    name = f"created_by_test_{os.getpid()}"
    env = _database_env(name)
    try:
        first = run([sys.executable, "manage.py", "create_database"], **env)
        second = run([sys.executable, "manage.py", "create_database"], **env)
        migrated = run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], **env)
    finally:
        _database_drop(name)

    assert (first.returncode, first.stdout.strip()) == (0, f"created database {name}"), first.stderr
    assert (second.returncode, second.stdout.strip()) == (0, f"database {name} exists")
    assert migrated.returncode == 0, migrated.stderr


@pytest.mark.postgres
def test_create_database_names_the_server_it_cannot_reach_in_one_line():
    result = run([sys.executable, "manage.py", "create_database"], **_database_env("x", port=1))

    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("CommandError: cannot create database 'x' on ")
    assert ":1: " in line and "Traceback" not in result.stderr


def test_make_run_creates_the_database_before_it_migrates():
    makefile = (ROOT / "Makefile").read_text()
    run_target = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    steps = [line.strip() for line in run_target.splitlines()[1:]]
    assert steps.index("$(PY) manage.py create_database") < steps.index(
        "$(PY) manage.py migrate --no-input"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "True 5"),
        ({"DB_POOLER": "pgbouncer"}, "False None"),
        ({"DB_POOLER": "pgbouncer", "DB_PREPARED_STATEMENTS": "true"}, "True 5"),
        ({"DB_PREPARED_STATEMENTS": "false"}, "False None"),
    ],
)
def test_prepared_statements_default_on_and_off_behind_pgbouncer(env, expected):
    code = (
        "from django.conf import settings as s; "
        "print(s.DB_PREPARED_STATEMENTS, "
        "s.DATABASES['default']['OPTIONS'].get('prepare_threshold'))"
    )
    seen = settings_seen(
        code,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused",
        ALLOW_INSECURE_DEFAULTS="true",
        **env,
    )
    assert seen == expected
