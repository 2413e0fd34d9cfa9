"""Hardening: deployment checks, admin path, request size limits, no secrets
and no string-built SQL in the repository.

Flower's refusal to start without credentials is tested in tests/test_flower.py.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]

# A production-like environment: nothing inherited from the developer's shell
# or from pytest's own defaults (which switch the SSL redirect off).
PRODUCTION_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": os.environ.get("HOME", "/tmp"),
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DEBUG": "false",
    "SECRET_KEY": "k9$Qz!2vLw7@pR4xT8#mN1cB6^yH3jF5&uE0sD9*aG2hK7(oP4)iU8-wS1_qZ6",
    "ALLOWED_HOSTS": "orders.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://orders.example.com",
    "SQLITE_PATH": "/tmp/hardening-check.sqlite3",
    # Production has a broker (healing.E004); the check never connects to it.
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    # No .env either: a developer's file must not make a check pass.
    "ENV_FILE": "",
}


def run_django(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**PRODUCTION_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


# --- Deployment settings ---------------------------------------------------------


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=PRODUCTION_ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


# --- Admin at a configurable path ------------------------------------------------


def test_admin_is_served_at_the_configured_path_only():
    result = run_django(
        "import django, json; django.setup();"
        "from django.test import Client; from django.urls import reverse;"
        "c = Client(HTTP_HOST='orders.example.com', HTTP_X_FORWARDED_PROTO='https');"
        "print(json.dumps({'index': reverse('admin:index'),"
        " 'moved': c.get('/ops-7f3a/login/').status_code,"
        " 'default': c.get('/admin/login/').status_code}))",
        ADMIN_URL="ops-7f3a/",
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"index": "/ops-7f3a/", "moved": 200, "default": 404}


# --- Request body limits ---------------------------------------------------------


def oversized_json() -> str:
    return json.dumps({"username": "x", "padding": "a" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/self-healing/run-cycle", "/api/v1/self-healing/heal/1"])
def test_an_oversized_body_without_credentials_is_refused_before_it_is_read(client, path):
    response = client.post(path, data=oversized_json(), content_type="application/json")
    assert response.status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/auth/token/", "/api/v1/self-healing/run-cycle"])
def test_an_oversized_body_is_refused_cleanly(client, admin_user, path):
    if "self-healing" in path:
        client.force_login(admin_user)
    response = client.post(path, data=oversized_json(), content_type="application/json")
    assert response.status_code in (400, 413), response.status_code


def test_body_size_limits_are_configured():
    assert 0 < settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= 10 * 1024 * 1024
    assert settings.DATA_UPLOAD_MAX_NUMBER_FIELDS is not None


# --- No secrets in the repository ------------------------------------------------

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[0-9A-Za-z-]{10,}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}"),
    "Stripe live key": re.compile(r"\b[rs]k_live_[0-9A-Za-z]{16,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    "password in URL": re.compile(r"[a-z+]+://[^/\s:@'\"]+:([^/\s@'\"{}$<>]+)@"),
}
# Placeholders that look like credentials in URLs but are documentation.
URL_PASSWORD_PLACEHOLDERS = {"password", "pass", "secret", "changeme", "***", "PASSWORD", "pw"}
# Secret-named settings assigned a literal in application code (tests and docs
# may hold test values): only these reviewed ones. A value with whitespace is
# a sentence (an error message about a password), not a credential.
SECRET_ASSIGNMENT = re.compile(
    r"(?P<name>\w*(?:SECRET|PASSWORD|TOKEN|API_KEY)\w*)\s*=\s*['\"](?P<value>[^'\"\s]{8,})['\"]"
)
ALLOWED_LITERALS = {
    # config/settings/base.py: the development-only key, refused when DEBUG is off.
    "dev-insecure-self-healing-orders-key-do-not-use-in-production",
}


def test_no_secret_is_committed():
    findings = []
    for path in tracked_files():
        relative = path.relative_to(ROOT).as_posix()
        if path.name == ".env" or (path.name.startswith(".env.") and path.name != ".env.example"):
            findings.append(f"{relative}: an environment file is tracked")
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary or gone
        for kind, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                if kind == "password in URL" and match.group(1) in URL_PASSWORD_PLACEHOLDERS:
                    continue
                findings.append(f"{relative}: {kind}: {match.group(0)[:40]}")
        is_code = path.suffix == ".py" and not relative.startswith("tests/")
        if is_code:
            for match in SECRET_ASSIGNMENT.finditer(text):
                if match.group("value") not in ALLOWED_LITERALS:
                    findings.append(f"{relative}: {match.group('name')} has a literal value")
    assert not findings, "\n".join(findings)


def test_the_secret_scanner_catches_what_it_should():
    samples = [
        "-----BEGIN RSA " + "PRIVATE KEY-----",
        "AKIA" + "ABCDEFGHIJKLMNOP",
        "postgres://app:" + "hunter2hunter2@db/x",
        "xoxb-" + "1234567890-abcdef",
    ]
    for sample in samples:
        assert any(p.search(sample) for p in SECRET_PATTERNS.values()), sample
    assert SECRET_ASSIGNMENT.search('STRIPE_API_KEY = "' + "abcdefgh12345" + '"')
    assert not SECRET_ASSIGNMENT.search('PASSWORD_CHANGED_MESSAGE = "Your password has changed."')


# --- ORM or parameterised SQL only -----------------------------------------------

SQL_CALLS = {"execute", "executemany", "raw", "RawSQL", "extra"}
# Reviewed cases: the SQL is built from fixed names (Model._meta.db_table,
# constants), never from input; the values go as parameters.
REVIEWED_SQL = {
    ("orders/services/credit.py", "credit_refund"),  # table from _meta
    ("notifications/services.py", "notification_raise"),  # table and index target constants
    ("orders/management/commands/seed_marketplace.py", "truncate"),  # TABLES constant
    ("orders/management/commands/seed_marketplace.py", "_insert"),  # table, columns, %s marks
    ("orders/management/commands/seed_marketplace.py", "finish"),  # fixed table names
    ("bench/dataset.py", "vacuum_analyze"),  # table constants
    ("bench/dataset.py", "snapshot_take"),  # table constants
    ("bench/dataset.py", "snapshot_restore"),  # table constants
    ("bench/rawsql.py", "heal_one"),  # a list of %s placeholders
    ("orders/idempotency.py", "_claim"),  # table from _meta
    ("orders/sql.py", "rows_insert"),  # names from _meta, %s values, a constant SET LOCAL prefix
    ("healing/detection.py", "_index_driven_plan"),  # lists of %s placeholders
}


def _built_string(node: ast.AST) -> bool:
    """An f-string with placeholders, ``%`` formatting, ``.format()`` or ``+``."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return True
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        # psycopg's sql.SQL("...").format(sql.Identifier(...)) quotes safely.
        receiver = node.func.value
        return not (
            isinstance(receiver, ast.Call)
            and getattr(receiver.func, "attr", getattr(receiver.func, "id", "")) == "SQL"
        )
    return False


