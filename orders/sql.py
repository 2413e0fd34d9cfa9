"""Hot writes as explicit statements, built once per process.

Building and compiling a queryset (``filter().update()``, ``bulk_create``)
for every heal cost about a third of a heal's CPU (docs/BENCHMARK.md "Heal
path, issue 15"). The statements of the heal path (``orders.services``' order
writes, ``healing.actions``' result and message rows) take every name from
the models (quoted) and every value as a parameter prepared by its field
(``Field.get_db_prep_save``: the same adaptation the ORM applies, so SQLite
and PostgreSQL both get their types). Nothing here knows a model: the
statements themselves live with the service that owns the rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from functools import cache
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, models
from django.db.backends.utils import CursorWrapper


def _field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise TypeError(f"{model.__name__}.{name} is not a concrete field")
    return field


def column(model: type[models.Model], name: str) -> str:
    """The quoted column of ``model``'s field ``name``."""
    return connection.ops.quote_name(str(_field(model, name).column))


def table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def prepared(model: type[models.Model], name: str, value: Any) -> Any:
    """``value`` as the database takes it for ``model``'s field ``name``."""
    return _field(model, name).get_db_prep_save(value, connection)


@cache
def _insert(
    model: type[models.Model], vendor: str, rows: int, upsert: tuple[tuple[str, ...], ...]
) -> tuple[str, list[Any]]:
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, models.AutoField)]
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = f"INSERT INTO {table(model)} ({columns}) VALUES {', '.join([one] * rows)}"  # noqa: S608
    if upsert:
        unique, update = upsert
        target = ", ".join(column(model, name) for name in unique)
        changes = ", ".join(f"{column(model, n)} = EXCLUDED.{column(model, n)}" for n in update)
        # PostgreSQL and SQLite (3.24+) spell the upsert the same way.
        sql += f" ON CONFLICT ({target}) DO UPDATE SET {changes}"
    return sql, fields


