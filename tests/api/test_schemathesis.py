"""Property-based run of the live OpenAPI schema (schemathesis, bounded examples).

Every operation gets positive and negative generated requests through the
WSGI app, as ADMIN (the role that may call everything), with DEBUG off and on. No answer may be a
5xx, every answer must match the documented status codes, content type and
schema. The number of generated cases is printed in pytest's terminal summary.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from orders.roles import ADMIN
from tests.factories import (
    AdminNotificationFactory,
    HealingActionFactory,
    HealingCycleFactory,
    OrderFactory,
    VendorFactory,
)

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
generated: list[str] = []


@pytest.fixture
def _keep_test_connection():
    """Django closes the connection when a real WSGI request ends; inside a
    test that would drop the test's transaction. Django's own test client
    disconnects the same handlers."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, _keep_test_connection, rules, make_user, settings):
    settings.HEALING_API_WAIT_SECONDS = 0.2
    # Rows for the generated ids to sometimes hit.
    VendorFactory()
    for minutes in (45, 200):
        OrderFactory(status="PENDING", stuck_minutes=minutes)
    HealingActionFactory(recovery_status="SUCCESS", claim_token=None)
    HealingCycleFactory()
    AdminNotificationFactory()
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def admin_token(make_user) -> str:
    from rest_framework_simplejwt.tokens import RefreshToken

    return str(RefreshToken.for_user(make_user(ADMIN, "fuzz-admin")).access_token)


def _fuzz(operation, mode: GenerationMode, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        phases=(Phase.explicit, Phase.generate),
        database=None,
    )
    def run(case) -> None:
        generated.append(f"{case.method} {case.path}")
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_api_matches_its_schema(api_schema, admin_token, request, settings, debug):
    # schemathesis' own pytest plugin does not run under this pytest, so the
    # operations are driven with hypothesis directly: positive and negative
    # examples for each, every failure collected before the test fails.
    settings.DEBUG = debug
    headers = {"Authorization": f"Bearer {admin_token}"}
    failures: list[str] = []
    operations = ours = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        ours += operation.path.startswith(
            ("/api/v1/self-healing/", "/api/v1/auth/", "/api/v1/health")
        )
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, headers)
            except Unsatisfiable:
                # Nothing to get wrong (GET /health takes no input): no negative case.
                assert mode == GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # collect, then fail with all
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    # Printed in the terminal summary by tests/api/conftest.py (both DEBUG runs).
    request.config.api_schemathesis_cases = (len(generated), operations)
    # The self-healing, auth and health operations; the marketplace's (issue 14) come on top.
    assert ours == 29  # + issue 19: what-if, redrive, three manual actions, two exports
    # + issue 18: vendors, silences list / create / get / update / expire
    assert not failures, "\n\n".join(failures)
