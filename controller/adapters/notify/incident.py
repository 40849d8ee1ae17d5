"""An incident webhook taking PagerDuty Events v2 events (trigger / resolve by dedup key)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

from controller.adapters.notify.errors import DeliveryError
from controller.adapters.notify.routing import Channel


class IncidentWebhook:
    """POSTs one event; PagerDuty itself deduplicates by ``dedup_key``, so a repeated
    trigger or resolve is harmless."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self._timeout = timeout

    def send(self, url: str, event: dict[str, Any]) -> None:
        what = f"incident webhook {event.get('event_action', '')}".strip()
        data = json.dumps(event).encode()
        req = urllib.request.Request(
            url, data=data, method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     "User-Agent": "rolloutctl"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            if status == 429:
                after = exc.headers.get("Retry-After") if exc.headers else None
                raise DeliveryError(Channel.INCIDENT, "RateLimited",
                                    f"{what}: rate limited (HTTP 429)",
                                    retry_after=_seconds(after)) from None
            if status >= 500:
                raise DeliveryError(Channel.INCIDENT, "ServerError",
                                    f"{what}: HTTP {status}") from None
            if status in (401, 403):
                raise DeliveryError(Channel.INCIDENT, "AuthFailed", f"{what}: HTTP {status}",
                                    permanent=True) from None
            raise DeliveryError(Channel.INCIDENT, "Rejected", f"{what}: HTTP {status}",
                                permanent=True) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError | socket.timeout):
                raise DeliveryError(Channel.INCIDENT, "Timeout", f"{what}: timed out") from None
            raise DeliveryError(Channel.INCIDENT, "Unreachable",
                                f"{what}: cannot connect ({type(exc.reason).__name__})") from None
        except TimeoutError:
            raise DeliveryError(Channel.INCIDENT, "Timeout", f"{what}: timed out") from None
        except OSError as exc:
            raise DeliveryError(Channel.INCIDENT, "Unreachable",
                                f"{what}: {type(exc).__name__}") from None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
