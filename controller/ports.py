"""The seams between the pure core and the outside world: small Protocols, one per role.

Every Protocol of the product lives here (and only value types they exchange): the engine
never sees these; the reconciler, the simulator, the runtime, the notifier and the
dashboard are written against them, ``adapters/`` provides the real implementations
(``tests/harness/`` the fakes) and ``controller.app`` chooses which.

=================  =============================================  ==========================
Protocol           used by                                        provided by (adapters/)
=================  =============================================  ==========================
Clock              reconciler, runtime, notifier                  clock.SystemClock
MetricsSource      gate analysis, simulator                       metrics.prometheus
BudgetSource       PolicyReconciler (budgets and burn rates)      metrics.prometheus
BatchingSource     gate analysis (many measurements in one go)    metrics.prometheus
VectorSource       the fast path (one query per SLO template)     metrics.prometheus
IntervalSource     the fast path's cadence (scrape interval)      metrics.prometheus
RangeSource        dashboard charts                               metrics.series
TrafficRouter      reconciler                                     traffic.*
PlanStore          reconcilers (read, whole-status writes)        kube.objects.ObjectStore
WorkloadControl    PlanReconciler                                 kube.workloads.Workloads
EventSink          reconcilers                                    kube.events.EventRecorder
NotificationStore  notification dispatcher                        notify.store
Channel, LiveView  notification dispatcher (one per channel)      notify.channels.*
Host               notification channels (the dispatcher)         notify.dispatcher
LeaseStore         runtime.leader                                 kube.lease.KubeLeaseStore
WorkQueue          notification dispatcher (keys, workers)        runtime.workqueue (given)
Reconciler         runtime.manager                                reconciler.*
=================  =============================================  ==========================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from controller.api.notifications import NotificationState, SecretKeyRef
from controller.api.policy import SLO
from controller.engine.measurements import Measurement, Track
from controller.engine.observation import RouterObservation, WorkloadState

if TYPE_CHECKING:  # the notifier's own value types (adapters/notify/)
    from controller.adapters.notify.channels import DeliveryPass
    from controller.adapters.notify.dispatcher import DispatcherConfig
    from controller.adapters.notify.metrics import NotifyMetrics
    from controller.adapters.notify.routing import ChannelName
    from controller.adapters.notify.slack import SlackBot
    from controller.adapters.notify.subject import ObjectRef, Subject
    from controller.api.notifications import Notifications, OutgoingMessage

__all__ = [
    "BatchingSource",
    "BudgetSource",
    "Channel",
    "Clock",
    "EventSink",
    "Host",
    "IntervalSource",
    "LeaseRecord",
    "LeaseStore",
    "LiveView",
    "MetricsSource",
    "NotificationStore",
    "PlanStore",
    "QueryContext",
    "RangeSource",
    "Reconciler",
    "RouterError",
    "RouterObservation",
    "Series",
    "SeriesAnswer",
    "TrafficRouter",
    "VectorSource",
    "WorkQueue",
    "WorkloadControl",
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


class BudgetSource(MetricsSource, Protocol):
    """A metrics source that also measures a service's error budget (SLOPolicies)."""

    def measure_budget(self, slo: SLO, ctx: QueryContext, window_seconds: float) -> Measurement:
        """The service's bad ratio over an SLO window, canary and stable together."""
        ...


@runtime_checkable
class BatchingSource(Protocol):
    """A metrics source that measures several (SLO, track, window) in one go."""

    def measure_all(self, wanted: Sequence[tuple[SLO, Track, float]], ctx: QueryContext
                    ) -> list[Measurement]: ...


class VectorSource(Protocol):
    """The fast path's source: instant vectors for many expressions at once."""

    def query_vectors(self, exprs: Sequence[str], at: float
                      ) -> list[list[dict[str, Any]] | None]: ...

    def measure_all(self, wanted: Sequence[tuple[SLO, Track, float]], ctx: QueryContext
                    ) -> list[Measurement]: ...


#: (unix time, value)
Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[Point]


@dataclass(frozen=True)
class SeriesAnswer:
    """A range query's series, or the error that stopped it (never raised)."""

    series: list[Series] = field(default_factory=list)
    error: str | None = None


class RangeSource(Protocol):
    """Range queries for the dashboard's charts."""

    def range(self, expr: str, start: float, end: float, step: float) -> SeriesAnswer: ...


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


