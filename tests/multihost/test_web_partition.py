"""The web host partitioned from the broker, PostgreSQL still reachable.

gunicorn runs the Procfile's web line in the web namespace; the broker's
address is made unreachable from that namespace only. API reads answer from
PostgreSQL; POST run-cycle answers a 503 and leaves nothing half-done (no
cycle left RUNNING, no healing claimed that no task will ever run).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from django.conf import settings
from rest_framework_simplejwt.tokens import RefreshToken

from healing.models import ACTIVE_STATUSES, CycleStatus, HealingAction, HealingCycle
from orders.roles import OPERATIONS, role_user_create
from tests.faults.helpers import (
    CountingDispatch,
    assert_sound,
    figures,
    make_stuck_orders,
    recover,
    snapshot_episodes,
)
from tests.integration.workers import wait_until
from tests.multihost.conftest import procfile_argv

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
]

PORT = 8000
ORDERS = 50


def call(url: str, *, token: str, method: str = "GET") -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        method=method,
        headers={"Authorization": f"Bearer {token}"},
        data=b"" if method == "POST" else None,
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - our test host
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_web_host_cut_from_the_broker_reads_answer_and_run_cycle_is_a_clear_503(cluster):
    web = cluster.hosts["web"]
    env = {
        **cluster.env,
        "SECRET_KEY": settings.SECRET_KEY,
        "JWT_SIGNING_KEY": settings.SIMPLE_JWT["SIGNING_KEY"],
        "DEBUG": "true",
        "ALLOWED_HOSTS": "*",
        "GUNICORN_BIND": f"0.0.0.0:{PORT}",
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "4",
        # The cache on its own (here: in-process), so the cut hits the broker
        # only; a cache Redis that is also the broker is cut with it, and the
        # throttles' cache reads then fail the request (see the README).
        "REDIS_URL": "",
    }
    web.spawn(procfile_argv("web"), env=env, log_path=cluster.log_dir / "web.log")
    base = f"http://{web.address}:{PORT}/api/v1"
    user = role_user_create(username="operator", password="op-pw-123456789", role=OPERATIONS)[0]
    token = str(RefreshToken.for_user(user).access_token)
    assert wait_until(lambda: _answers(f"{base}/health"), timeout=60), (
        cluster.log_dir / "web.log"
    ).read_text()[-3000:]
    ids = make_stuck_orders(ORDERS)
    episodes = snapshot_episodes(ids)
    log = cluster.worker("worker1")

    web.broker_unreachable()
    started = time.monotonic()
    reads = {
        path: call(f"{base}/self-healing/{path}", token=token)[0]
        for path in ("stuck-orders", "healing-actions", "rules", "statistics")
    }
    status, body = call(f"{base}/self-healing/run-cycle", token=token, method="POST")
    answered_in = time.monotonic() - started
    print(f"\n  reads: {reads}; run-cycle: {status} {body} in {answered_in:.1f}s")

    assert set(reads.values()) == {200}, reads
    assert status == 503, (status, body)
    assert body["success"] is False and body["error"]["message"], body
    assert not HealingCycle.objects.filter(status=CycleStatus.RUNNING).exists()
    assert not HealingAction.objects.filter(
        order_id__in=ids, recovery_status__in=ACTIVE_STATUSES
    ).exists()

    # Back on the network: the same request starts the cycle the worker heals.
    web.broker_reachable()
    status, body = call(f"{base}/self-healing/run-cycle?wait=false", token=token, method="POST")
    assert status in (200, 202), (status, body)
    recover(ids, dispatch=CountingDispatch(broker_url=cluster.network.broker_url))
    result = figures(
        "multihost-web-partition", order_ids=ids, episodes=episodes, faults=1, log_paths=[log]
    )
    assert_sound(result)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310
            return True
    except (urllib.error.URLError, OSError):
        return False
