"""The engine's input (an Observation) and output (a Decision): plain, immutable data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from controller.api.plan import RolloutPlan, RolloutPlanStatus
from controller.api.policy import InFlight, SLOPolicy
from controller.engine.measurements import GateMeasurement


@dataclass(frozen=True, slots=True)
class RouterObservation:
    """What the router's objects say now. ``weight`` is None when it cannot be read;
    ``achieved`` is the share of traffic the canary really gets where that differs from the
    configured weight (the replica-ratio router), in percent.

    ``mirror`` is the percent of requests the route copies to the canary, ``match`` whether
    its header/cookie routes to the canary are in place (None: some are, not the plan's).
    ``ready`` says whether the data plane accepted what the route says now: None when the
    route reports nothing to wait for (NGINX, replicas, an HTTPRoute with no parentRefs, a
    VirtualService without status), True when every parent accepted it at its current
    generation, False when not yet (``ready_message`` then quotes the parent)."""

    weight: int | None
    achieved: float | None = None
    reason: str = "Observed"
    message: str = ""
    mirror: int = 0
    match: bool | None = False  # None: header routes there, but not the plan's
    ready: bool | None = None
    ready_message: str = ""
    rejected: bool = False  # a parent said False at the current generation (not just late)


@dataclass(frozen=True, slots=True)
class WorkloadState:
    """A Deployment as observed: its pod-template revision and readiness."""

    exists: bool = True
    revision: str | None = None
    replicas: int = 1
    ready_replicas: int = 0
    updated_replicas: int = 0
    up_to_date: bool = True  # the controller has observed the latest generation
    # Why its pods are not ready, as the kubelet or the Deployment controller says
    # (ImagePullBackOff, CrashLoopBackOff, Unschedulable, ProgressDeadlineExceeded...),
    # with the detail; empty while ready or when nothing explains it yet.
    not_ready_reason: str = ""
    not_ready_message: str = ""
    # A HorizontalPodAutoscaler targets it: its replicas are the autoscaler's to write.
    autoscaled: bool = False

    @property
    def ready(self) -> bool:
        return (
            self.exists
            and self.up_to_date
            and self.ready_replicas >= self.replicas
            and self.updated_replicas >= self.replicas
        )


MISSING = WorkloadState(exists=False, replicas=0)


class FreezeReason(StrEnum):
    BUDGET_BELOW_THRESHOLD = "BudgetBelowThreshold"
    FAST_BURN = "FastBurn"
    BUDGET_UNKNOWN = "BudgetUnknown"


@dataclass(frozen=True, slots=True)
class FreezeInput:
    """The referenced SLOPolicy's freeze state, as its evaluation left it."""

    policy: str
    frozen: bool
    reason: str = ""
    message: str = ""
    budget_remaining: float | None = None
    in_flight: InFlight = InFlight.HOLD
    overridden: bool = False  # an active break-glass override covers this plan
    since: datetime | None = None

    @property
    def blocks(self) -> bool:
        """New runs may not start."""
        return self.frozen and not self.overridden

    @property
    def unknown(self) -> bool:
        return self.reason == FreezeReason.BUDGET_UNKNOWN


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one reconcile pass knows, read once at the start of the pass."""

    plan: RolloutPlan
    now: datetime
    stable: WorkloadState
    canary: WorkloadState
    router: RouterObservation
    measurements: tuple[GateMeasurement, ...] | None = None  # None: analysis not due
    # the fast path's latest measurement (recent and short windows) when no analysis is due
    fast: tuple[GateMeasurement, ...] | None = None
    policy: SLOPolicy | None = None
    freeze: FreezeInput | None = None
    slot_available: bool = True  # below the controller's maxConcurrentRollouts


class ActionType(StrEnum):
    SET_WEIGHT = "SetWeight"
    SCALE_CANARY = "ScaleCanary"
    PROMOTE_STABLE = "PromoteStable"  # stable takes the canary's pod template


class ActionTag(StrEnum):
    """Why an action is taken, where its completion time matters to the status."""

    NONE = ""
    ROLLBACK = "rollback"
    DRILL_SHIFT = "drill-shift"
    DRILL_ZERO = "drill-zero"
    DRILL_RESTORE = "drill-restore"


@dataclass(frozen=True, slots=True)
class Action:
    type: ActionType
    weight: int | None = None
    replicas: int | None = None
    tag: ActionTag = ActionTag.NONE
    mirror: int = 0
    match: bool = False

    def __str__(self) -> str:
        if self.type == ActionType.SET_WEIGHT:
            extra = (f", mirror {self.mirror}%" if self.mirror else "") + (
                ", header routes on" if self.match else "")
            return f"set canary weight to {self.weight}%{extra}"
        if self.type == ActionType.SCALE_CANARY:
            return f"scale canary to {self.replicas} replica(s)"
        return "copy the canary's pod template to stable"


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: Action
    ok: bool
    at: datetime
    error: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The actions to take in order, the complete next status, and when to look again."""

    actions: tuple[Action, ...]
    status: RolloutPlanStatus
    requeue_after: float | None
    announcements: tuple[str, ...] = field(default_factory=tuple)  # outbox keys added