class PlanStore(Protocol):
    """RolloutPlans and SLOPolicies as stored: fresh reads, whole-status writes."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object (raw), or None when it is gone."""
        ...

    def write_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Replace the status of OBJ, guarded by its resourceVersion (``Conflict`` when it
        changed since); returns the object as written."""
        ...


class WorkloadControl(Protocol):
    """The stable and canary Deployments of a plan."""

    def observe(self, namespace: str, name: str) -> WorkloadState: ...
    def scale(self, namespace: str, name: str, replicas: int) -> None: ...
    def promote(self, namespace: str, stable: str, canary: str) -> None: ...


class EventSink(Protocol):
    """Kubernetes Events on plans and policies (deduplicated by seq and run)."""

    def record(self, obj: dict[str, Any], seq: int, run: int, type_: str, reason: str,
               message: str, at: datetime) -> None: ...


class NotificationStore(Protocol):
    """Where the notification dispatcher reads objects and Secrets and records delivery
    state."""

    def read(self, ref: ObjectRef) -> Subject:
        """The object as it is now. Raises NotFound, Transient."""
        ...

    def write_state(self, subject: Subject, state: NotificationState) -> Subject:
        """Replace status.notifications, guarded by ``subject.resource_version``; returns the
        object as written. Raises Conflict (changed since read), NotFound, Transient."""
        ...

    def read_secret(self, namespace: str, ref: SecretKeyRef) -> str:
        """The value of a Secret key. Raises SecretUnavailable, Transient."""
        ...

    def record_event(self, subject: Subject, reason: str, message: str) -> None:
        """A Warning Event on the object; best effort, never raises."""
        ...


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The election record a Lease holds; ``holder_identity`` is "" when nobody holds it."""

    holder_identity: str
    lease_duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    lease_transitions: int = 0
    #: the Lease's resourceVersion when read (the precondition of the next write)
    resource_version: str = ""

    def with_version(self, resource_version: str) -> LeaseRecord:
        return replace(self, resource_version=resource_version)


class LeaseStore(Protocol):
    """Where the election record lives (``adapters.kube.lease.KubeLeaseStore``)."""

    def get(self) -> LeaseRecord | None:
        """The record, or None when there is none yet; raises ``ControllerError``."""
        ...

    def create(self, record: LeaseRecord) -> LeaseRecord:
        """Raises ``Conflict`` when a record exists already."""
        ...

    def update(self, record: LeaseRecord) -> LeaseRecord:
        """Raises ``Conflict`` unless the store is still at ``record.resource_version``."""
        ...

    def wait_for_change(self, resource_version: str, timeout: float) -> bool:
        """Block until the record changes from RESOURCE_VERSION (True) or TIMEOUT seconds
        pass (False); raises ``ControllerError`` when it cannot tell."""
        ...

    def cancel_wait(self) -> None:
        """Make a :meth:`wait_for_change` in progress return at once."""
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


class Host(Protocol):
    """The notification dispatcher's services the channels use."""

    config: DispatcherConfig
    clock: Clock
    metrics: NotifyMetrics

    def secret(self, p: DeliveryPass, channel: ChannelName, ref: SecretKeyRef) -> str:
        """A Secret's value (cached); DeliveryError(SecretUnavailable) when missing."""
        ...

    def bot(self, p: DeliveryPass, channel: ChannelName) -> SlackBot:
        """The Slack client of the object's token (one per token)."""
        ...


class Channel(Protocol):
    """One way of delivering an outbox entry."""

    name: ChannelName

    def wants(self, subject: Subject, entry: OutgoingMessage) -> bool:
        """Configured on SUBJECT, allowed, and routed to for ENTRY (before considering
        whether an incident is open)."""
        ...

    def send(self, p: DeliveryPass, entry: OutgoingMessage, attempts_before: int) -> None:
        """Deliver ENTRY; ATTEMPTS_BEFORE > 0: an earlier attempt may have reached the
        channel (look before posting again). Raises DeliveryError."""
        ...

    def credentials(self, settings: Notifications) -> list[SecretKeyRef | None]:
        """The Secrets to forget when the channel refused the credentials."""
        ...


@runtime_checkable
class LiveView(Protocol):
    """A channel that also shows an object's live state (Slack's root message), refreshed
    after each pass and on its own when it goes stale."""

    def stale(self, subject: Subject) -> bool:
        ...

    def refresh(self, p: DeliveryPass) -> None:
        """Never raises: a failure is recorded in P (``root_error``, ``root_retry``)."""
        ...


class IntervalSource(Protocol):
    """A Prometheus server as the fast path's cadence sees it: its targets' scrape
    interval and when their last scrape was in (``metrics.prometheus.PrometheusSource``)."""

    url: str

    def scrape_timing(self) -> list[tuple[float, float | None]] | None: ...
