from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orders.roles import ADMIN, OPERATIONS, role_user_create


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records what it was sent.

    ``statuses`` scripts the answers (popped per request; 200 once empty).
    """

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str | None = None) -> list[dict]:
        return [r.body for r in self.requests if path is None or r.path == path]


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            with state.lock:
                state.requests.append(
                    Received(
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=json.loads(raw or b"{}"),
                    )
                )
                status = state.statuses.pop(0) if state.statuses else 200
            payload = b"ok" if status < 300 else b"gateway exploded"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def admin_user(db):
    return role_user_create(username="alice-admin", password="pw-123456-x", role=ADMIN)[0]


@pytest.fixture
def ops_user(db):
    return role_user_create(username="oscar-ops", password="pw-123456-x", role=OPERATIONS)[0]
