"""A stateful property test of the healing engine (hypothesis).

Orders get stuck, vendors act, cycles run, healing messages are delivered,
duplicated, retried or dropped, leases run out, operators cancel, refund again
and resolve manual holds, the gateway fails, the blast-radius guard trips.
After every step the invariants (docs/INVARIANTS.md) are checked against the database.

Runs in the unit phase (messages are executed in-process through
``healing_execute``); the budget is fixed so CI time is too.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pytest_django.fixtures import Settings as DjangoSettings

from healing.cycle import healing_cycle_run
from healing.errors import HealingTransientError
from healing.execution import healing_execute, healing_fail, manual_intervention_resolve
from healing.guard import GUARDED_ACTIONS
from healing.models import (
    ACTIVE_STATUSES,
    HealingAction,
    HealingCycle,
    HealingMetric,
    RecoveryStatus,
    StuckRule,
)
from notifications.models import AdminNotification, NotificationDelivery
from orders import services as order_services
from orders.errors import DomainError
from orders.models import (
    Buyer,
    CreditAccount,
    CreditEntry,
    Order,
    OrderStatusChange,
    Vendor,
    VendorAssignment,
    VendorMessage,
    status_write_allowed,
)
from tests.audit import audit_rows_delete
from tests.healing.conftest import ScriptedGateway

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

# The CI budget: fixed, so the test's cost is too.
EXAMPLES = 60
STEPS = 40
ORDERS = 4
SEEN: Counter = Counter()
FORWARD = {
    "PENDING": "CONFIRMED",
    "CONFIRMED": "ACCEPTED",
    "ACCEPTED": "PROCESSING",
    "PROCESSING": "SHIPPED",
    "SHIPPED": "DELIVERED",
}


def _wipe() -> None:
    for model in (
        NotificationDelivery,
        AdminNotification,
        HealingAction,
        HealingCycle,
        HealingMetric,
        VendorMessage,
        CreditEntry,
        OrderStatusChange,
        VendorAssignment,
        Order,
        CreditAccount,
        Buyer,
        Vendor,
    ):
        # Audit tables refuse DELETE (invariant 13) except as retention does it.
        audit_rows_delete(model.objects.all())


class HealingMachine(RuleBasedStateMachine):
    # pytest-django's settings fixture, set on the class by the test below.
    django_settings: DjangoSettings

    def __init__(self) -> None:
        super().__init__()
        _wipe()
        self.vendors = [
            Vendor.objects.create(name=f"V{i}", capacity=50, acceptance_rate=0.5 + i / 10)
            for i in range(3)
        ]
        self.orders: list[int] = []
        for i in range(ORDERS):
            buyer = Buyer.objects.create(name=f"B{i}")
            order = order_services.order_create(
                buyer=buyer,
                vendor=self.vendors[i % 2],
                total=Decimal("100.00"),
                payment_method="CREDIT",
            )
            self.orders.append(order.pk)
        self.thresholds = dict(StuckRule.objects.values_list("status", "threshold_minutes"))
        # The "broker": messages sent by cycles and retries, not yet delivered.
        self.inbox: list[tuple[int, str]] = []
        self.dispatched: list[tuple[int, str, bool]] = []
        self.last_cycle_at: datetime | None = None
        self.leases_expired = False

    # --- The world ----------------------------------------------------------

    def _order(self, index: int) -> Order:
        return Order.objects.get(pk=self.orders[index % ORDERS])

    def _age(self, order: Order) -> None:
        """Time passes for one order: its clock goes past its rule's threshold
        (only an order not stuck yet: a stuck one keeps its episode)."""
        threshold = self.thresholds.get(order.status)
        if threshold is None or timezone.now() - order.stuck_since > timedelta(minutes=threshold):
            return
        token = status_write_allowed.set(True)
        try:
            Order.objects.filter(pk=order.pk).update(
                stuck_since=timezone.now() - timedelta(minutes=threshold + 1)
            )
        finally:
            status_write_allowed.reset(token)

    @rule(index=st.integers(0, ORDERS - 1))
    def order_gets_stuck(self, index: int) -> None:
        self._age(self._order(index))

    @rule()
    def every_order_gets_stuck(self) -> None:
        """A systemic fault: every open order stalls at once (the guard's case)."""
        for order in Order.objects.filter(pk__in=self.orders):
            self._age(order)

    @rule(index=st.integers(0, ORDERS - 1))
    def vendor_acts(self, index: int) -> None:
        order = self._order(index)
        if order.status not in FORWARD:
            return
        try:
            with transaction.atomic():
                order_services.order_transition(
                    order=order,
                    to_status=FORWARD[order.status],
                    actor=order_services.Actor.vendor(),
                )
        except DomainError:
            pass

    @rule(index=st.integers(0, ORDERS - 1), really=st.integers(0, 3))
    def operator_cancels(self, index: int, really: int) -> None:
        if really:  # operators cancel rarely: most orders should live long
            return
        order = self._order(index)
        try:
            with transaction.atomic():
                order_services.order_cancel(
                    order=order, actor=order_services.Actor.system(), reason="operator"
                )
        except DomainError:
            pass

    @rule(index=st.integers(0, ORDERS - 1))
    def operator_refunds_again(self, index: int) -> None:
        order = self._order(index)
        if order.status == "CANCELLED":
            order_services.credit_refund(order=order)

    @rule(index=st.integers(0, ORDERS - 1))
    def operator_resolves(self, index: int) -> None:
        manual_intervention_resolve(order_id=self.orders[index])

    @rule()
    def leases_run_out(self) -> None:
        """Time passes beyond every lease (a test-only move of the deadline)."""
        HealingAction.objects.filter(recovery_status__in=ACTIVE_STATUSES).update(
            lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
        self.leases_expired = True

    @rule(guard=st.booleans(), workers_keep_up=st.booleans())
    def cycle_runs(self, guard: bool, workers_keep_up: bool) -> None:
        """A beat. When "workers keep up" is drawn its messages are delivered
        at once, in order (the normal case); otherwise they wait in the inbox
        for the deliver / duplicate / drop rules."""
        # The guard trips at 3 stuck orders (of 4) when "guard" is drawn.
        self.django_settings.HEALING_GUARD_MIN_STUCK = 3 if guard else 10**9
        self.last_cycle_at = timezone.now()

        def dispatch(pairs: list[tuple[int, str]]) -> None:
            # Invariant 6: a message leaves only once its row is committed and
            # carries the row's current claim token.
            for healing_id, token in pairs:
                row = HealingAction.objects.filter(pk=healing_id).values_list(
                    "claim_token", "recovery_status"
                )
                assert [(uuid.UUID(token), "PENDING")] == list(row)
            self.inbox.extend(pairs)

        before = len(self.inbox)
        with transaction.atomic():
            # Called inside a transaction, the cycle's messages wait for its commit.
            result = healing_cycle_run(trigger="BEAT", dispatch=dispatch)
            assert len(self.inbox) == before
        assert result.ran
        assert len(self.inbox) == before + result.dispatched
        self.leases_expired = False
        if workers_keep_up:
            while len(self.inbox) > before:
                self._deliver(before, keep=False, fail=False, last_retry=False)

    def _deliver(self, position: int, *, keep: bool, fail: bool, last_retry: bool) -> None:
        healing_id, token = self.inbox[position % len(self.inbox)]
        if not keep:
            self.inbox.pop(position % len(self.inbox))
        gateway = ScriptedGateway(fail=1 if fail else 0)
        try:
            healing_execute(healing_id=healing_id, token=token, gateway=gateway)
        except HealingTransientError as exc:
            if last_retry:
                healing_fail(healing_id=healing_id, token=exc.token, error=str(exc), retries=3)
            else:
                self.inbox.append((healing_id, str(exc.token)))

    @precondition(lambda self: self.inbox)
    @rule(
        position=st.integers(0, 50),
        fail=st.booleans(),
        last_retry=st.booleans(),
    )
    def deliver(self, position: int, fail: bool, last_retry: bool) -> None:
        self._deliver(position, keep=False, fail=fail, last_retry=last_retry)

    @precondition(lambda self: self.inbox)
    @rule()
    def worker_drains_the_queue(self) -> None:
        """Normal operation: every queued message is delivered once, in order."""
        while self.inbox:
            self._deliver(0, keep=False, fail=False, last_retry=False)

    @precondition(lambda self: self.inbox)
    @rule(position=st.integers(0, 50))
    def deliver_a_duplicate(self, position: int) -> None:
        """The broker delivers a message and keeps a copy for later."""
        self._deliver(position, keep=True, fail=False, last_retry=False)

    @precondition(lambda self: self.inbox)
    @rule(position=st.integers(0, 50))
    def drop(self, position: int) -> None:
        """A message is lost (broker restart, worker killed before the claim)."""
        self.inbox.pop(position % len(self.inbox))

    def teardown(self) -> None:
        # What the examples reached, so a reader can see the budget is not idle.
        SEEN.update(HealingAction.objects.values_list("recovery_status", flat=True))
        SEEN.update(
            f"skip:{reason}"
            for reason in HealingAction.objects.exclude(skip_reason="").values_list(
                "skip_reason", flat=True
            )
        )
        SEEN["guard_tripped_cycles"] += HealingCycle.objects.filter(guard_tripped=True).count()
        SEEN["refunds"] += CreditEntry.objects.filter(kind="REFUND").count()

    # --- Invariants (docs/INVARIANTS.md), read from the database ----------

    @invariant()
    def one_history_chain_per_order(self) -> None:
        """1: every status change is a history row; the rows form one chain."""
        statuses = dict(Order.objects.values_list("pk", "status"))
        chains: dict[int, list[tuple[str, str]]] = {pk: [] for pk in statuses}
        for order_id, from_status, to_status in OrderStatusChange.objects.order_by(
            "order_id", "id"
        ).values_list("order_id", "from_status", "to_status"):
            chains[order_id].append((from_status, to_status))
        for pk, steps in chains.items():
            state = ""
            for from_status, to_status in steps:
                assert from_status == state, (pk, steps)
                state = to_status
            assert state == statuses[pk], (pk, steps, statuses[pk])

    @invariant()
    def at_most_one_active_healing_per_order(self) -> None:
        """2."""
        assert not (
            HealingAction.objects.filter(recovery_status__in=ACTIVE_STATUSES)
            .values("order_id")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .exists()
        )

    @invariant()
    def each_success_had_one_effect_in_its_detected_status(self) -> None:
        """3 and 4: duplicates had no effect; an effect happened only in the
        detected status; at most one success per stuck episode."""
        successes = HealingAction.objects.filter(recovery_status=RecoveryStatus.SUCCESS)
        acted = Counter(
            successes.exclude(recovery_action="MANUAL_INTERVENTION").values_list(
                "order_id", "detected_status"
            )
        )
        changes = Counter(
            OrderStatusChange.objects.filter(actor_type="HEALING").values_list(
                "order_id", "from_status"
            )
        )
        assert acted == changes, (acted, changes)
        assert not (
            successes.values("order_id", "detected_status", "episode_started_at")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .exists()
        )

    @invariant()
    def credit_refunded_at_most_once_and_only_when_cancelled(self) -> None:
        """5."""
        refunds = dict(
            CreditEntry.objects.filter(kind="REFUND")
            .values("order_id")
            .annotate(n=Count("id"))
            .values_list("order_id", "n")
        )
        for pk, status in Order.objects.values_list("pk", "status"):
            assert refunds.get(pk, 0) == (1 if status == "CANCELLED" else 0), (pk, status)
        balances = CreditEntry.objects.values("order_id").annotate(total=Sum("amount"))
        assert all(row["total"] in (0, Decimal("-100.00")) for row in balances)

    @invariant()
    def no_expired_lease_survives_a_cycle(self) -> None:
        """7: after a cycle, every active healing holds a live lease again
        (a lost task is picked up by the next cycle)."""
        if self.last_cycle_at is None or self.leases_expired:
            return
        assert not HealingAction.objects.filter(
            recovery_status__in=ACTIVE_STATUSES, lease_expires_at__lt=timezone.now()
        ).exists()

    @invariant()
    def guard_pauses_reassign_and_cancel(self) -> None:
        """8: a tripped cycle's reassign/cancel/escalation healings never ran."""
        tripped = HealingAction.objects.filter(
            cycle__guard_tripped=True, recovery_action__in=GUARDED_ACTIONS
        )
        assert set(tripped.values_list("recovery_status", "skip_reason")) <= {("SKIPPED", "GUARD")}
        if HealingCycle.objects.filter(guard_tripped=True).exists():
            assert AdminNotification.objects.filter(
                notification_type="SYSTEM_ALERT", severity="CRITICAL"
            ).exists()


def test_invariants_hold_whatever_happens(settings):
    HealingMachine.django_settings = settings  # pytest-django restores it afterwards
    run_state_machine_as_test(
        HealingMachine,
        settings=hypothesis_settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(f"\nstateful: {EXAMPLES} examples x {STEPS} steps reached {dict(SEEN)}")
    # Hypothesis enables a random subset of rules per example (swarm testing),
    # so what is reached varies with the seed; these two must always be.
    assert SEEN["SUCCESS"] >= 10 and SEEN["guard_tripped_cycles"] >= 1, SEEN
