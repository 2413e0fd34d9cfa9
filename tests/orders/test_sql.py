"""orders.sql: the heal path's explicit statements write what the ORM would."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders import sql
from orders.models import AssignmentOutcome, VendorAssignment, VendorMessage
from tests.factories import OrderFactory, VendorFactory

pytestmark = pytest.mark.django_db


def _message(order_id: int, vendor_id: int) -> VendorMessage:
    return VendorMessage(
        order_id=order_id,
        vendor_id=vendor_id,
        kind="OFFER",
        status="SENT",
        backend="record",
        created_at=timezone.now(),
    )


def test_rows_insert_writes_every_row_and_the_upsert_updates_only_its_fields():
    order, first, second = OrderFactory(vendor=None), VendorFactory(), VendorFactory()
    start = timezone.now()
    sql.rows_insert(
        [
            VendorAssignment(order_id=order.pk, vendor_id=first.pk, assigned_at=start),
            VendorAssignment(order_id=order.pk, vendor_id=second.pk, assigned_at=start),
        ]
    )
    later = timezone.now()
    sql.rows_insert(
        [
            VendorAssignment(
                order_id=order.pk,
                vendor_id=first.pk,
                assigned_at=later,
                ended_at=later,
                outcome=AssignmentOutcome.REASSIGNED,
            )
        ],
        unique=("order", "vendor"),
        update=("ended_at", "outcome"),
    )
    rows = {a.vendor_id: a for a in VendorAssignment.objects.filter(order=order)}
    assert set(rows) == {first.pk, second.pk}
    assert rows[first.pk].assigned_at == start  # not in `update`: kept
    assert rows[first.pk].ended_at == later
    assert rows[first.pk].outcome == AssignmentOutcome.REASSIGNED
    assert rows[second.pk].ended_at is None


@pytest.mark.django_db(transaction=True)
def test_flush_later_commits_the_row_and_leaves_the_session_synchronous():
    order = OrderFactory()
    with CaptureQueriesContext(connection) as queries:
        sql.rows_insert([_message(order.pk, order.vendor_id)], flush_later=True)
    assert VendorMessage.objects.filter(order=order).count() == 1
    sent = queries.captured_queries[-1]["sql"]
    if connection.vendor != "postgresql":
        assert "synchronous_commit" not in sent
        return
    assert sent.startswith("INSERT INTO")
    assert sent.endswith(" RETURNING set_config('synchronous_commit', 'off', true)")
    with connection.cursor() as cursor:  # SET LOCAL ended with the statement's own commit
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_returning_set_config_holds_for_the_statements_own_commit():
    """What flush_later relies on: set_config(..., true) evaluated in RETURNING
    sets the implicit transaction's synchronous_commit (its commit), then ends
    with it. A setting read back in a later statement of the same transaction
    shows it was in force there; autocommitted, the next statement is back on."""
    order = OrderFactory()
    insert, fields = sql._insert(VendorMessage, "postgresql", 1, ())
    row = _message(order.pk, order.vendor_id)
    params = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert + sql._FLUSH_LATER, params)
        assert cursor.fetchone()[0] == "off"
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "off"  # in force until this transaction commits
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.django_db(transaction=True)
def test_flush_later_never_touches_a_transaction_the_caller_holds():
    order = OrderFactory()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        sql.rows_insert([_message(order.pk, order.vendor_id)], flush_later=True)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                assert cursor.fetchone()[0] == "on"  # the caller's commit stays durable
    assert "synchronous_commit" not in queries.captured_queries[0]["sql"]
    assert VendorMessage.objects.filter(order=order).count() == 1


# --- Prepared statements (issue 15) ---------------------------------------------


def _prepared(marker: str) -> list[tuple[str, int]]:
    """This session's prepared statements whose text carries ``marker``, with their runs."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            [f"%{marker}%"],
        )
        return cursor.fetchall()


@pytest.mark.postgres
def test_a_statement_run_again_is_prepared_once_and_then_reused():
    vendor = VendorFactory()
    statement = "UPDATE vendors SET open_orders = open_orders WHERE id = %s /* reused */"
    for _ in range(10):
        sql.execute(statement, [vendor.pk], check=lambda updated: None)
    prepared = _prepared("/* reused */")
    assert len(prepared) == 1  # one text, one statement: values are parameters
    # psycopg prepares it once it has run it five times (prepare_threshold): the
    # sixth run and the four after it are the prepared statement's.
    assert prepared[0][1] == 5


@pytest.mark.postgres
def test_pipelined_statements_are_prepared_too():
    vendor = VendorFactory()
    statement = "UPDATE vendors SET open_orders = open_orders WHERE id = %s /* piped */"
    for _ in range(6):
        with transaction.atomic(), sql.pipelined():
            sql.execute(statement, [vendor.pk])
            sql.execute(statement, [vendor.pk])
    prepared = _prepared("/* piped */")
    assert len(prepared) == 1 and prepared[0][1] >= 2


@pytest.mark.postgres
def test_nothing_is_prepared_with_the_setting_off(settings):
    settings.DB_PREPARED_STATEMENTS = False
    vendor = VendorFactory()
    statement = "UPDATE vendors SET open_orders = open_orders WHERE id = %s /* off */"
    for _ in range(10):
        sql.execute(statement, [vendor.pk])
    assert _prepared("/* off */") == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_flush_later_insert_is_prepared_like_the_rest():
    order = OrderFactory()
    for _ in range(8):
        sql.rows_insert([_message(order.pk, order.vendor_id)], flush_later=True)
    assert VendorMessage.objects.filter(order=order).count() == 8
    prepared = _prepared("synchronous_commit")
    assert len(prepared) == 1 and prepared[0][1] == 3  # runs six to eight


@pytest.mark.postgres
def test_nothing_is_tallied_inside_untallied_and_what_was_prepared_stays_prepared():
    vendor = VendorFactory()
    before = "UPDATE vendors SET open_orders = open_orders WHERE id = %s /* before */"
    inside = "UPDATE vendors SET open_orders = open_orders WHERE id = %s /* inside */"
    for _ in range(6):
        sql.execute(before, [vendor.pk], check=lambda updated: None)
    threshold = connection.connection.prepare_threshold
    assert threshold is not None
    with sql.untallied():
        for _ in range(10):
            sql.execute(inside, [vendor.pk], check=lambda updated: None)
    assert _prepared("/* inside */") == []  # ten runs, never counted
    assert connection.connection.prepare_threshold == threshold
    runs = _prepared("/* before */")[0][1]
    sql.execute(before, [vendor.pk], check=lambda updated: None)
    assert _prepared("/* before */")[0][1] == runs + 1  # still the prepared one


@pytest.mark.postgres
def test_untallied_gives_the_setting_back_when_its_block_fails():
    VendorFactory()
    threshold = connection.connection.prepare_threshold
    with pytest.raises(RuntimeError), sql.untallied():
        raise RuntimeError
    assert connection.connection.prepare_threshold == threshold
