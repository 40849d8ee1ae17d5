"""A local webhook receiver (an incident endpoint such as PagerDuty Events v2) that records
every JSON POST and can fail on demand.

    with WebhookReceiver() as hook:
        url = hook.url("/v2/enqueue")
        ...
        hook.wait_for(2)
        assert [p.body["event_action"] for p in hook.posts] == ["trigger", "resolve"]
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class ReceivedPost:
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic()


class WebhookReceiver:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._posts: list[ReceivedPost] = []
        self._fail_status = 0
        self._fail_count = 0
        self._fail_until = 0.0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status = receiver._take_fault()
                if status:
                    self._reply(status, {"status": "error", "message": "injected failure"})
                    return
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    self._reply(400, {"status": "invalid event", "message": "not JSON"})
                    return
                post = ReceivedPost(self.path, dict(self.headers.items()), body,
                                    time.monotonic())
                with receiver._lock:
                    receiver._posts.append(post)
                    receiver._lock.notify_all()
                dedup = body.get("dedup_key") if isinstance(body, dict) else None
                self._reply(202, {"status": "success", "message": "Event processed",
                                  "dedup_key": dedup})

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="webhook-receiver",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str = "/v2/enqueue") -> str:
        assert self._server is not None, "start() the receiver first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def fail(self, status: int = 500, *, count: int = 0, seconds: float = 0.0) -> None:
        """Answer STATUS to the next COUNT posts, or for SECONDS."""
        with self._lock:
            self._fail_status = status
            self._fail_count = count
            self._fail_until = time.monotonic() + seconds if seconds else 0.0

    def _take_fault(self) -> int:
        with self._lock:
            if self._fail_count > 0:
                self._fail_count -= 1
                return self._fail_status
            if time.monotonic() < self._fail_until:
                return self._fail_status
            return 0

    @property
    def posts(self) -> list[ReceivedPost]:
        with self._lock:
            return list(self._posts)

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver
