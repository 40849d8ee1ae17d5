"""The small error taxonomy, mapped once at the edge (in adapters) and handled by the runtime.

- ``Transient``: the world may be fine in a moment (timeouts, 5xx, connection errors): the
  work queue retries the key with per-key exponential backoff.
- ``Conflict``: someone else wrote first (409, a failed resourceVersion precondition):
  re-read and try again now.
- ``Permanent``: retrying cannot help (invalid spec, 403, 404 of a referenced object): show
  a condition with the reason and do not retry until the object changes (the manager
  forgets the key; the object's next event queues it again).

Adapters raise these (or subclasses: ``NotFound`` here; the notifier's
``SecretUnavailable`` is a ``Permanent``, its ``DeliveryError`` a ``ControllerError`` that
carries the channel and the server's Retry-After); there is no second taxonomy.
"""

from __future__ import annotations


class ControllerError(Exception):
    """Base of the taxonomy; ``reason`` is CamelCase for conditions and Events."""

    reason = "Error"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class Transient(ControllerError):
    reason = "Transient"


class Conflict(ControllerError):
    reason = "Conflict"


class Permanent(ControllerError):
    reason = "Permanent"


class NotFound(Permanent):
    reason = "NotFound"
