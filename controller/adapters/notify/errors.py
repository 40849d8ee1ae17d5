"""The notifier's small error taxonomy; third-party exceptions are mapped to these at the
edge (``slack.py``, ``mail.py``, ``incident.py``, ``store.py``) and never escape."""

from __future__ import annotations

from controller.adapters.notify.redact import redact


class DeliveryError(Exception):
    """A channel did not take a message.

    ``reason`` is a CamelCase word from a small fixed set (a metrics label): RateLimited,
    ServerError, Timeout, Unreachable, AuthFailed, ChannelNotFound, Rejected,
    SecretUnavailable, NotConfigured, EgressRefused. ``retry_after`` is the server's wish in
    seconds, if any.
    ``permanent`` errors are still retried (a user may fix the Secret or the channel), but
    with the longest backoff.
    """

    def __init__(
        self,
        channel: str,
        reason: str,
        message: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        self.channel = channel
        self.reason = reason
        self.message = redact(message)
        self.retry_after = retry_after
        self.permanent = permanent
        super().__init__(f"{channel}: {self.message}")


class StoreError(Exception):
    """The API server could not be read or written (transient: try again later)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class Conflict(StoreError):
    """The object changed since it was read (resourceVersion precondition failed)."""


class ObjectGone(StoreError):
    """The object no longer exists."""


class SecretUnavailable(Exception):
    """A referenced Secret or key is missing or unreadable; the message names the reference,
    never a value."""