def sql_built_from_strings(path: Path, relative: str) -> list[tuple[str, str, int]]:
    tree = ast.parse(path.read_text(), filename=relative)
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    # Names assigned a built string in the same function count too.
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name not in SQL_CALLS:
            continue
        func: ast.AST = node
        while func in parents and not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            func = parents[func]
        function = getattr(func, "name", "<module>")
        first = node.args[0]
        built = _built_string(first)
        if isinstance(first, ast.Name) and not built:
            for other in ast.walk(func):
                if (
                    isinstance(other, ast.Assign)
                    and any(getattr(t, "id", None) == first.id for t in other.targets)
                    and _built_string(other.value)
                ):
                    built = True
        if built:
            found.append((relative, function, node.lineno))
    return found


def test_sql_is_orm_or_parameterised():
    findings = []
    for path in tracked_files():
        relative = path.relative_to(ROOT).as_posix()
        if (
            path.suffix != ".py"
            or not path.exists()
            or relative.startswith((".venv/", "tests/"))
            or "/migrations/" in relative
        ):
            continue
        findings.extend(sql_built_from_strings(path, relative))
    unreviewed = sorted({f for f in findings if (f[0], f[1]) not in REVIEWED_SQL})
    assert not unreviewed, "SQL built from strings outside the reviewed list:\n" + "\n".join(
        f"{file}:{line} in {function}()" for file, function, line in unreviewed
    )


def test_the_sql_scanner_catches_string_built_sql(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text(
        "def lookup(cursor, name):\n"
        "    cursor.execute(f\"SELECT * FROM orders WHERE number = '{name}'\")\n"
        "def lookup2(cursor, name):\n"
        "    sql = 'SELECT * FROM orders WHERE number = %s' % name\n"
        "    cursor.execute(sql)\n"
        "def fine(cursor, name):\n"
        "    cursor.execute('SELECT * FROM orders WHERE number = %s', [name])\n"
    )
    found = sql_built_from_strings(sample, "bad.py")
    assert [function for _, function, _ in found] == ["lookup", "lookup2"]


# --- Dependencies ----------------------------------------------------------------


def test_every_dependency_is_pinned_to_one_version():
    """Pinned so a build is reproducible and an audit (pip-audit -r
    requirements.txt) speaks about what really runs."""
    loose = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement and not re.fullmatch(
            r"[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+", requirement
        ):
            loose.append(requirement)
    assert not loose, loose
