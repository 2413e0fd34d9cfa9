"""The buyer's credit: the limit checked at intake, the refund made exactly once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from orders.errors import CreditLimitExceeded
from orders.models import CreditAccount, CreditEntry, CreditEntryKind, Order, PaymentMethod
from orders.selectors import credit_balance


def credit_charge_check(*, buyer_id: int, total: Decimal) -> None:
    """Refuse a CREDIT charge of ``total`` past the buyer's available credit.

    Available = the account's ``credit_limit`` + its ledger balance (charges
    are negative). The account row is locked (``FOR NO KEY UPDATE``) until
    the caller's transaction ends, so call it inside the transaction that
    writes the charge: a concurrent intake for the same buyer waits, then sums
    the ledger with this charge in it, and two orders cannot both pass the
    limit.
    """
    # NO KEY UPDATE: intakes for the buyer queue behind each other, while a refund's
    # ledger insert (its foreign key takes KEY SHARE on this row) is not blocked, so
    # a healing's cancel holding a vendor row cannot deadlock against an intake.
    account = CreditAccount.objects.select_for_update(no_key=True).filter(buyer_id=buyer_id).first()
    if account is None:
        raise CreditLimitExceeded(
            f"buyer {buyer_id} has no credit account: CREDIT needs one "
            "(pay by CARD or BANK_TRANSFER)",
            field="paymentMethod",
        )
    available = account.credit_limit + credit_balance(account=account)
    if total > available:
        raise CreditLimitExceeded(
            f"amount {total} exceeds buyer {buyer_id}'s available credit {available} "
            f"(limit {account.credit_limit})",
            field="amount",
        )


def credit_refund(*, order: Order, now: datetime | None = None) -> bool:
    """Refund an order's credit charge; True when this call refunded it.

    ``INSERT ... ON CONFLICT DO NOTHING`` against the one-refund-per-order
    constraint: concurrent callers on separate connections serialise on the
    unique index, and exactly one of them inserts (invariant 5).
    """
    if order.payment_method != PaymentMethod.CREDIT or order.total <= 0:
        return False
    now = now or timezone.now()
    table = CreditEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (account_id, order_id, kind, amount, created_at) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [order.buyer_id, order.pk, CreditEntryKind.REFUND, order.total, now],
        )
        return cursor.rowcount == 1
