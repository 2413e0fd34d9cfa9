from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from healing.detection import stuck_orders_detect
from orders.models import CreditEntry, Order, OrderStatusChange, Vendor, VendorAssignment
from orders.roles import user_role

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_seed_marketplace_makes_exactly_m_stuck_orders_over_the_four_statuses():
    run(
        "seed_marketplace",
        "--orders",
        "2000",
        "--stuck",
        "40",
        "--vendors",
        "10",
        "--buyers",
        "20",
        "--quiet",
    )

    assert Order.objects.count() == 2000
    stuck = stuck_orders_detect()
    assert len(stuck) == 40
    assert {row.status for row in stuck} == {"PENDING", "CONFIRMED", "ACCEPTED", "PROCESSING"}
    open_share = Order.objects.open().count() / 2000
    assert 0.10 <= open_share <= 0.20
    finished = Order.objects.filter(status__in=["DELIVERED", "CANCELLED"]).count()
    assert finished == 2000 - Order.objects.open().count()
    # Every order has its history row; every vendor-held order its assignment.
    assert OrderStatusChange.objects.count() == 2000
    assert VendorAssignment.objects.count() == Order.objects.filter(vendor__isnull=False).count()
    # Vendor load counters match the open orders they hold.
    for vendor in Vendor.objects.all():
        assert (
            vendor.open_orders
            == vendor.orders.filter(status__in=Order.objects.open().values("status")).count()
        )
    # Cancelled credit orders carry their one refund.
    assert not CreditEntry.objects.filter(kind="REFUND").exclude(order__status="CANCELLED").exists()


def test_seed_marketplace_is_deterministic_for_a_seed():
    def snapshot() -> list:
        return list(
            Order.objects.order_by("id").values_list(
                "status", "vendor_id", "total", "payment_method"
            )
        )

    run("seed_marketplace", "--orders", "300", "--stuck", "10", "--seed", "7", "--quiet")
    first = snapshot()
    run("seed_marketplace", "--orders", "300", "--stuck", "10", "--seed", "7", "--quiet")
    assert snapshot() == first
    run("seed_marketplace", "--orders", "300", "--stuck", "10", "--seed", "8", "--quiet")
    assert snapshot() != first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--orders", "10", "--stuck", "11"], "cannot exceed"),
        (["--orders", "10", "--stuck", "1", "--vendors", "1"], "at least 2"),
    ],
)
def test_seed_marketplace_refuses_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        run("seed_marketplace", *args, "--quiet")


def create_role_user(username: str, password: str, role: str) -> str:
    return run("create_role_user", "--username", username, "--password", password, "--role", role)


def test_create_role_user_is_idempotent_and_sets_staff_by_role():
    create_role_user("ops", "Blue-harbour-41", "OPERATIONS")
    out = create_role_user("ops", "Green-lantern-72", "VIEWER")

    assert "updated VIEWER user ops" in out
    user = get_user_model().objects.get(username="ops")
    assert user_role(user) == "VIEWER"
    assert not user.is_staff
    assert user.check_password("Green-lantern-72")
    assert user.groups.count() == 1
    create_role_user("boss", "Quiet-meadow-93", "ADMIN")
    boss = get_user_model().objects.get(username="boss")
    assert boss.is_staff and boss.has_perm("healing.change_stuckrule")
    ops = get_user_model().objects.get(username="ops")
    create_role_user("ops", "Quiet-meadow-93", "OPERATIONS")
    ops = get_user_model().objects.get(username="ops")
    assert ops.has_perm("healing.view_stuckrule") and not ops.has_perm("healing.change_stuckrule")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("1", "too short"),
        ("12345678901", "entirely numeric"),
        ("password123", "too common"),
        ("operator-7", "too similar to the username"),
    ],
)
def test_create_role_user_refuses_a_password_the_validators_refuse(password, message):
    with pytest.raises(CommandError, match=f"password refused: .*{message}"):
        create_role_user("operator-7", password, "VIEWER")
    assert not get_user_model().objects.filter(username="operator-7").exists()


def test_create_role_user_rejects_an_unknown_role():
    with pytest.raises(CommandError, match="unknown role 'ROOT'"):
        run("create_role_user", "--username", "x", "--password", "y", "--role", "ROOT")


def test_unknown_role_exits_non_zero_with_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "create_role_user",
            "--username",
            "x",
            "--password",
            "y",
            "--role",
            "ROOT",
        ],
        capture_output=True,
        text=True,
        env={
            **__import__("os").environ,
            "DEBUG": "true",
            "SQLITE_PATH": str(tmp_path / "x.sqlite3"),
            "DATABASE_URL": "",
        },
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "CommandError: unknown role 'ROOT'; use one of ADMIN, OPERATIONS, VIEWER"
    ]
