"""A local Slack: an HTTP server speaking the Web API methods rolloutctl uses, recording
every call, with faults on demand.

Methods: ``auth.test``, ``chat.postMessage``, ``chat.update``, ``conversations.replies``,
``conversations.history``, ``conversations.list``; plus incoming webhooks at
``/services/<name>``. Point ``slack_sdk.WebClient(base_url=stub.api_url)`` at it.

Faults: ``fail(status=500, seconds=…)``, ``rate_limit(seconds=…)`` (429 with a Retry-After
counting down to the end of the period), ``hang(seconds=…)`` (answers late), and
``echo_secrets`` (error answers quote the Authorization header and the request path, as a
careless server might, to prove the client never repeats them).

Usage in tests::

    with SlackStub(token="xoxb-test") as slack:
        ...
        slack.rate_limit(60)           # Slack rate-limits every method for a minute
        slack.wait_for(lambda s: len(s.messages()) >= 3, timeout=90)

The ``slack_stub`` fixture gives a started stub (token ``SlackStub.DEFAULT_TOKEN``).
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class SlackMessage:
    channel: str  # channel id
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    metadata: dict[str, Any] | None
    reply_broadcast: bool
    posted_at: float  # time.monotonic()
    updates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str | None:
        meta = self.metadata or {}
        payload = meta.get("event_payload") or {}
        key = payload.get("key")
        return key if isinstance(key, str) else None

    def wire(self, with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text,
                               "blocks": self.blocks}
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.reply_broadcast:
            out["subtype"] = "thread_broadcast"
        if with_metadata and self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass
class SlackCall:
    method: str
    args: dict[str, Any]
    status: int
    at: float  # time.monotonic()
    authorized: bool


@dataclass
class WebhookPost:
    path: str
    body: dict[str, Any]
    at: float


@dataclass
class _Fault:
    status: int
    until: float | None
    count: int | None
    methods: frozenset[str] | None
    retry_after: bool

    def applies(self, method: str, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.count is not None and self.count <= 0:
            return False
        return self.methods is None or method in self.methods


class SlackStub:
    DEFAULT_TOKEN = "xoxb-stub-0000000000-SECRET-token"

    def __init__(self, token: str = DEFAULT_TOKEN, channels: dict[str, str] | None = None,
                 port: int = 0) -> None:
        self.token = token
        self.bind_port = port
        self.echo_secrets = False
        self._lock = threading.Condition()
        self._calls: list[SlackCall] = []
        self._messages: list[SlackMessage] = []
        self._webhook_posts: list[WebhookPost] = []
        self._faults: list[_Fault] = []
        self._hang_until = 0.0
        self._hang_seconds = 0.0
        self._ts = int(time.time()) * 1_000_000
        # channel name (without #) -> id
        self._channels = dict(channels or {"deploys": "C0DEPLOYS1", "oncall": "C0ONCALL01"})
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stub._handle(self, "GET")

            def do_POST(self) -> None:
                stub._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.bind_port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="slack-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SlackStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the stub first"
        return int(self._server.server_address[1])

    @property
    def api_url(self) -> str:
        """``base_url`` for slack_sdk's WebClient."""
        return f"http://127.0.0.1:{self.port}/api/"

    def webhook_url(self, name: str = "T000/B000/XXXXWEBHOOKSECRET") -> str:
        return f"http://127.0.0.1:{self.port}/services/{name}"

    # ------------------------------------------------------------------ faults

    def fail(self, status: int = 500, *, seconds: float | None = None, count: int | None = None,
             methods: set[str] | None = None) -> None:
        """Answer STATUS for SECONDS (or COUNT calls, or until ``heal()``)."""
        self._add_fault(status, seconds, count, methods, retry_after=False)

    def rate_limit(self, seconds: float, methods: set[str] | None = None) -> None:
        """Answer 429 with ``Retry-After`` (seconds left, rounded up) for SECONDS."""
        self._add_fault(429, seconds, None, methods, retry_after=True)

    def hang(self, seconds: float, *, for_seconds: float | None = None) -> None:
        """Delay every answer by SECONDS (during the next FOR_SECONDS, or until heal())."""
        with self._lock:
            self._hang_seconds = seconds
            self._hang_until = (time.monotonic() + for_seconds) if for_seconds else math.inf

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()
            self._hang_until = 0.0

    def _add_fault(self, status: int, seconds: float | None, count: int | None,
                   methods: set[str] | None, *, retry_after: bool) -> None:
        until = time.monotonic() + seconds if seconds is not None else None
        with self._lock:
            self._faults.append(_Fault(status, until, count,
                                       frozenset(methods) if methods else None, retry_after))

    # ------------------------------------------------------------------ what happened

    def calls(self, method: str | None = None) -> list[SlackCall]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def messages(self, channel: str | None = None) -> list[SlackMessage]:
        """Every message posted, in order (channel: an id or a name)."""
        with self._lock:
            cid = self._resolve(channel) if channel else None
            return [m for m in self._messages if cid is None or m.channel == cid]

    def roots(self, channel: str | None = None) -> list[SlackMessage]:
        return [m for m in self.messages(channel) if m.thread_ts is None]

    def replies(self, thread_ts: str) -> list[SlackMessage]:
        return [m for m in self.messages() if m.thread_ts == thread_ts]

    def webhook_posts(self) -> list[WebhookPost]:
        with self._lock:
            return list(self._webhook_posts)

    def channel_id(self, name: str) -> str:
        with self._lock:
            return self._resolve(name)

    def wait_for(self, predicate: Callable[[SlackStub], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return predicate(self)

    def reset_records(self) -> None:
        with self._lock:
            self._calls.clear()

    # ------------------------------------------------------------------ the server

    def _resolve(self, channel: str) -> str:
        name = channel.lstrip("#")
        if name in self._channels:
            return self._channels[name]
        if channel in self._channels.values():
            return channel
        if channel.startswith("#"):
            # Unknown names become channels on first post, as if the bot had been invited.
            cid = "C" + format(abs(hash(name)) % 10**9, "09d")
            self._channels[name] = cid
            return cid
        return ""

    def _next_ts(self) -> str:
        self._ts += 100
        return f"{self._ts // 1_000_000}.{self._ts % 1_000_000:06d}"

    def _handle(self, req: BaseHTTPRequestHandler, verb: str) -> None:
        parsed = urllib.parse.urlsplit(req.path)
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        args: dict[str, Any] = {k: v[-1] for k, v in
                                urllib.parse.parse_qs(parsed.query).items()}
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
        if raw:
            if ctype == "application/json":
                body = json.loads(raw)
                if isinstance(body, dict):
                    args.update(body)
            else:
                args.update({k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()})
        auth = req.headers.get("Authorization") or ""
        now = time.monotonic()
        with self._lock:
            hang = self._hang_seconds if now < self._hang_until else 0.0
        if hang:
            time.sleep(hang)
        if parsed.path.startswith("/services/"):
            self._webhook(req, parsed.path, args)
            return
        method = parsed.path.removeprefix("/api/")
        status, headers, payload = self._answer(method, args, auth)
        with self._lock:
            self._calls.append(SlackCall(method, args, status, time.monotonic(),
                                         authorized=auth == f"Bearer {self.token}"))
            self._lock.notify_all()
        self._send(req, status, payload, headers)

    def _fault_for(self, method: str) -> _Fault | None:
        now = time.monotonic()
        with self._lock:
            for f in self._faults:
                if f.applies(method, now):
                    if f.count is not None:
                        f.count -= 1
                    return f
        return None

    def _answer(self, method: str, args: dict[str, Any], auth: str
                ) -> tuple[int, dict[str, str], dict[str, Any]]:
        fault = self._fault_for(method)
        if fault is not None:
            headers = {}
            if fault.retry_after and fault.until is not None:
                headers["Retry-After"] = str(max(1, math.ceil(fault.until - time.monotonic())))
            error = "ratelimited" if fault.status == 429 else "fatal_error"
            return fault.status, headers, self._error(error, auth)
        if auth != f"Bearer {self.token}":
            return 200, {}, self._error("invalid_auth", auth)
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.replies": self._replies,
            "conversations.history": self._history,
            "conversations.list": self._list,
        }.get(method)
        if handler is None:
            return 404, {}, self._error("unknown_method", auth)
        with self._lock:
            return 200, {}, handler(args)

    def _error(self, code: str, auth: str) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "error": code}
        if self.echo_secrets:
            out["warning"] = f"request had Authorization: {auth}"
        return out

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://stub.slack.com/", "team": "Stub", "user": "rollout",
                "team_id": "T0STUB", "user_id": "U0ROLLOUT", "bot_id": "B0ROLLOUT"}

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = self._resolve(str(args.get("channel", "")))
        if not cid:
            return {"ok": False, "error": "channel_not_found"}
        thread_ts = args.get("thread_ts") or None
        if thread_ts and not any(m.ts == thread_ts and m.channel == cid for m in self._messages):
            return {"ok": False, "error": "thread_not_found"}
        msg = SlackMessage(
            channel=cid, ts=self._next_ts(), text=str(args.get("text", "")),
            blocks=_blocks(args.get("blocks")), thread_ts=thread_ts,
            metadata=_json_arg(args.get("metadata")),
            reply_broadcast=str(args.get("reply_broadcast", "")).lower() in ("1", "true"),
            posted_at=time.monotonic(),
        )
        self._messages.append(msg)
        return {"ok": True, "channel": cid, "ts": msg.ts, "message": msg.wire(True)}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = self._resolve(str(args.get("channel", "")))
        ts = args.get("ts")
        for m in self._messages:
            if m.channel == cid and m.ts == ts:
                m.updates.append({"text": m.text, "blocks": m.blocks, "at": time.monotonic()})
                m.text = str(args.get("text", m.text))
                if "blocks" in args:
                    m.blocks = _blocks(args.get("blocks"))
                if "metadata" in args:
                    m.metadata = _json_arg(args.get("metadata"))
                return {"ok": True, "channel": cid, "ts": ts, "text": m.text}
        return {"ok": False, "error": "message_not_found"}

    def _page(self, items: list[dict[str, Any]], args: dict[str, Any], key: str
              ) -> dict[str, Any]:
        limit = int(args.get("limit") or 100)
        start = int(args.get("cursor") or 0)
        page = items[start:start + limit]
        nxt = str(start + limit) if start + limit < len(items) else ""
        return {"ok": True, key: page, "has_more": bool(nxt),
                "response_metadata": {"next_cursor": nxt}}

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = self._resolve(str(args.get("channel", "")))
        if not cid or str(args.get("channel", "")).startswith("#"):
            return {"ok": False, "error": "channel_not_found"}
        ts = args.get("ts")
        thread = [m for m in self._messages if m.channel == cid
                  and (m.ts == ts or m.thread_ts == ts)]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        return self._page([m.wire(meta) for m in thread], args, "messages")

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if channel.startswith("#"):  # like Slack: history takes ids only
            return {"ok": False, "error": "channel_not_found"}
        cid = self._resolve(channel)
        if not cid:
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(args.get("oldest") or 0)
        meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        items = [m.wire(meta) for m in reversed(self._messages)
                 if m.channel == cid and float(m.ts) >= oldest
                 and (m.thread_ts is None or m.reply_broadcast)]
        return self._page(items, args, "messages")

    def _list(self, args: dict[str, Any]) -> dict[str, Any]:
        items = [{"id": cid, "name": name, "is_channel": True}
                 for name, cid in sorted(self._channels.items())]
        return self._page(items, args, "channels")

    def _webhook(self, req: BaseHTTPRequestHandler, path: str, args: dict[str, Any]) -> None:
        fault = self._fault_for("webhook")
        with self._lock:
            if fault is None:
                self._webhook_posts.append(WebhookPost(path, args, time.monotonic()))
            self._lock.notify_all()
        if fault is not None:
            headers = {}
            if fault.retry_after and fault.until is not None:
                headers["Retry-After"] = str(max(1, math.ceil(fault.until - time.monotonic())))
            text = f"error at {path}" if self.echo_secrets else "error"
            self._send_text(req, fault.status, text, headers)
            return
        self._send_text(req, 200, "ok", {})

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
              headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json; charset=utf-8")
        req.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(data)

    @staticmethod
    def _send_text(req: BaseHTTPRequestHandler, status: int, text: str,
                   headers: dict[str, str]) -> None:
        data = text.encode()
        req.send_response(status)
        req.send_header("Content-Type", "text/plain; charset=utf-8")
        req.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(data)


def _json_arg(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _blocks(value: Any) -> list[dict[str, Any]]:
    value = _json_arg(value)
    return [b for b in value if isinstance(b, dict)] if isinstance(value, list) else []


class SlackOutage:
    """A context manager for controller-level tests: Slack fails (500) or rate-limits
    (429 + Retry-After) from entry for SECONDS, or until exit if SECONDS is None."""

    def __init__(self, stub: SlackStub, *, status: int = 500, seconds: float | None = None
                 ) -> None:
        self.stub = stub
        self.status = status
        self.seconds = seconds
        self.started = 0.0

    def __enter__(self) -> SlackOutage:
        self.started = time.monotonic()
        if self.status == 429:
            self.stub.rate_limit(self.seconds if self.seconds is not None else 3600)
        else:
            self.stub.fail(self.status, seconds=self.seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.seconds is None:
            self.stub.heal()


@pytest.fixture
def slack_stub() -> Iterator[SlackStub]:
    """A started SlackStub (token ``SlackStub.DEFAULT_TOKEN``), stopped after the test."""
    with SlackStub() as stub:
        yield stub
