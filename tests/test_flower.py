from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command


def test_flower_refuses_to_start_without_credentials(monkeypatch):
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    monkeypatch.delenv("FLOWER_ALLOW_UNAUTHENTICATED", raising=False)
    with pytest.raises(CommandError, match="refusing to start Flower without credentials"):
        call_command("flower", "--dry-run")


def test_flower_rejects_malformed_credentials(monkeypatch):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "admin")
    with pytest.raises(CommandError, match="user:password"):
        call_command("flower", "--dry-run")


def test_flower_starts_with_basic_auth_and_hides_it(monkeypatch, capsys):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:s3cret")
    call_command("flower", "--dry-run")
    out = capsys.readouterr().out
    assert "celery -A config flower" in out and "--basic-auth=***" in out
    assert "s3cret" not in out


def test_flower_may_run_open_only_when_told_to(monkeypatch, capsys):
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    monkeypatch.setenv("FLOWER_ALLOW_UNAUTHENTICATED", "true")
    call_command("flower", "--dry-run")
    assert "--basic-auth" not in capsys.readouterr().out
