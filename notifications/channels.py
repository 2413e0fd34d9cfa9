"""Delivery channels: one small class per channel behind one interface.

A channel never touches the database: the delivery service records each
attempt as a ``NotificationDelivery`` row. ``send`` raises ``ChannelError``
when the message did not get through; the task retries that channel alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from django.conf import settings
from django.core.mail import EmailMessage

from notifications.models import Channel
from notifications.policy import channel_names_for

logger = logging.getLogger("notifications.channels")

SEVERITY_COLOR: dict[str, str] = {
    "LOW": "#439FE0",
    "MEDIUM": "#E3B341",
    "HIGH": "#E8590C",
    "CRITICAL": "#C92A2A",
}


class ChannelError(Exception):
    """The channel did not deliver; worth another attempt."""


@dataclass(frozen=True)
class ChannelMessage:
    """What every channel renders, built once per delivery round."""

    notification_id: int
    notification_type: str
    severity: str
    title: str
    text: str
    short_text: str
    url: str
    round: int = 0
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        # Lets a receiver drop a duplicate of the same round (at-least-once delivery).
        return f"notification-{self.notification_id}-{self.round}"

    @property
    def subject(self) -> str:
        reminder = f"Reminder {self.round}: " if self.round else ""
        return f"[{self.severity}] {reminder}{self.title}"


class NotificationChannel(Protocol):
    name: str

    def is_configured(self) -> bool: ...

    def send(self, message: ChannelMessage) -> None: ...


class DashboardChannel:
    """The row itself is the dashboard entry: delivered once it is committed."""

    name: str = Channel.DASHBOARD

    def is_configured(self) -> bool:
        return True

    def send(self, message: ChannelMessage) -> None:
        return None


class EmailChannel:
    name: str = Channel.EMAIL

    def is_configured(self) -> bool:
        return bool(settings.NOTIFICATION_EMAIL_TO)

    def send(self, message: ChannelMessage) -> None:
        body = f"{message.text}\n\n{message.url}\n"
        email = EmailMessage(
            subject=message.subject,
            body=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=list(settings.NOTIFICATION_EMAIL_TO),
            headers={"X-Notification-Reference": message.reference},
        )
        try:
            email.send(fail_silently=False)
        except Exception as exc:  # smtplib and socket errors alike
            raise ChannelError(f"email: {exc!r}") from exc


def _post_json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    try:
        response = requests.post(
            url,
            json=body,
            headers=headers or {},
            timeout=settings.NOTIFICATION_HTTP_TIMEOUT_SECONDS,
        )
    except requests.RequestException as exc:
        raise ChannelError(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise ChannelError(f"HTTP {response.status_code}: {response.text[:200]}")


def slack_body(message: ChannelMessage) -> dict[str, Any]:
    """Slack's incoming-webhook format: ``text`` is the fallback, blocks the layout."""
    facts = [f"*{name}:* {value}" for name, value in message.fields.items()]
    return {
        "text": f"{message.subject}\n{message.url}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": message.text[:2900]}},
            *(
                [{"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts[:10]]}]
                if facts
                else []
            ),
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"<{message.url}|Open in admin> · {message.reference}",
                    }
                ],
            },
        ],
        "attachments": [{"color": SEVERITY_COLOR.get(message.severity, "#888888")}],
    }


class WebhookChannel:
    name: str = Channel.WEBHOOK

    def is_configured(self) -> bool:
        return bool(settings.NOTIFICATION_WEBHOOK_URL)

    def send(self, message: ChannelMessage) -> None:
        _post_json(settings.NOTIFICATION_WEBHOOK_URL, slack_body(message))


class MessagingGatewayChannel:
    """SMS and WhatsApp through one HTTP messaging gateway (bearer token)."""

    def __init__(self, name: str, *, enabled_setting: str, to_setting: str) -> None:
        self.name = name
        self._enabled_setting = enabled_setting
        self._to_setting = to_setting

    def _recipients(self) -> list[str]:
        return list(getattr(settings, self._to_setting))

    def is_configured(self) -> bool:
        return bool(
            getattr(settings, self._enabled_setting)
            and settings.NOTIFICATION_MESSAGING_GATEWAY_URL
            and self._recipients()
        )

    def send(self, message: ChannelMessage) -> None:
        text = message.short_text if self.name == Channel.SMS else f"{message.text}\n{message.url}"
        headers = {}
        if settings.NOTIFICATION_MESSAGING_GATEWAY_TOKEN:
            headers["Authorization"] = f"Bearer {settings.NOTIFICATION_MESSAGING_GATEWAY_TOKEN}"
        _post_json(
            settings.NOTIFICATION_MESSAGING_GATEWAY_URL,
            {
                "channel": self.name,
                "to": self._recipients(),
                "text": text,
                "reference": message.reference,
            },
            headers,
        )


CHANNELS: dict[str, NotificationChannel] = {
    Channel.DASHBOARD.value: DashboardChannel(),
    Channel.EMAIL.value: EmailChannel(),
    Channel.WEBHOOK.value: WebhookChannel(),
    Channel.SMS: MessagingGatewayChannel(
        Channel.SMS, enabled_setting="NOTIFICATION_SMS_ENABLED", to_setting="NOTIFICATION_SMS_TO"
    ),
    Channel.WHATSAPP: MessagingGatewayChannel(
        Channel.WHATSAPP,
        enabled_setting="NOTIFICATION_WHATSAPP_ENABLED",
        to_setting="NOTIFICATION_WHATSAPP_TO",
    ),
}


def channels_for(severity: str) -> list[NotificationChannel]:
    """The configured channels that carry ``severity``; unconfigured ones are left out."""
    found = []
    for name in channel_names_for(severity):
        channel = CHANNELS.get(name)
        if channel is None:
            logger.warning("unknown notification channel %r in NOTIFICATION_CHANNELS", name)
            continue
        if channel.is_configured():
            found.append(channel)
    return found
