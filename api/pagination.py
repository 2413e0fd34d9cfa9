"""Limit/offset pages: ``{"success", "count", "next", "previous", <key>: [...]}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param


class PageInputSerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=10**9, default=0)


def page_response(
    request: Request,
    rows: QuerySet,
    *,
    page: dict,
    key: str,
    serializer_class: type[serializers.Serializer] | None = None,
    row: Callable[[Any], dict[str, Any]] | None = None,
) -> Response:
    """One page of ``rows``, each through ``serializer_class`` or, where a
    page is asked for often, a plain ``row`` function giving the same dict."""
    limit, offset = page["limit"], page["offset"]
    count = rows.count()
    url = request.build_absolute_uri()
    url = replace_query_param(url, "limit", limit)
    next_url = (
        replace_query_param(url, "offset", offset + limit) if offset + limit < count else None
    )
    previous_url = (
        replace_query_param(url, "offset", max(offset - limit, 0)) if offset > 0 else None
    )
    page_rows = rows[offset : offset + limit]
    if row is not None:
        items: Any = [row(item) for item in page_rows]
    elif serializer_class is not None:
        items = serializer_class(page_rows, many=True).data
    else:
        raise TypeError("page_response needs serializer_class or row")
    return Response(
        {
            "success": True,
            "count": count,
            "next": next_url,
            "previous": previous_url,
            key: items,
        }
    )


def page_envelope(name: str, key: str, item: serializers.Serializer) -> type:
    """The paginated answer's schema: success, count, next, previous, items."""
    fields = {
        "success": serializers.BooleanField(),
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        key: item,
        "Meta": type("Meta", (), {"ref_name": name}),
    }
    return type(f"{name}Serializer", (serializers.Serializer,), fields)
