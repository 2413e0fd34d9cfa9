"""The API tests run with throttling off (test_throttling.py switches it on).

The fixtures (users per role, JWT clients, default rules) are in
tests/conftest.py, shared with tests/healing/test_apis_*.py and
tests/notifications/test_apis.py; helpers in tests/api/helpers.py.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _api_defaults(api_defaults) -> None:
    pass


def pytest_terminal_summary(terminalreporter, config) -> None:
    cases = getattr(config, "api_schemathesis_cases", None)
    if cases:
        terminalreporter.write_line(
            f"schemathesis: {cases[0]} generated cases over {cases[1]} operations"
        )
