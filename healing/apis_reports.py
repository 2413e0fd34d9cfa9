"""Reports over the healing history: daily statistics and the seed's KPIs."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.caching import read_through
from api.inputs import query_input
from api.permissions import IsViewer
from api.schema import AUTH_ERRORS, error_responses, seed_example
from healing.reports.kpis import kpis_evaluate
from healing.reports.statistics import statistics_daily


class DaysInputSerializer(serializers.Serializer):
    days = serializers.IntegerField(required=False, default=7, min_value=1, max_value=365)

    class Meta:
        ref_name = "DaysQuery"


class StatisticsApi(APIView):
    """Daily healing statistics (the seed's `healing_statistics_view`) for the last `days` days."""

    permission_classes = [IsViewer]

    class OutputSerializer(serializers.Serializer):
        class RowSerializer(serializers.Serializer):
            issue_type = serializers.CharField()
            recovery_action = serializers.CharField()
            date = serializers.DateField()
            recovery_status = serializers.CharField(
                allow_null=True,
                help_text="The row's outcome: one row per status, as the seed's view groups.",
            )
            total_cases = serializers.IntegerField()
            avg_recovery_time_minutes = serializers.FloatField(allow_null=True)
            successful_recoveries = serializers.IntegerField()
            failed_recoveries = serializers.IntegerField()

            class Meta:
                ref_name = "StatisticsRow"

        success = serializers.BooleanField()
        days = serializers.IntegerField()
        statistics = RowSerializer(many=True)
        ageSeconds = serializers.FloatField(
            help_text="How old this answer is (served from a cache of API_READ_CACHE_SECONDS)."
        )

        class Meta:
            ref_name = "StatisticsResponse"

    @extend_schema(
        operation_id="statistics",
        parameters=[DaysInputSerializer],
        responses={200: OutputSerializer, **error_responses(400, *AUTH_ERRORS)},
        examples=[
            seed_example(
                "Seed example",
                {
                    "success": True,
                    "days": 7,
                    "statistics": [
                        {
                            "issue_type": "STUCK_PENDING",
                            "recovery_action": "REASSIGN_VENDOR",
                            "recovery_status": "SUCCESS",
                            "total_cases": 15,
                            "avg_recovery_time_minutes": 2.5,
                            "successful_recoveries": 14,
                            "failed_recoveries": 1,
                        }
                    ],
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        days = query_input(DaysInputSerializer, request)["days"]
        rows, age = read_through(
            key=f"statistics:{days}",
            seconds=settings.API_READ_CACHE_SECONDS,
            compute=lambda: statistics_daily(days=days),
        )
        return Response({"success": True, "days": days, "statistics": rows, "ageSeconds": age})


class KpisApi(APIView):
    """The seed's four KPIs over the last `days` days, each with its target and verdict."""

    permission_classes = [IsViewer]

    class OutputSerializer(serializers.Serializer):
        class KpiSerializer(serializers.Serializer):
            name = serializers.CharField()
            value = serializers.FloatField(allow_null=True)
            target = serializers.FloatField(allow_null=True)
            met = serializers.BooleanField(allow_null=True)
            comparison = serializers.ChoiceField(choices=["gt", "lt"])
            unit = serializers.CharField()
            sample_size = serializers.IntegerField()

            class Meta:
                ref_name = "Kpi"

        success = serializers.BooleanField()
        days = serializers.IntegerField()
        kpis = KpiSerializer(many=True)

        class Meta:
            ref_name = "KpisResponse"

    @extend_schema(
        operation_id="kpis",
        parameters=[DaysInputSerializer],
        responses={200: OutputSerializer, **error_responses(400, *AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        days = query_input(DaysInputSerializer, request)["days"]
        return Response({"success": True, "days": days, "kpis": kpis_evaluate(days=days)})
