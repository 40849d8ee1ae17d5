"""The notifier's errors, in the product's taxonomy (``controller.errors``).

Third-party exceptions are mapped at the edge (``slack.py``, ``mail.py``, ``incident.py``,
``store.py``) and never escape. The store raises the product's own errors: ``Conflict``
(resourceVersion precondition failed), ``NotFound`` (the object is gone) and ``Transient``
(the API server could not be read or written). Two are the notifier's own:
``DeliveryError`` (a channel did not take a message) and ``SecretUnavailable`` (a
``Permanent`` error: a referenced Secret or key is missing).
"""

from __future__ import annotations

from controller.adapters.notify.redact import redact
from controller.errors import ControllerError, Permanent


class DeliveryError(ControllerError):
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
        super().__init__(f"{channel}: {redact(message)}", reason)
        self.channel = channel
        self.message = redact(message)
        self.retry_after = retry_after
        self.permanent = permanent


class SecretUnavailable(Permanent):
    """A referenced Secret or key is missing or unreadable; the message names the reference,
    never a value."""

    reason = "SecretUnavailable"
