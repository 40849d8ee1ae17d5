"""Slack through ``slack_sdk``: a bot-token client (threads, in-place updates, lookups by
dedup key) and the incoming-webhook fallback (plain posts). Every Slack failure leaves this
module as a :class:`DeliveryError`; no ``slack_sdk`` exception escapes.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import socket
import threading
import time
import urllib.error
from collections.abc import Iterator
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from controller.adapters.egress import TRUSTED, EgressRefused, fetch
from controller.adapters.notify.errors import DeliveryError
from controller.adapters.notify.redact import redacting_logger
from controller.adapters.notify.render import METADATA_EVENT_TYPE, Rendered
from controller.adapters.notify.routing import ChannelName

DEFAULT_BASE_URL = "https://slack.com/api/"

# Records of slack_sdk's clients go through this logger, which masks secrets (at DEBUG
# slack_sdk logs response bodies and, for webhooks, the URL, which is the secret).
sdk_log = redacting_logger("controller.adapters.notify.slack_sdk")

_AUTH_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "missing_scope", "no_permission", "not_allowed_token_type", "ekm_access_denied",
})
_CHANNEL_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "thread_not_found",
    "message_not_found", "cant_update_message",
})
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


class BoundedRateLimitRetry(RateLimitErrorRetryHandler):
    """slack_sdk's rate-limit retry, once, and only when Slack asks to wait at most
    ``max_wait`` seconds: a longer wait is the dispatcher's (it reschedules the message
    and frees the worker), so no send is held up for a minute."""

    def __init__(self, max_wait: float, max_retry_count: int = 1) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        assert response is not None
        wait = _retry_after(response.headers)
        return wait is not None and wait <= self.max_wait


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    for k, v in dict(headers).items():
        if str(k).lower() == "retry-after":
            value = v[0] if isinstance(v, list) and v else v
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def _code(data: Any) -> str:
    if isinstance(data, dict):
        code = data.get("error")
        if isinstance(code, str) and _ERROR_CODE.match(code):
            return code
    return "unexpected_response"


def map_error(channel: str, what: str, exc: BaseException) -> DeliveryError:
    """Our error for a slack_sdk/urllib failure; the message is built from codes only."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, SlackApiError):
        resp = exc.response
        status = int(getattr(resp, "status_code", 0) or 0)
        code = _code(getattr(resp, "data", None))
        if status == 429 or code == "ratelimited":
            after = _retry_after(getattr(resp, "headers", None))
            return DeliveryError(channel, "RateLimited", f"{what}: rate limited (HTTP 429)",
                                 retry_after=after)
        if status >= 500:
            return DeliveryError(channel, "ServerError", f"{what}: HTTP {status} ({code})")
        if code in _AUTH_ERRORS:
            return DeliveryError(channel, "AuthFailed", f"{what}: {code}", permanent=True)
        if code in _CHANNEL_ERRORS:
            return DeliveryError(channel, "ChannelNotFound", f"{what}: {code}", permanent=True)
        return DeliveryError(channel, "Rejected", f"{what}: {code} (HTTP {status})")
    if isinstance(exc, TimeoutError | socket.timeout):
        return DeliveryError(channel, "Timeout", f"{what}: timed out")
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, TimeoutError | socket.timeout):
            return DeliveryError(channel, "Timeout", f"{what}: timed out")
        return DeliveryError(channel, "Unreachable",
                             f"{what}: cannot connect ({type(exc.reason).__name__})")
    if isinstance(exc, OSError):
        return DeliveryError(channel, "Unreachable", f"{what}: {type(exc).__name__}")
    if isinstance(exc, SlackClientError):
        return DeliveryError(channel, "Rejected", f"{what}: {type(exc).__name__}")
    return DeliveryError(channel, "Rejected", f"{what}: {type(exc).__name__}")