def cursor() -> CursorWrapper:
    """A cursor for the heal path's fixed statements (Django's wrapper around it).

    On PostgreSQL its values are bound server-side, so psycopg prepares a
    statement once this connection has run its text five times (``prepare_threshold``)
    and from then on PostgreSQL skips parsing and planning it. Django's own
    cursors bind client-side: every text carries its values, so nothing they
    send can be prepared; the ORM keeps them. ``DB_PREPARED_STATEMENTS`` off
    (behind an older pgbouncer), or SQLite: Django's cursor.
    """
    if connection.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    # What connection.cursor() does before it makes its cursor.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    # psycopg's Cursor(connection) with Django's mixin; the stubs know neither.
    factory: Any = ServerBindingCursor
    bound = factory(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(bound)
    return connection.make_cursor(bound)


@contextlib.contextmanager
def untallied() -> Iterator[None]:
    """Statements in the block are not tallied for preparing (PostgreSQL).

    psycopg counts each statement text a connection runs, to prepare the
    ones it sees ``prepare_threshold`` times, and keeps the last 100 texts
    it counted. A client-side bound statement (every ORM query) carries its
    values in its text and is never seen twice: a cycle's 2,000-row INSERT
    is about 0.5 MB of text, and a 100k-order backlog left 32 MB of them
    held by the connection (docs/BENCHMARK.md round 9). The block runs with
    the tally off (``prepare_threshold = None``, psycopg's public setting);
    statements prepared before it stay prepared for after it.
    """
    raw = connection.connection if connection.vendor == "postgresql" else None
    threshold = getattr(raw, "prepare_threshold", None)
    if raw is None or threshold is None:
        yield
        return
    raw.prepare_threshold = None
    try:
        yield
    finally:
        raw.prepare_threshold = threshold


def _flush_later_allowed() -> bool:
    """True where one autocommitted statement can skip waiting for its WAL
    flush: PostgreSQL outside a transaction block."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


# SET LOCAL for the statement's own implicit transaction, from inside the
# statement: RETURNING is evaluated as the rows are written, before that
# transaction commits, so its COMMIT does not wait for the WAL flush, and the
# setting ends with it. One statement, so it binds server-side and is prepared
# like the rest (as two statements in one simple query it was parsed and
# planned on every heal: round 8, docs/BENCHMARK.md). The next synchronous
# commit on the server (any session's) flushes it with its own, as WAL is one
# sequence.
_FLUSH_LATER = " RETURNING set_config('synchronous_commit', 'off', true)"


def rows_insert(
    instances: Sequence[models.Model],
    *,
    unique: tuple[str, ...] = (),
    update: tuple[str, ...] = (),
    flush_later: bool = False,
) -> None:
    """Insert unsaved instances of one model in one statement.

    Unlike ``bulk_create`` it opens no transaction of its own (one INSERT is
    atomic already: no BEGIN/COMMIT round trip when autocommitted) and sets no
    primary keys on the instances (the heal path never reads them back).
    ``unique`` and ``update``: on a conflict over those fields, write ``update``'s
    (``bulk_create(update_conflicts=True)``'s upsert). ``flush_later``: when
    autocommitted on PostgreSQL, its commit does not wait for the disk
    (``synchronous_commit`` off for this one statement; the caller says why
    losing it in a server crash is acceptable).
    """
    if not instances:
        return
    model = type(instances[0])
    upsert = (unique, update) if unique else ()
    sql, fields = _insert(model, connection.vendor, len(instances), upsert)
    params = [
        field.get_db_prep_save(getattr(instance, field.attname), connection)
        for instance in instances
        for field in fields
    ]
    if flush_later and _flush_later_allowed():
        sql += _FLUSH_LATER
    execute(sql, params)


# --- One round trip for a transaction's statements -------------------------------

Check = Callable[[int], None]  # called with the statement's row count; raises to refuse


class _Pipeline:
    """The statements sent inside one :func:`pipelined` block and their checks."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, Check | None]] = []

    def checks_run(self, *, ran_only: bool = False) -> None:
        """Each statement's check, in the order they were sent.

        ``ran_only``: after a database error, only the statements the server
        answered before it (the rest never ran)."""
        for cursor, check in self.sent:
            rowcount = cursor.rowcount
            if ran_only and rowcount < 0:
                return
            if check is not None:
                check(rowcount)

    def close(self) -> None:
        for cursor, _ in self.sent:
            cursor.close()


_pipeline: ContextVar[_Pipeline | None] = ContextVar("orders_sql_pipeline", default=None)


def execute(statement: str, params: Sequence[Any], *, check: Check | None = None) -> None:
    """Run one statement; ``check(rowcount)`` says whether it did what was meant.

    Inside :func:`pipelined` the statement is only sent, and its check runs
    when the block ends. Outside it (and always on SQLite) both run now.
    The statement goes on :func:`cursor`: prepared once it repeats.
    """
    batch = _pipeline.get()
    if batch is None:
        with cursor() as sent:
            sent.execute(statement, params)
            if check is not None:
                check(sent.rowcount)
        return
    sent = cursor()
    sent.execute(statement, params)
    batch.sent.append((sent, check))


@contextlib.contextmanager
def pipelined() -> Iterator[None]:
    """Send the block's :func:`execute` statements in one round trip (PostgreSQL).

    Issue 15: a reassignment's apply step is five statements, and each waited
    for its answer before the next was sent; in psycopg's pipeline mode they
    all go at once and the answers come back together. The statements and
    their checks are the same as without it, and the checks run in the same
    order, so a refusal raises what it raised before: the statements after a
    refused one ran too, but the block is inside a transaction (required) and
    the refusal rolls all of it back. After a database error, the checks of
    the statements that ran before it decide first, so an order that moved on
    still reads as moved on, not as whatever the next statement then hit.
    A no-op on SQLite.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("orders.sql.pipelined() needs a transaction: a refusal rolls it back")
    if connection.vendor != "postgresql" or _pipeline.get() is not None:
        yield  # SQLite, or inside another block: that one sends and checks
        return
    connection.ensure_connection()
    batch = _Pipeline()
    token = _pipeline.set(batch)
    try:
        try:
            with connection.wrap_database_errors, connection.connection.pipeline() as pipe:
                try:
                    yield
                finally:
                    _pipeline.reset(token)  # the checks' own reads are not pipelined
                pipe.sync()
        except DatabaseError:
            # A check that must read fails in the aborted transaction: the
            # error itself is the answer then.
            with contextlib.suppress(DatabaseError):
                batch.checks_run(ran_only=True)
            raise
        batch.checks_run()
    finally:
        batch.close()
