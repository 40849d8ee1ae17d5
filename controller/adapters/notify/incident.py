"""An incident webhook taking PagerDuty Events v2 events (trigger / resolve by dedup key).

Sent with ``controller.adapters.egress.fetch``: one deadline for the whole call, the answer
read up to 64 KiB, no redirects, the URL's host checked by the egress policy. Errors give the
class of the status (``HTTP 5xx``), never the answer's body."""

from __future__ import annotations

import http.client
import json
from typing import Any

from controller.adapters.egress import DeadlineExceeded, EgressRefused, ResponseTooLarge, fetch
from controller.adapters.notify.errors import DeliveryError
from controller.adapters.notify.routing import ChannelName

FIELD = "notifications.incident.url"


class IncidentWebhook:
    """POSTs one event; PagerDuty itself deduplicates by ``dedup_key``, so a repeated
    trigger or resolve is harmless."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self._timeout = timeout

    def send(self, url: str, event: dict[str, Any]) -> None:
        what = f"incident webhook {event.get('event_action', '')}".strip()
        data = json.dumps(event).encode()
        try:
            reply = fetch(url, timeout=self._timeout, field_name=FIELD, method="POST", body=data,
                          headers={"Content-Type": "application/json",
                                   "Accept": "application/json", "User-Agent": "rolloutctl"},
                          max_bytes=64 * 1024, truncate=True)
        except EgressRefused as exc:
            raise DeliveryError(ChannelName.INCIDENT, "EgressRefused", f"{what}: {exc}",
                                permanent=True) from None
        except (DeadlineExceeded, TimeoutError):
            raise DeliveryError(ChannelName.INCIDENT, "Timeout", f"{what}: timed out") from None
        except (OSError, http.client.HTTPException, ResponseTooLarge, ValueError) as exc:
            raise DeliveryError(ChannelName.INCIDENT, "Unreachable",
                                f"{what}: cannot connect ({type(exc).__name__})") from None
        status = reply.status
        if 200 <= status < 300:
            return
        kind = f"HTTP {status // 100}xx"
        if status == 429:
            after = reply.headers.get("Retry-After")
            raise DeliveryError(ChannelName.INCIDENT, "RateLimited",
                                f"{what}: rate limited ({kind})", retry_after=_seconds(after))
        if status >= 500:
            raise DeliveryError(ChannelName.INCIDENT, "ServerError", f"{what}: {kind}")
        if status in (401, 403):
            raise DeliveryError(ChannelName.INCIDENT, "AuthFailed", f"{what}: {kind}",
                                permanent=True)
        if 300 <= status < 400:
            raise DeliveryError(ChannelName.INCIDENT, "Rejected",
                                f"{what}: a redirect, which is not followed", permanent=True)
        raise DeliveryError(ChannelName.INCIDENT, "Rejected", f"{what}: {kind}", permanent=True)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
