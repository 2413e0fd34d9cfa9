"""Every custom admin URL answers 404 for an id it cannot parse (issue 21 item 5).

The URLs are enumerated from each registered ModelAdmin's get_urls(), minus
the ones Django's ModelAdmin adds itself, so a view added later is covered
without touching this test.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, reverse

from tests.factories import AdminNotificationFactory

pytestmark = pytest.mark.django_db

MALFORMED_IDS = ["abc", "1%00", "1.5", "-1x", "%20"]


def _patterns(patterns: list) -> list[URLPattern]:
    flat: list[URLPattern] = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            flat.extend(_patterns(entry.url_patterns))
        else:
            flat.append(entry)
    return flat


def _custom_object_urls() -> list[tuple[str, str]]:
    """(admin url name, route) of every custom ModelAdmin URL taking an object id."""
    found = []
    for model_admin in admin.site._registry.values():
        stock = {p.name for p in _patterns(admin.ModelAdmin.get_urls(model_admin))}
        for pattern in _patterns(model_admin.get_urls()):
            if pattern.name in stock or pattern.name is None:
                continue
            if "object_id" in pattern.pattern.converters:
                found.append((pattern.name, str(pattern.pattern)))
    return sorted(found)


def test_the_walk_finds_the_notification_actions():
    names = {name for name, _route in _custom_object_urls()}
    assert {
        "notifications_adminnotification_acknowledge",
        "notifications_adminnotification_resolve",
    } <= names


@pytest.mark.parametrize("malformed", MALFORMED_IDS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_every_custom_admin_url_is_a_404_for_a_malformed_id(
    client, django_user_model, malformed, method
):
    AdminNotificationFactory()  # a real row exists: only the id is wrong
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "pw-x-123")
    client.force_login(superuser)
    urls = _custom_object_urls()
    assert urls
    for name, _route in urls:
        url = reverse(f"admin:{name}", kwargs={"object_id": "999999"}).replace(
            "/999999/", f"/{malformed}/"
        )
        response = getattr(client, method)(url)
        assert response.status_code in (404, 405), (name, url, response.status_code)
        if method == "post":
            assert response.status_code == 404, (name, url)


def test_an_unknown_numeric_id_is_a_404_too(client, django_user_model):
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "pw-x-123")
    client.force_login(superuser)
    for name, _route in _custom_object_urls():
        response = client.post(reverse(f"admin:{name}", kwargs={"object_id": "999999"}))
        assert response.status_code == 404, name
