"""The demo's webhook vendors: the production path, played locally.

A ``VendorDesk`` is one HTTP endpoint for a few simulated vendors. It
receives our signed webhooks (``/v/<vendor id>``), verifies each with the
vendor's secret using ``standardwebhooks`` (the reference implementation a
real vendor would use), and answers through the vendor API over HTTP with the
vendor's API key: an offer or a confirm request is confirmed (then the terms
accepted), or sometimes declined; an accept request is accepted. Replies run
on their own thread, after the webhook has been acknowledged, as a vendor's
back office would.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from django.db import connections
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from orders.credentials import vendor_credentials_issue
from orders.models import Vendor

logger = logging.getLogger("demo.vendors")

# event type -> the vendor API calls a cooperative vendor makes, in order
REPLIES: dict[str, tuple[str, ...]] = {
    "order.offer": ("confirm", "accept"),
    "order.confirm_request": ("confirm", "accept"),
    "order.accept_request": ("accept",),
}


@dataclass
class DeskVendor:
    vendor_id: int
    api_key: str
    webhook: Webhook


@dataclass
class VendorDesk:
    api_url: str  # the demo web server, e.g. http://127.0.0.1:8000
    rng: random.Random
    decline_share: float = 0.2
    host: str = "127.0.0.1"
    vendors: dict[int, DeskVendor] = field(default_factory=dict)
    verified: int = 0
    rejected: int = 0
    replies: Counter = field(default_factory=Counter)  # (action, HTTP status) -> n
    # Tells this run's idempotency keys from an earlier demo's.
    run: str = field(default_factory=lambda: secrets.token_hex(4))
    _jobs: queue.Queue = field(default_factory=queue.Queue)
    _server: ThreadingHTTPServer | None = None

    # --- Set-up ---------------------------------------------------------------

    def start(self) -> str:
        desk = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = desk.webhook_receive(self.path, dict(self.headers), body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="vendor-desk", daemon=True).start()
        threading.Thread(target=self._reply_loop, name="vendor-replies", daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}"

    def vendor_connect(self, *, vendor: Vendor) -> None:
        """Issue the vendor's credentials and point its webhooks at this desk."""
        issued = vendor_credentials_issue(vendor=vendor, rotate=True)
        Vendor.objects.filter(pk=vendor.pk).update(webhook_url=f"{self.url}/v/{vendor.pk}")
        self.vendors[vendor.pk] = DeskVendor(
            vendor_id=vendor.pk, api_key=issued.api_key, webhook=Webhook(issued.webhook_secret)
        )

    def stop(self) -> None:
        self._jobs.put(None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- Receiving --------------------------------------------------------------

    def webhook_receive(self, path: str, headers: dict[str, str], body: bytes) -> int:
        vendor = self.vendors.get(_vendor_id(path))
        if vendor is None:
            return 404
        try:
            event = vendor.webhook.verify(body, headers)
        except WebhookVerificationError:
            self.rejected += 1
            return 401
        self.verified += 1
        actions = REPLIES.get(event["type"])
        if actions:
            if event["type"] == "order.offer" and self.rng.random() < self.decline_share:
                actions = ("decline",)
            self._jobs.put((vendor, event["data"]["order_id"], actions))
        return 204

    # --- Answering over HTTP ------------------------------------------------------

    def _reply_loop(self) -> None:
        session = requests.Session()
        try:
            while (job := self._jobs.get()) is not None:
                vendor, order_id, actions = job
                for action in actions:
                    if not self._reply(session, vendor, order_id, action):
                        break
        finally:
            connections.close_all()

    def _reply(self, session: Any, vendor: DeskVendor, order_id: int, action: str) -> bool:
        body = {"reason": "no capacity this week"} if action == "decline" else {}
        try:
            response = session.post(
                f"{self.api_url}/api/v1/vendor/orders/{order_id}/{action}",
                data=json.dumps(body),
                headers={
                    "Authorization": f"Api-Key {vendor.api_key}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"demo-{self.run}-{vendor.vendor_id}-{order_id}-{action}",
                },
                timeout=30,
            )
        except requests.RequestException:
            logger.warning("vendor reply failed", exc_info=True)
            self.replies[(action, "error")] += 1
            return False
        self.replies[(action, response.status_code)] += 1
        return response.status_code == 200

    @property
    def replies_ok(self) -> int:
        return sum(n for (_, status), n in self.replies.items() if status == 200)

    def summary(self) -> dict[str, Any]:
        by_action: Counter = Counter()
        for (action, status), n in self.replies.items():
            if status == 200:
                by_action[action] += n
        return {
            "webhooks_verified": self.verified,
            "webhooks_rejected": self.rejected,
            "vendor_replies_over_http": sum(self.replies.values()),
            "vendor_replies_accepted": self.replies_ok,
            "vendor_replies_by_action": dict(sorted(by_action.items())),
        }


def _vendor_id(path: str) -> int:
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else -1
