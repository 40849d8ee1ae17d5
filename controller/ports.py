"""The seams between the pure core and the outside world: small Protocols, one per role.

The engine never sees these; the reconciler, the simulator and the runtime are written
against them, and ``adapters/`` provides the real implementations (``testing/`` the fakes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from controller.api.policy import SLO
from controller.engine.measurements import Measurement, Track
from controller.engine.observation import RouterObservation

__all__ = [
    "Clock",
    "MetricsSource",
    "QueryContext",
    "Reconciler",
    "RouterError",
    "RouterObservation",
    "TrafficRouter",
    "WorkQueue",
]


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC; read once per reconcile pass."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps, for leases and timeouts."""
        ...


@dataclass(frozen=True, slots=True)
class QueryContext:
    """Checked values for query templates, and when to evaluate."""

    service: str
    namespace: str
    revision: str
    at: datetime


class MetricsSource(Protocol):
    def measure(self, slo: SLO, track: Track, window_seconds: float,
                ctx: QueryContext) -> Measurement:
        """The SLI of ``slo`` for ``track`` over the window ending at ``ctx.at``. Never raises
        for data problems: those come back as a Measurement with a status."""
        ...


class RouterError(Exception):
    """The router cannot act: ``reason`` is CamelCase (RouteNotFound, BackendNotFound, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TrafficRouter(Protocol):
    """Moves traffic between stable and canary for one plan (1-4 methods, a null object)."""

    def observe(self) -> RouterObservation:
        """The canary weight the route objects carry now (0-100), its mirror percent, whether
        its header/cookie routes are on, and whether its parents accepted it."""
        ...

    def apply(self, weight: int, *, mirror: int = 0, match: bool = False) -> int:
        """Set the canary weight, the percent of requests mirrored to the canary, and the
        header/cookie routes (``spec.traffic.match``) on or off; returns the weight actually
        achieved. Idempotent. A router that cannot mirror or match raises RouterError
        (validation refuses such plans first)."""
        ...

    def verify(self, weight: int, *, mirror: int = 0, match: bool = False) -> bool:
        """Read back: does the route carry all of that now?"""
        ...

    def restore(self) -> None:
        """All traffic to stable (weight 0), removing anything the router created."""
        ...


class Reconciler(Protocol):
    """Level-triggered: given a key (``namespace/name``), re-read and converge.

    Returns the seconds after which to look again (None: only on the next change). Raises
    ``controller.errors.Transient`` to be retried with backoff, ``Conflict`` to be retried
    at once, ``Permanent`` not to be retried; anything else is logged, counted and retried
    with backoff.
    """

    def reconcile(self, key: str) -> float | None:
        ...


class WorkQueue(Protocol):
    """The runtime's keyed work queue (``controller.runtime.workqueue.WorkQueue``), as a
    component that runs its own workers on it (the notification dispatcher) sees it."""

    def try_add(self, key: str) -> bool:
        """Queue KEY now; False when the queue is full or shut down."""
        ...

    def add_after(self, key: str, seconds: float) -> None:
        ...

    def get(self, timeout: float | None = None) -> str | None:
        """The next key (blocking up to TIMEOUT); None on timeout or shutdown."""
        ...

    def done(self, key: str) -> None:
        ...

    def shutdown(self) -> None:
        ...

    def __len__(self) -> int:
        """Keys queued now (not the delayed ones, nor those being processed)."""
        ...

    def waiting(self) -> int:
        """Keys waiting for a delay to pass."""
        ...

    def processing(self) -> frozenset[str]:
        ...
