"""schemathesis' CLI, ``--checks all``, against a live gunicorn (issue 20, "Done when").

tests/api/test_schemathesis.py drives the WSGI app in-process with four checks;
this runs the command a user runs (README "API") against the web process as the
Procfile starts it, on PostgreSQL, as an ADMIN with a JWT header, with every
check: positive data accepted (ST202), negative data refused (ST201), no 5xx,
documented statuses, content types, headers and bodies, and a stateful phase
over the links. ``schemathesis.toml`` (the repository's root) lists the three
operations whose rules across fields OpenAPI 3.0 cannot state.

Also here: POST run-cycle with no broker answers within its wait budget, the
healings left over running on in the web process (the "network error" on
run-cycle that schemathesis met once a few hundred orders were stuck).

CI size: SCHEMATHESIS_LIVE_MAX_EXAMPLES (default 5) examples per operation, a
fixed seed (SCHEMATHESIS_LIVE_SEED): about 45 s on two cores, the coverage
phase most of it (up to 3 minutes when other runs share the cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from orders.roles import ADMIN
from tests.factories import (
    AdminNotificationFactory,
    HealingActionFactory,
    HealingCycleFactory,
    OrderFactory,
    VendorFactory,
)
from tests.integration.workers import ROOT
from tests.live_web import live_web

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_LIVE_MAX_EXAMPLES", "5"))
SEED = int(os.environ.get("SCHEMATHESIS_LIVE_SEED", "1"))


def _admin_token(make_user) -> str:
    return str(RefreshToken.for_user(make_user(ADMIN, "live-fuzz-admin")).access_token)


def _call(method: str, url: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, method=method, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status, json.loads(answer.read())


@pytest.mark.timeout(600)
def test_schemathesis_checks_all_against_a_live_gunicorn(make_user, tmp_path: Path):
    VendorFactory()
    for minutes in (45, 200):
        OrderFactory(status="PENDING", stuck_minutes=minutes)
    HealingActionFactory(recovery_status="SUCCESS", claim_token=None)
    HealingCycleFactory()
    AdminNotificationFactory()
    token = _admin_token(make_user)
    schemathesis = Path(sys.executable).with_name("schemathesis")

    with live_web(tmp_path, HEALING_API_WAIT_SECONDS="1") as base:
        started = time.monotonic()
        run = subprocess.run(
            [
                str(schemathesis),
                "run",
                f"{base}/api/schema/?format=json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {token}",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                str(SEED),
                "--request-timeout",
                "15",
                "--generation-database",
                "none",
                "--no-color",
            ],
            cwd=ROOT,  # schemathesis.toml
            capture_output=True,
            text=True,
            timeout=560,
            check=False,
        )
        seconds = time.monotonic() - started
    output = run.stdout + run.stderr
    summary = [line for line in output.splitlines() if " in " in line and "=====" in line]
    print(f"schemathesis ({seconds:.0f} s): {summary[-1] if summary else output[-300:]}")
    assert run.returncode == 0, output[-20000:]
    assert "generated" in output and "passed" in output


def test_run_cycle_without_a_broker_answers_within_its_wait(make_user, tmp_path: Path):
    # Without the bound, every healing ran inside the request first (?wait=0
    # included): 600 stuck orders took 18 s before the 202.
    vendor = VendorFactory()
    VendorFactory()  # somewhere to reassign to
    stuck = 120
    for _ in range(stuck):
        OrderFactory(status="PENDING", vendor=vendor, stuck_minutes=45)
    token = _admin_token(make_user)

    with live_web(tmp_path, HEALING_API_WAIT_SECONDS="0.3", API_THROTTLE_ENABLED="false") as base:
        status, body = _call("POST", f"{base}/api/v1/self-healing/run-cycle?wait=0", token)
        result = body["result"]
        assert status == 202
        assert (result["detected"], result["dispatched"]) == (stuck, stuck)
        # Answered before its healings were done: they run on in the web process.
        assert result["pending"] > 0 and result["timed_out"] is True

        cycle_url = f"{base}/api/v1/self-healing/cycles/{result['cycle_id']}"
        deadline = time.monotonic() + 120
        cycle: dict = {}
        while time.monotonic() < deadline:
            cycle = _call("GET", cycle_url, token)[1]["cycle"]
            if cycle["pending"] == 0:
                break
            time.sleep(0.5)
        assert cycle["pending"] == 0, cycle
        assert cycle["healed"] + cycle["failed"] + cycle["escalated"] == stuck, cycle