#: The largest Web API answer read (conversations.history pages are the largest).
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class BoundedWebClient(WebClient):
    """slack-sdk's client, its HTTP requests sent through :func:`egress.fetch`: one total
    deadline per request (slack-sdk's ``timeout`` bounds each socket read only, so a Slack
    that drips its answer would hold a delivery worker for as long as it drips), an answer
    capped at :data:`MAX_ANSWER_BYTES` and no redirects. The base URL is the platform's
    (``--slack-base-url``), not a tenant's, so no egress rule applies to it. Everything
    above the HTTP request (retry handlers, rate limits, parsing) is slack-sdk's own: this
    overrides the one method that opens the connection, answering as it does (an
    ``HTTPError`` for 4xx and 5xx, which its retry handlers read)."""

    def _perform_urllib_http_request_internal(self, url: str, req: Any) -> dict[str, Any]:
        if not url.lower().startswith("http"):
            raise SlackRequestError(f"Invalid URL detected: {url}")
        reply = fetch(url, timeout=float(self.timeout), field_name="slack base URL",
                      method=req.get_method(), headers=dict(req.header_items()),
                      body=req.data, max_bytes=MAX_ANSWER_BYTES, policy=TRUSTED,
                      ssl_context=self.ssl, proxy=self.proxy)
        if reply.status >= 400:
            raise urllib.error.HTTPError(url, reply.status, reply.reason, reply.headers,
                                         io.BytesIO(reply.body))
        body: str | bytes = reply.body
        if reply.headers.get_content_type() != "application/gzip":
            body = reply.body.decode(reply.headers.get_content_charset() or "utf-8")
        if self._logger.level <= logging.DEBUG:  # as slack-sdk logs it (through redaction)
            self._logger.debug(
                "Received the following response - status: %s, headers: %s, body: %s",
                reply.status, dict(reply.headers), body if isinstance(body, str) else "(binary)")
        return {"status": reply.status, "headers": reply.headers, "body": body}


