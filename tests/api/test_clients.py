"""The client address from a configured number of trusted proxies (issue 21 item 1)."""

from __future__ import annotations

import pytest

from api.clients import client_address


class FakeRequest:
    def __init__(self, remote: str, forwarded: str | None = None) -> None:
        self.META = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            self.META["HTTP_X_FORWARDED_FOR"] = forwarded


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        # No trusted proxy: the header is the client's to write, so it is ignored.
        (0, "203.0.113.9", "127.0.0.1", "203.0.113.9"),
        (0, "203.0.113.9", None, "203.0.113.9"),
        # One proxy (REMOTE_ADDR) appended the address it saw: the right-most entry.
        (1, "10.0.0.2", "198.51.100.7", "198.51.100.7"),
        (1, "10.0.0.2", "127.0.0.1, 198.51.100.7", "198.51.100.7"),
        (1, "10.0.0.2", " 127.0.0.1 ,198.51.100.7 ", "198.51.100.7"),
        # Two proxies: the second from the right.
        (2, "10.0.0.2", "127.0.0.1, 198.51.100.7, 10.0.0.3", "198.51.100.7"),
        # A proxy that sent no header: the nearest address we have.
        (1, "10.0.0.2", None, "10.0.0.2"),
        (3, "10.0.0.2", "198.51.100.7", "198.51.100.7"),
    ],
)
def test_client_address(settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies

    assert client_address(FakeRequest(remote, forwarded)) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "0"),
        ({"TRUSTED_PROXY_COUNT": "2"}, "2"),
        # The old /metrics switch means one trusted proxy (right-most hop), no longer
        # "believe the client's first entry"; an explicit count wins.
        ({"METRICS_TRUST_X_FORWARDED_FOR": "true"}, "1"),
        ({"METRICS_TRUST_X_FORWARDED_FOR": "true", "TRUSTED_PROXY_COUNT": "0"}, "0"),
    ],
)
def test_trusted_proxy_count_setting(env, expected):
    import os
    import subprocess
    import sys

    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TRUSTED_PROXY_COUNT", "METRICS_TRUST_X_FORWARDED_FOR")
    }
    code = "from django.conf import settings; print(settings.TRUSTED_PROXY_COUNT)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == expected
