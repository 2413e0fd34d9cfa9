"""The README as a new user reads it (issue 20 item 11): every setting the code
reads is in the Configuration table, and the heal snippet sends nothing when
nothing is stuck."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CODE_DIRS = ("config", "api", "orders", "healing", "notifications", "dashboard", "demo", "bench")
# Passed from a parent process to its children, never set by a person.
INTERNAL = {"BENCH_OUTCOME_DIR", "DEMO_GATEWAY_WEATHER", "DJANGO_SETTINGS_MODULE"}

_READS = re.compile(
    r"""(?:env_(?:str|bool|int|float|list)|_env_int|_env_str|_env_bool|_env_float"""
    r"""|os\.environ\.get|os\.getenv|os\.environ\[)\(?\s*["']([A-Z][A-Z0-9_]+)["']"""
)


def configuration_table() -> str:
    return README.split("## Configuration", 1)[1].split("\n## ", 1)[0]


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" not in path.parts:
                names |= set(_READS.findall(path.read_text()))
    return names - INTERNAL


def test_the_scan_finds_the_settings_it_should():
    # Guard the guard: a broken pattern would pass the next test vacuously.
    assert {"SECRET_KEY", "FLOWER_PORT", "DEMO_PORT", "WEB_CONCURRENCY"} <= (
        variables_read_by_the_code()
    )


def test_every_variable_the_code_reads_is_in_the_configuration_table():
    table = configuration_table()
    missing = sorted(n for n in variables_read_by_the_code() if f"`{n}`" not in table)
    assert missing == []


def test_the_readme_says_commands_need_the_servers_environment():
    assert "Management commands need the same environment as the server" in README


def _snippet() -> str:
    section = README.split("Heal one order now", 1)[1]
    return section.split("```bash\n", 1)[1].split("\n```", 1)[0]


@pytest.mark.parametrize(
    ("stuck", "notifications", "posts"),
    [
        ("[]", "[]", []),
        (
            '[{"order_id": 42}]',
            '[{"id": 7}]',
            [
                "/api/v1/self-healing/heal/42",
                "/api/v1/self-healing/notifications/7/acknowledge",
                "/api/v1/self-healing/notifications/7/resolve",
            ],
        ),
    ],
)
def test_the_heal_snippet_sends_nothing_when_nothing_is_stuck(
    tmp_path, stuck, notifications, posts
):
    # curl is a stub: GETs answer the given lists, POSTs are recorded.
    sent = tmp_path / "posts"
    stub = f"""
curl() {{
  local url="${{@: -1}}"
  case " $* " in
    *" -X POST "*) echo "${{url#http://test}}" >> {sent}; echo '{{}}' ;;
    *stuck-orders*) echo '{{"stuckOrders": {stuck}}}' ;;
    *notifications*) echo '{{"notifications": {notifications}}}' ;;
  esac
}}
BASE=http://test
AUTH="Authorization: Bearer x"
"""
    result = subprocess.run(
        ["bash", "-c", stub + _snippet()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    recorded = sent.read_text().split() if sent.exists() else []
    assert recorded == posts, result.stderr
    if not posts:
        assert "no order is stuck right now" in result.stderr
        assert "no pending notification" in result.stderr
