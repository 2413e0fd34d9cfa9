"""Reading a request: strict bodies, query strings, ids in the path.

Spelling policy (README "API"): request bodies are camelCase, as the seed's
request examples (``issueType``, ``recoveryAction``); responses keep the
seed's snake_case keys. A body key that names no field is refused with a 400
naming it, and naming the expected spelling when it differs only in case or
underscores (``recovery_action`` -> ``recoveryAction``): silently ignoring it
once let an operator's chosen action be replaced by the rule's (issue 20).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from api.errors import ApiInvalid

# PostgreSQL's bigint: a larger id names no row, and must not reach the database.
MAX_ID = 2**63 - 1


def _folded(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def unknown_key_message(key: str, expected: list[str]) -> str:
    match = next((name for name in expected if _folded(name) == _folded(key)), None)
    if match is not None:
        return f"unknown field; did you mean {match}?"
    known = ", ".join(expected) if expected else "none"
    return f"unknown field (expected: {known})"


# JSON types a body value must have (DRF would coerce 1 to "1" or "true" to True,
# so a body the schema calls invalid was accepted: schemathesis' ST201).
_JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.CharField, (str,), "a string"),
)


def _type_error(field: serializers.Field, value: Any) -> str | None:
    if value is None:
        return None  # the field's own allow_null decides
    for field_class, types, name in _JSON_TYPES:
        if isinstance(field, field_class):
            wrong = not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
            return f"must be {name}" if wrong else None
    return None


class StrictKeysMixin:
    """Refuse body keys the serializer does not declare, and values of another
    JSON type than the field's (mix into any Serializer)."""

    fields: Any

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            expected = [name for name, field in self.fields.items() if not field.read_only]
            errors = {
                str(key): unknown_key_message(str(key), expected)
                for key in data
                if key not in expected
            }
            for name in expected:
                if name in data and (problem := _type_error(self.fields[name], data[name])):
                    errors.setdefault(name, problem)
            if errors:
                raise serializers.ValidationError(
                    {
                        key: [
                            serializers.ErrorDetail(
                                message,
                                code="unknown_field" if key not in expected else "invalid_type",
                            )
                        ]
                        for key, message in errors.items()
                    }
                )
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictInputSerializer(StrictKeysMixin, serializers.Serializer):
    """A request body serializer that refuses keys it does not declare."""


def query_input(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    # A plain dict, not the QueryDict: DRF reads a missing boolean in a
    # QueryDict as an unticked checkbox (False) instead of "not given".
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def body_input(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def path_id(value: str | int, *, field: str) -> int:
    """An id from the path: a non-integer is a 400 naming the parameter, not a
    "no such endpoint" 404 (the route matches any segment)."""
    text = str(value)
    if not text.lstrip("-").isdigit() or not text.isascii():
        raise ApiInvalid(f"{field} must be an integer", field=field)
    return int(text)


def id_field(**kwargs: Any) -> serializers.IntegerField:
    """An id filter: a positive integer the database can hold."""
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)
