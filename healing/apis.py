"""The self-healing API's operations: one APIView each (HackSoft style).

Validate, call one service or selector, shape the answer. Errors are raised
(``DomainError`` or DRF exceptions) and shaped by ``api.errors.exception_handler``;
no view catches to build an error. The audit trail's reads (healing actions,
cycles) are in ``healing.apis_history``, reports (statistics, KPIs) in
``healing.apis_reports``, health and ``/metrics`` in ``healing.apis_health``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.db import connections
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.caching import read_through
from api.errors import ApiNotFound
from api.inputs import MAX_ID, StrictInputSerializer, body_input, path_id, query_input
from api.permissions import IsOperator
from api.schema import AUTH_ERRORS, error_responses, seed_example
from api.throttles import SettingsScopedThrottle
from healing import selectors
from healing.broker import broker_check
from healing.cycle import CycleReport, cycle_refresh_counts, cycle_run_and_wait, healing_cycle_run
from healing.detection import stuck_orders_detect
from healing.dispatch import healings_dispatch
from healing.errors import CycleAlreadyRunning
from healing.execution import healing_request
from healing.models import CycleStatus, HealingCycle, IssueType, RecoveryAction, Trigger
from healing.serializers import HealingActionSerializer
from orders.models import Order


def order_get_or_404(*, order_id: int) -> Order:
    order = Order.objects.filter(pk=order_id).first() if 0 < order_id <= MAX_ID else None
    if order is None:
        raise ApiNotFound(f"order {order_id} does not exist", field="orderId")
    return order


# --- Stuck orders -------------------------------------------------------------


class StuckOrdersApi(APIView):
    """Detect stuck orders now (the seed's `stuck_orders_view`), oldest first."""

    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        limit = serializers.IntegerField(
            required=False, min_value=1, max_value=10_000, default=1000
        )

    class OutputSerializer(serializers.Serializer):
        class StuckOrderSerializer(serializers.Serializer):
            order_id = serializers.IntegerField()
            order_number = serializers.CharField()
            status = serializers.CharField()
            issue_type = serializers.ChoiceField(choices=IssueType.choices)
            stuck_since = serializers.DateTimeField()
            stuck_minutes = serializers.IntegerField()
            recommended_action = serializers.ChoiceField(choices=RecoveryAction.choices)
            attempts = serializers.IntegerField()
            active_healing_count = serializers.IntegerField()
            vendor_id = serializers.IntegerField(allow_null=True)
            dry_run = serializers.BooleanField()

            class Meta:
                ref_name = "StuckOrder"

        success = serializers.BooleanField()
        count = serializers.IntegerField()
        stuckOrders = StuckOrderSerializer(many=True)
        ageSeconds = serializers.FloatField(
            help_text="How old this answer is (served from a cache of API_READ_CACHE_SECONDS)."
        )

        class Meta:
            ref_name = "StuckOrdersResponse"

    @extend_schema(
        operation_id="stuck_orders_list",
        parameters=[InputSerializer],
        responses={200: OutputSerializer, **error_responses(400, *AUTH_ERRORS)},
        examples=[
            seed_example(
                "Seed example",
                {
                    "success": True,
                    "count": 3,
                    "stuckOrders": [
                        {
                            "order_id": 123,
                            "issue_type": "STUCK_PENDING",
                            "stuck_minutes": 45,
                            "recommended_action": "REASSIGN_VENDOR",
                        }
                    ],
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        params = query_input(self.InputSerializer, request)
        limit = params["limit"]
        rows, age = read_through(
            key=f"stuck-orders:{limit}",
            seconds=settings.API_READ_CACHE_SECONDS,
            compute=lambda: _stuck_rows(limit=limit),
        )
        return Response(
            {"success": True, "count": len(rows), "stuckOrders": rows, "ageSeconds": age}
        )


_STUCK_FIELDS = (
    "order_id",
    "order_number",
    "status",
    "issue_type",
    "stuck_minutes",
    "recommended_action",
    "attempts",
    "active_healing_count",
    "vendor_id",
    "dry_run",
)
_DATETIME = serializers.DateTimeField()


def _stuck_rows(*, limit: int) -> list[dict[str, Any]]:
    """Plain rows (thousands of them: no per-field serializer on this path)."""
    return [
        {
            **{name: getattr(item, name) for name in _STUCK_FIELDS},
            "stuck_since": _DATETIME.to_representation(item.stuck_since),
        }
        for item in stuck_orders_detect(limit=limit)
    ]


# --- Heal one order -----------------------------------------------------------


class HealOrderApi(APIView):
    """Heal one order now: the rule's recommended action unless `recoveryAction` names one.

    Answers 200 with the healing whatever its outcome (`recovery_status`);
    a transient vendor-gateway failure hands the healing to a worker, which
    retries it with backoff (`retry_scheduled: true`). Without an explicit
    action, an order that is not stuck answers 409 with the reason. Body keys
    are camelCase; an unknown key (`recovery_action`) is a 400 naming it.
    """

    permission_classes = [IsOperator]
    throttle_classes = [SettingsScopedThrottle]
    throttle_scope = "healing"

    class InputSerializer(StrictInputSerializer):
        issueType = serializers.ChoiceField(choices=IssueType.choices, required=False)
        recoveryAction = serializers.ChoiceField(choices=RecoveryAction.choices, required=False)

        class Meta:
            ref_name = "HealRequest"

    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        retry_scheduled = serializers.BooleanField()
        healing = HealingActionSerializer()

        class Meta:
            ref_name = "HealResponse"

    @extend_schema(
        operation_id="heal_order",
        parameters=[
            OpenApiParameter("order_id", int, OpenApiParameter.PATH, description="The order's id.")
        ],
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            **error_responses(400, *AUTH_ERRORS, 404, 409, 413, 415, 429),
        },
        examples=[
            seed_example(
                "Seed example",
                {"issueType": "STUCK_PENDING", "recoveryAction": "REASSIGN_VENDOR"},
                request=True,
            )
        ],
    )
    def post(self, request: Request, order_id: str) -> Response:
        order_pk = path_id(order_id, field="orderId")
        data = body_input(self.InputSerializer, request)
        report = healing_request(
            order=order_get_or_404(order_id=order_pk),
            requested_by=request.user,
            issue_type=data.get("issueType"),
            recovery_action=data.get("recoveryAction"),
        )
        return Response(
            self.OutputSerializer(
                {
                    "success": True,
                    "retry_scheduled": report.retry_scheduled,
                    "healing": report.healing,
                }
            ).data
        )


# --- Run a cycle --------------------------------------------------------------


class RunCycleApi(APIView):
    """Run one healing cycle now: detect, dispatch, wait a bounded time for outcomes.

    `result.pending` counts healings still running on workers when the wait
    (setting `HEALING_API_WAIT_SECONDS`) ran out. With `?wait=0` the answer
    comes as soon as the healings are dispatched: 202, with the cycle to poll
    in `result.cycle_id` and the `Location` header (`GET cycles/{id}`).
    409 when a cycle is already running.
    """

    permission_classes = [IsOperator]
    throttle_classes = [SettingsScopedThrottle]
    throttle_scope = "healing"

    class QuerySerializer(serializers.Serializer):
        wait = serializers.BooleanField(
            required=False,
            default=True,
            help_text="`0` (or `false`): do not wait for outcomes; answer 202 with the cycle id.",
        )

        class Meta:
            ref_name = "RunCycleQuery"

    class InputSerializer(StrictInputSerializer):
        """No body fields: an empty body or `{}`."""

        class Meta:
            ref_name = "RunCycleRequest"

    class OutputSerializer(serializers.Serializer):
        class ResultSerializer(serializers.Serializer):
            healed = serializers.IntegerField()
            failed = serializers.IntegerField()
            cycle_id = serializers.IntegerField()
            detected = serializers.IntegerField()
            dispatched = serializers.IntegerField()
            redispatched = serializers.IntegerField()
            pending = serializers.IntegerField()
            skipped = serializers.IntegerField()
            escalated = serializers.IntegerField()
            guard_tripped = serializers.BooleanField()
            timed_out = serializers.BooleanField()
            waited_seconds = serializers.FloatField()

            class Meta:
                ref_name = "CycleRunResult"

        success = serializers.BooleanField()
        result = ResultSerializer()

        class Meta:
            ref_name = "RunCycleResponse"

    @extend_schema(
        operation_id="run_cycle",
        parameters=[QuerySerializer],
        request=None,
        responses={
            200: OutputSerializer,
            202: OpenApiResponse(
                OutputSerializer,
                description=(
                    "`?wait=0`: the cycle ran and dispatched its healings; poll "
                    "`GET /api/v1/self-healing/cycles/{result.cycle_id}` (also in `Location`)."
                ),
            ),
            **error_responses(400, *AUTH_ERRORS, 409, 413, 415, 429),
        },
        examples=[
            seed_example("Seed example", {"success": True, "result": {"healed": 5, "failed": 1}})
        ],
    )
    def post(self, request: Request) -> Response:
        wait = query_input(self.QuerySerializer, request)["wait"]
        body_input(self.InputSerializer, request)
        broker_check()  # a web host cut off from the broker: 503, nothing started
        report = _cycle_run(wait=wait)
        cycle = report.cycle
        result = {
            "healed": cycle.healed,
            "failed": cycle.failed,
            "cycle_id": cycle.pk,
            "detected": cycle.detected,
            "dispatched": report.result.dispatched,
            "redispatched": report.result.redispatched,
            "pending": cycle.pending,
            "skipped": cycle.skipped,
            "escalated": cycle.escalated,
            "guard_tripped": cycle.guard_tripped,
            "timed_out": report.timed_out,
            "waited_seconds": round(report.waited_seconds, 3),
        }
        body = self.OutputSerializer({"success": True, "result": result}).data
        if wait:
            return Response(body)
        location = request.build_absolute_uri(f"/api/v1/self-healing/cycles/{cycle.pk}")
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


def _cycle_run(*, wait: bool) -> CycleReport:
    """Run one cycle for the API; the answer never waits longer than the wait budget.

    With workers the healings run there (``cycle_run_and_wait``). With no broker
    (in-process tasks) they would all run inside this request, so a cycle of a
    few hundred stuck orders outlived a client's timeout, ``?wait=0`` included:
    here the healings run inline until the budget (``HEALING_API_WAIT_SECONDS``,
    0 with ``?wait=0``) is spent and the rest on a background thread of this
    process, and the answer counts them as pending (poll the cycle).
    """
    budget = settings.HEALING_API_WAIT_SECONDS if wait else 0.0
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return cycle_run_and_wait(trigger=Trigger.API, wait_seconds=budget)
    started = time.monotonic()
    deadline = started + budget
    result = healing_cycle_run(trigger=Trigger.API, dispatch=_InProcessDispatch(deadline))
    if not result.ran or result.cycle_id is None:
        running = HealingCycle.objects.filter(status=CycleStatus.RUNNING).first()
        reason = (
            f"cycle {running.pk} ({running.trigger}) has been running since "
            f"{running.started_at.isoformat()}"
            if running
            else result.reason
        )
        raise CycleAlreadyRunning(f"another cycle is running: {reason}")
    cycle = cycle_refresh_counts(cycle=HealingCycle.objects.get(pk=result.cycle_id))
    while cycle.pending and time.monotonic() < deadline:
        time.sleep(min(settings.HEALING_API_POLL_SECONDS, max(deadline - time.monotonic(), 0)))
        cycle_refresh_counts(cycle=cycle)
    return CycleReport(cycle=cycle, result=result, waited_seconds=time.monotonic() - started)


class _InProcessDispatch:
    """In-process heals: inline while the deadline allows, the rest on a thread."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, pairs: list[tuple[int, str]]) -> None:
        for index, pair in enumerate(pairs):
            if time.monotonic() >= self.deadline:
                rest = pairs[index:]
                threading.Thread(
                    target=_dispatch_rest, args=(rest,), name="run-cycle-rest", daemon=True
                ).start()
                return
            healings_dispatch([pair])


def _dispatch_rest(pairs: list[tuple[int, str]]) -> None:
    try:
        healings_dispatch(pairs)
    finally:
        connections.close_all()  # this thread's own connections


# --- Rules --------------------------------------------------------------------


class RuleListApi(APIView):
    """The stuck rules: threshold per status and the escalation ladder."""

    permission_classes = [IsOperator]

    class OutputSerializer(serializers.Serializer):
        class RuleSerializer(serializers.Serializer):
            id = serializers.IntegerField()
            status = serializers.CharField()
            issue_type = serializers.CharField()
            threshold_minutes = serializers.IntegerField()
            ladder = serializers.ListField(child=serializers.CharField())
            enabled = serializers.BooleanField()
            dry_run = serializers.BooleanField()
            updated_at = serializers.DateTimeField()

            class Meta:
                ref_name = "StuckRule"

        success = serializers.BooleanField()
        count = serializers.IntegerField()
        rules = RuleSerializer(many=True)

        class Meta:
            ref_name = "RulesResponse"

    @extend_schema(
        operation_id="rules_list",
        responses={200: OutputSerializer, **error_responses(*AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        rules = self.OutputSerializer.RuleSerializer(selectors.rules_list(), many=True).data
        return Response({"success": True, "count": len(rules), "rules": rules})