class SlackBot:
    """The Slack Web API with a bot token: post, update, and find messages by dedup key.

    Needs the scopes ``chat:write``, ``channels:history``, ``groups:history`` (lookups after a
    crash) and ``channels:read``, ``groups:read`` (channel names to ids). Thread-safe.
    """

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        max_inline_wait: float = 5.0,
    ) -> None:
        self._client = BoundedWebClient(
            token=token,
            base_url=base_url,
            timeout=max(1, round(timeout)),
            logger=sdk_log,
            retry_handlers=[BoundedRateLimitRetry(max_wait=max_inline_wait)],
        )
        self._lock = threading.Lock()
        self._channel_ids: dict[str, str] = {}
        self._checked = False

    def check(self) -> None:
        """``auth.test`` once per client: a bad token fails fast and clearly."""
        if self._checked:
            return
        try:
            self._client.auth_test()
        except Exception as exc:
            raise map_error(ChannelName.SLACK, "auth.test", exc) from None
        self._checked = True

    def post(
        self,
        channel: str,
        msg: Rendered,
        meta: dict[str, Any],
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
        as_channel: str = ChannelName.SLACK,
    ) -> tuple[str, str]:
        """``chat.postMessage``; returns (channel id, ts)."""
        try:
            resp = self._client.chat_postMessage(
                channel=channel,
                text=msg.text,
                blocks=msg.blocks,
                thread_ts=thread_ts,
                reply_broadcast=True if (broadcast and thread_ts) else None,
                metadata=meta,
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            raise map_error(as_channel, "chat.postMessage", exc) from None
        channel_id, ts = resp.get("channel"), resp.get("ts")
        if not isinstance(channel_id, str) or not isinstance(ts, str):
            raise DeliveryError(as_channel, "Rejected", "chat.postMessage: no channel/ts")
        with self._lock:
            self._channel_ids[channel] = channel_id
        return channel_id, ts

    def update(self, channel_id: str, ts: str, msg: Rendered, meta: dict[str, Any]) -> None:
        try:
            self._client.chat_update(
                channel=channel_id, ts=ts, text=msg.text, blocks=msg.blocks, metadata=meta
            )
        except Exception as exc:
            raise map_error(ChannelName.SLACK, "chat.update", exc) from None

    def thread_keys(self, channel_id: str, thread_ts: str) -> set[str]:
        """The dedup keys of every message in a thread (root included)."""
        keys: set[str] = set()
        for message in self._pages(
            "conversations.replies", "conversations_replies",
            channel=channel_id, ts=thread_ts,
        ):
            key = _key_of(message)
            if key:
                keys.add(key)
        return keys

    def find(
        self, channel: str, key: str, oldest: float, *, uid: str,
        as_channel: str = ChannelName.SLACK,
    ) -> tuple[str, str] | None:
        """(channel id, ts) of a top-level message carrying KEY for the object UID posted
        after OLDEST (unix seconds), or None. Keys are unique per object only (``run.seq``):
        a channel shared by several plans holds the same key for each of them."""
        channel_id = self.channel_id(channel, as_channel=as_channel)
        for message in self._pages(
            "conversations.history", "conversations_history",
            channel=channel_id, oldest=f"{oldest:.6f}", as_channel=as_channel,
        ):
            if (_key_of(message) == key and _uid_of(message) == uid
                    and isinstance(message.get("ts"), str)):
                return channel_id, str(message["ts"])
        return None

    def channel_id(self, channel: str, *, as_channel: str = ChannelName.SLACK) -> str:
        """Channel ids are what the history methods take; names are resolved once."""
        if _CHANNEL_ID.match(channel):
            return channel
        with self._lock:
            known = self._channel_ids.get(channel)
        if known:
            return known
        wanted = channel.lstrip("#")
        for ch in self._pages(
            "conversations.list", "conversations_list", item="channels",
            types="public_channel,private_channel", exclude_archived=True,
            as_channel=as_channel,
        ):
            if ch.get("name") == wanted and isinstance(ch.get("id"), str):
                with self._lock:
                    self._channel_ids[channel] = str(ch["id"])
                return str(ch["id"])
        raise DeliveryError(as_channel, "ChannelNotFound", f"no channel named {wanted}",
                            permanent=True)

    def _pages(
        self, what: str, method: str, *, item: str = "messages",
        as_channel: str = ChannelName.SLACK, **kwargs: Any,
    ) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        for _ in range(50):  # at most 50 pages of 200
            args = dict(kwargs, limit=200, cursor=cursor)
            if item == "messages":
                args["include_all_metadata"] = True
            try:
                resp = getattr(self._client, method)(**args)
            except Exception as exc:
                raise map_error(as_channel, what, exc) from None
            for message in resp.get(item) or []:
                if isinstance(message, dict):
                    yield message
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return


def _payload(message: dict[str, Any]) -> dict[str, Any]:
    """The rolloutctl metadata payload of a Slack message ({} when it has none)."""
    meta = message.get("metadata")
    if isinstance(meta, dict) and meta.get("event_type") == METADATA_EVENT_TYPE:
        payload = meta.get("event_payload")
        if isinstance(payload, dict):
            return payload
    return {}


def _key_of(message: dict[str, Any]) -> str | None:
    key = _payload(message).get("key")
    return key if isinstance(key, str) else None


def _uid_of(message: dict[str, Any]) -> str | None:
    uid = _payload(message).get("uid")
    return None if uid is None else str(uid)


class SlackWebhook:
    """An incoming webhook: plain posts to its one channel, no threads, no updates.

    The URL comes from a tenant's Secret, so it is sent with ``egress.fetch`` (one deadline
    for the whole call, no redirects, the answer capped, the host checked by the egress
    policy) rather than slack-sdk's client, whose timeout bounds each read only. A 429 with a
    Retry-After up to ``max_inline_wait`` is retried once inline, as slack-sdk's handler did.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, max_inline_wait: float = 5.0) -> None:
        self._url = url
        self._timeout = timeout
        self._max_inline_wait = max_inline_wait

    def _send(self, body: bytes) -> tuple[int, str, Any]:
        reply = fetch(self._url, timeout=self._timeout, field_name=WEBHOOK_FIELD,
                      method="POST", body=body, max_bytes=64 * 1024, truncate=True,
                      headers={"Content-Type": "application/json;charset=utf-8",
                               "User-Agent": "rolloutctl"})
        return reply.status, reply.body.decode("utf-8", "replace"), reply.headers

    def post(self, msg: Rendered) -> None:
        what = "incoming webhook"
        payload = json.dumps({"text": msg.text, "blocks": msg.blocks, "unfurl_links": False,
                           "unfurl_media": False}).encode()
        try:
            status, text, headers = self._send(payload)
            if status == 429:
                after = _retry_after(headers)
                if after is not None and after <= self._max_inline_wait:
                    time.sleep(after)
                    status, text, headers = self._send(payload)
        except EgressRefused as exc:
            raise DeliveryError(ChannelName.SLACK, "EgressRefused", f"{what}: {exc}",
                                permanent=True) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise map_error(ChannelName.SLACK, what, exc) from None
        resp = _Answer(status, text, headers)
        status = resp.status_code
        if 200 <= status < 300:
            return
        if status == 429:
            raise DeliveryError(ChannelName.SLACK, "RateLimited",
                                f"{what}: rate limited (HTTP 429)",
                                retry_after=_retry_after(resp.headers))
        if status >= 500:
            raise DeliveryError(ChannelName.SLACK, "ServerError", f"{what}: HTTP {status // 100}xx")
        if 300 <= status < 400:
            raise DeliveryError(ChannelName.SLACK, "Rejected",
                                f"{what}: a redirect, which is not followed", permanent=True)
        body = resp.body if isinstance(resp.body, str) else ""
        code = body if _ERROR_CODE.match(body) else "rejected"
        if status in (401, 403, 404, 410):
            raise DeliveryError(ChannelName.SLACK, "AuthFailed",
                                f"{what}: HTTP {status // 100}xx ({code})", permanent=True)
        raise DeliveryError(ChannelName.SLACK, "Rejected",
                            f"{what}: HTTP {status // 100}xx ({code})")


WEBHOOK_FIELD = "notifications.slack.webhookSecretRef"


class _Answer:
    def __init__(self, status: int, body: str, headers: Any) -> None:
        self.status_code = status
        self.body = body
        self.headers = headers
