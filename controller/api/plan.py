"""RolloutPlan: what to roll out, how traffic moves, which gates judge it, and its status."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from controller.api.conditions import Condition
from controller.api.notifications import Notifications, NotificationState
from controller.api.types import (
    AtLeastOneSecond,
    Duration,
    LabelValue,
    Name,
    ObjectMeta,
    Percent,
    SloName,
    Wire,
    duration_between,
)

MAX_STEPS = 20
MAX_GATES = 32
MAX_HISTORY = 10
MAX_DRILLS = 10
MAX_DECISIONS = 30

RequestId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")
]


# ----------------------------------------------------------------------------- spec


class WorkloadRef(Wire):
    kind: Literal["Deployment"] = "Deployment"
    name: Name
    replicas: Annotated[int, Field(ge=1, le=10000)] | None = None


class Target(Wire):
    """The two workloads. A new canary pod template starts a run."""

    stable: WorkloadRef
    canary: WorkloadRef


class GatewayAPIRoute(Wire):
    http_route: Name
    stable_backend: Name
    canary_backend: Name


class IstioRoute(Wire):
    virtual_service: Name
    # The http route to shift; unset: every http route whose destinations list both hosts.
    route: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    stable_host: Annotated[str, Field(min_length=1, max_length=253)]
    canary_host: Annotated[str, Field(min_length=1, max_length=253)]


class NginxRoute(Wire):
    ingress: Name
    canary_service: Name
    stable_service: Name | None = None


class ReplicaRoute(Wire):
    """No mesh: the canary's share of replicas approximates its weight."""

    total_replicas: Annotated[int, Field(ge=1, le=10000)] | None = None


class RouteMatch(Wire):
    """Requests that reach the canary whatever the step's weight: one header or one cookie,
    compared exactly, by prefix or by a regular expression (RE2 on Gateway API and Istio,
    PCRE on NGINX). Several entries: a request matching any of them goes to the canary."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "[has(self.header), has(self.cookie)].filter(x, x).size() == 1",
         "message": "set exactly one of header or cookie"},
        {"rule": "[has(self.exact), has(self.prefix), has(self.regex)].filter(x, x).size() == 1",
         "message": "set exactly one of exact, prefix or regex"},
    ]})

    header: Annotated[str, Field(min_length=1, max_length=256,
                                 pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")] | None = None
    cookie: Annotated[str, Field(min_length=1, max_length=256,
                                 pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")] | None = None
    exact: Annotated[str, Field(max_length=1024)] | None = None
    prefix: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    regex: Annotated[str, Field(min_length=1, max_length=1024)] | None = None

    @property
    def what(self) -> str:
        """``header X-Canary`` or ``cookie canary``, for messages."""
        return f"header {self.header}" if self.header is not None else f"cookie {self.cookie}"


MAX_MATCHES = 8


class RouterKind(StrEnum):
    GATEWAY_API = "gatewayAPI"
    ISTIO = "istio"
    NGINX = "nginx"
    REPLICAS = "replicas"


class Traffic(Wire):
    """Exactly one router."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "[has(self.gatewayAPI), has(self.istio), has(self.nginx), has(self.replicas)]"
                ".filter(x, x).size() == 1",
        "message": "set exactly one router: gatewayAPI, istio, nginx or replicas",
    }]})

    gateway_api: GatewayAPIRoute | None = Field(default=None, alias="gatewayAPI")
    istio: IstioRoute | None = None
    nginx: NginxRoute | None = None
    replicas: ReplicaRoute | None = None
    match: Annotated[list[RouteMatch], Field(max_length=MAX_MATCHES)] = Field(
        default_factory=list)
    ready_timeout: Duration = Duration("1m")

    def routers(self) -> list[RouterKind]:
        return [
            kind
            for kind, value in (
                (RouterKind.GATEWAY_API, self.gateway_api),
                (RouterKind.ISTIO, self.istio),
                (RouterKind.NGINX, self.nginx),
                (RouterKind.REPLICAS, self.replicas),
            )
            if value is not None
        ]

    @property
    def kind(self) -> RouterKind:
        routers = self.routers()
        if len(routers) != 1:
            raise ValueError("spec.traffic must name exactly one router")
        return routers[0]


class Step(Wire):
    """A weighted step (``weight``: percent of requests to the canary) or, before any
    weighted step, a mirror step (``mirror``: percent of requests copied to the canary,
    its responses discarded; the canary's weight stays 0)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "has(self.mirror) ? (!has(self.weight) || self.weight == 0)"
                " : (has(self.weight) && self.weight > 0)",
        "message": "set exactly one of weight (1-100) or mirror (1-100)",
    }]})

    weight: Annotated[int, Field(ge=0, le=100)] = 0
    mirror: Annotated[int, Field(gt=0, le=100)] | None = None
    hold: AtLeastOneSecond


DEFAULT_STEPS = (
    Step(weight=10, hold=Duration("24h")),
    Step(weight=25, hold=Duration("24h")),
    Step(weight=50, hold=Duration("12h")),
    Step(weight=100, hold=Duration("6h")),
)


class CanaryVsStable(Wire):
    """The canary may burn at most ``maxRatio`` times what stable burns."""

    slo: SloName
    max_ratio: Annotated[float, Field(ge=1)] = 2.0


class ProbeGate(Wire):
    """A synthetic HTTP GET against the canary; 2xx/3xx counts as success."""

    name: SloName = "probe"
    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://")]
    interval: AtLeastOneSecond = Duration("10s")
    timeout: Annotated[Duration, duration_between(high=60)] = Duration("2s")
    objective: Annotated[float, Field(gt=0, le=100)] = 99.0


class GateKind(StrEnum):
    SLO = "slo"
    CANARY_VS_STABLE = "canaryVsStable"
    PROBE = "probe"


class Gate(Wire):
    """Exactly one of ``slo`` (an SLO of the policy), ``canaryVsStable`` or ``probe``."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "[has(self.slo), has(self.canaryVsStable), has(self.probe)]"
                ".filter(x, x).size() == 1",
        "message": "set exactly one of slo, canaryVsStable or probe",
    }]})

    slo: SloName | None = None
    canary_vs_stable: CanaryVsStable | None = None
    probe: ProbeGate | None = None

    def kinds(self) -> list[GateKind]:
        return [
            kind
            for kind, value in (
                (GateKind.SLO, self.slo),
                (GateKind.CANARY_VS_STABLE, self.canary_vs_stable),
                (GateKind.PROBE, self.probe),
            )
            if value is not None
        ]

    @property
    def kind(self) -> GateKind:
        kinds = self.kinds()
        if len(kinds) != 1:
            raise ValueError("a gate must set exactly one of slo, canaryVsStable, probe")
        return kinds[0]

    @property
    def name(self) -> str:
        """The gate's name in status: the SLO name, ``canaryVsStable:SLO`` or ``probe:NAME``."""
        if self.slo is not None:
            return self.slo
        if self.canary_vs_stable is not None:
            return f"canaryVsStable:{self.canary_vs_stable.slo}"
        if self.probe is not None:
            return f"probe:{self.probe.name}"
        raise ValueError("a gate must set exactly one of slo, canaryVsStable, probe")

    @property
    def slo_name(self) -> str | None:
        if self.slo is not None:
            return self.slo
        if self.canary_vs_stable is not None:
            return self.canary_vs_stable.slo
        return None


class OnNoData(StrEnum):
    HOLD = "hold"
    PAUSE = "pause"
    ROLLBACK = "rollback"


class Analysis(Wire):
    interval: AtLeastOneSecond = Duration("60s")
    window: Duration = Duration("5m")
    rollback_after: Duration = Duration("5m")
    min_samples: Annotated[int, Field(ge=0)] = 500
    on_no_data: OnNoData = OnNoData.HOLD
    no_data_timeout: Duration = Duration("15m")
    # How long the canary (at a step) or the stable (during promotion) may take to become
    # ready; past it the run ends with reason ProgressDeadlineExceeded.
    progress_deadline: Duration = Duration("10m")
    # A hard ceiling on the canary's error ratio over the fast path's recent window: above it
    # the canary rolls back at once (FastBurn), whatever the burn-rate alerts say.
    error_ratio_ceiling: Percent | None = None


class PromotionMode(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class Promotion(Wire):
    mode: PromotionMode = PromotionMode.AUTO


class OnSuccessPromote(StrEnum):
    COPY_TO_STABLE = "copyToStable"
    NONE = "none"


class OnSuccess(Wire):
    promote: OnSuccessPromote = OnSuccessPromote.COPY_TO_STABLE


class SLOPolicyRef(Wire):
    name: Name


class Request(Wire):
    """An operator's one-shot request. The controller acts on a new ``id`` exactly once."""

    id: RequestId
    by: Annotated[str, Field(max_length=253)] = ""
    at: datetime | None = None
    reason: Annotated[str, Field(max_length=1024)] = ""


class PromoteRequest(Request):
    full: bool = False


class DrillRequest(Request):
    restore: bool = False
    max_duration: Duration = Duration("60s")


class Requests(Wire):
    """The latest request of each kind; ``status.handled`` holds the ids already acted on."""

    promote: PromoteRequest | None = None
    resume: Request | None = None
    abort: Request | None = None
    retry: Request | None = None
    drill: DrillRequest | None = None


class RolloutPlanSpec(Wire):
    target: Target
    traffic: Traffic
    steps: Annotated[
        list[Step],
        Field(min_length=1, max_length=MAX_STEPS, json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.filter(s, !has(s.mirror)).all(a, self.filter(s, !has(s.mirror))"
                         ".exists_one(b, b.weight == a.weight)) && "
                         "self.filter(s, !has(s.mirror)).map(s, s.weight).isSorted()",
                 "message": "step weights must be strictly increasing"},
                {"rule": "self.map(s, has(s.mirror) ? 0 : 1).isSorted()",
                 "message": "mirror steps come before every weighted step"},
                {"rule": "!has(self[size(self) - 1].mirror) && self[size(self) - 1].weight == 100",
                 "message": "the last step must have weight 100"},
            ]}),
    ] = Field(default_factory=lambda: list(DEFAULT_STEPS))
    slo_policy_ref: SLOPolicyRef | None = None
    service: LabelValue | None = None
    gates: Annotated[list[Gate], Field(max_length=MAX_GATES)] = Field(default_factory=list)
    analysis: Analysis = Field(default_factory=Analysis)
    promotion: Promotion = Field(default_factory=Promotion)
    on_success: OnSuccess = Field(default_factory=OnSuccess)
    notifications: Notifications | None = None
    paused: bool = False
    requests: Requests = Field(default_factory=Requests)

    @property
    def service_name(self) -> str:
        """The ``{{service}}`` template value: ``spec.service`` or the stable workload's name."""
        return self.service or self.target.stable.name


# ----------------------------------------------------------------------------- status


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HOLDING = "Holding"
    FROZEN = "Frozen"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    PROMOTING = "Promoting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # ended without a rollback: promotion could not finish
    INVALID = "Invalid"


ACTIVE_PHASES = frozenset(
    {Phase.PROGRESSING, Phase.PAUSED, Phase.HOLDING, Phase.ROLLING_BACK, Phase.PROMOTING}
)


def is_in_run(phase: str | None, current_step: int | None) -> bool:
    """Whether a plan with this status phase and step is in a run (``RolloutPlanStatus.
    in_run``), from the raw fields: callers that scan every cached plan need not build
    the whole status model."""
    return phase in ACTIVE_PHASES or (phase == Phase.FROZEN and current_step is not None)


class WorkloadReason(StrEnum):
    """Why a run ended on its workloads (rather than on its gates)."""

    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


MIN_PROGRESS_DEADLINE = 10.0  # seconds: shorter would fail healthy pods still starting


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


class GateReason(StrEnum):
    OBJECTIVE_MET = "ObjectiveMet"
    OBJECTIVE_MISSED = "ObjectiveMissed"
    FAST_BURN = "FastBurn"
    WORSE_THAN_STABLE = "WorseThanStable"
    PROMETHEUS_ERROR = "PrometheusError"
    NO_DATA = "NoData"
    TOO_FEW_SAMPLES = "TooFewSamples"
    AMBIGUOUS_RESULT = "AmbiguousResult"
    STALE = "Stale"
    NOT_EVALUATED = "NotEvaluated"
    NOT_APPLICABLE = "NotApplicable"


class GateStatus(Wire):
    """A gate's latest verdict and the evidence behind it."""

    model_config = ConfigDict(extra="ignore")

    name: str
    kind: GateKind
    verdict: Verdict = Verdict.INCONCLUSIVE
    reason: GateReason = GateReason.NOT_EVALUATED
    message: str = ""
    value: float | None = None
    objective: float | None = None
    stable_value: float | None = None
    burn_rate: float | None = None
    samples: float | None = None
    numerator: float | None = None
    denominator: float | None = None
    query: str | None = None
    window: Duration | None = None
    evaluated_at: datetime | None = None
    failing_since: datetime | None = None
    inconclusive_since: datetime | None = None
    # the first evaluation of an unbroken stretch where a critical alert's short window and
    # the recent window both burn above its factor (the fast-burn episode rule)
    burning_since: datetime | None = None


class RunOutcome(StrEnum):
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"
    SUPERSEDED = "Superseded"


class RunRecord(Wire):
    model_config = ConfigDict(extra="ignore")

    run: int
    revision: str | None = None
    outcome: RunOutcome
    reason: str
    message: str = ""
    started_at: datetime | None = None
    ended_at: datetime
    final_step: int | None = None
    final_weight: int = 0
    promoted_full: bool = False
    # A rollback's canary weight 0 (its RollbackStarted decision), for time-to-restore figures
    weight_zero_at: datetime | None = None
    evidence: list[GateStatus] = Field(default_factory=list)


class DecisionRecord(Wire):
    """One decision the controller took, with why; the newest last."""

    model_config = ConfigDict(extra="ignore")

    seq: int
    at: datetime
    type: str
    reason: str
    message: str = ""
    step: int | None = None
    weight: int | None = None


class DrillStage(StrEnum):
    SHIFTING = "Shifting"
    ROLLING_BACK = "RollingBack"
    RESTORING = "Restoring"
    DONE = "Done"


class DrillOutcome(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"


class DrillReport(Wire):
    model_config = ConfigDict(extra="ignore")

    id: str
    by: str = ""
    synthetic: bool = False
    restore: bool = False
    max_duration: Duration = Duration("60s")
    stage: DrillStage = DrillStage.ROLLING_BACK
    outcome: DrillOutcome = DrillOutcome.RUNNING
    pre_drill_phase: Phase | None = None
    pre_drill_step: int | None = None
    pre_drill_weight: int = 0
    requested_at: datetime
    rollback_started_at: datetime | None = None
    canary_weight_zero_at: datetime | None = None
    stable_ready_at: datetime | None = None
    restored_at: datetime | None = None
    message: str = ""

    @property
    def seconds_to_restore(self) -> float | None:
        if self.canary_weight_zero_at is None:
            return None
        return (self.canary_weight_zero_at - self.requested_at).total_seconds()


class Handled(Wire):
    """Ids of the operator requests already acted on."""

    model_config = ConfigDict(extra="ignore")

    promote: str | None = None
    resume: str | None = None
    abort: str | None = None
    retry: str | None = None
    drill: str | None = None


class PromotionStage(StrEnum):
    COPYING_TEMPLATE = "CopyingTemplate"
    WAITING_FOR_STABLE = "WaitingForStable"
    ROUTING_TO_STABLE = "RoutingToStable"
    SCALING_DOWN_CANARY = "ScalingDownCanary"


class FreezeInfo(Wire):
    model_config = ConfigDict(extra="ignore")

    policy: str
    reason: str
    message: str = ""
    budget_remaining: float | None = None
    since: datetime | None = None


class RolloutPlanStatus(Wire):
    model_config = ConfigDict(extra="ignore")

    observed_generation: int = 0
    phase: Phase = Phase.PENDING
    reason: str = ""
    message: str = ""
    run: int = 0
    seq: int = 0
    revision: str | None = None
    steps_hash: str | None = None
    current_step: int | None = None
    canary_weight: int = 0
    canary_mirror: int | None = None  # percent of requests copied to the canary (mirror step)
    route_pending_since: datetime | None = None  # a route change not yet accepted
    run_started_at: datetime | None = None
    step_started_at: datetime | None = None
    last_analysis_at: datetime | None = None
    pause_reason: str | None = None  # set when the controller paused the run itself
    # When the run began waiting for a workload to be ready (the canary before a step, the
    # stable during promotion); None when not waiting. analysis.progressDeadline counts
    # from here.
    waiting_since: datetime | None = None
    promotion_stage: PromotionStage | None = None
    promoted_full: bool = False
    rollback_reason: str | None = None
    freeze: FreezeInfo | None = None
    gates: list[GateStatus] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    history: list[RunRecord] = Field(default_factory=list)
    drills: list[DrillReport] = Field(default_factory=list)
    decisions: list[DecisionRecord] = Field(default_factory=list)
    handled: Handled = Field(default_factory=Handled)
    notifications: NotificationState = Field(default_factory=NotificationState)

    @property
    def active_drill(self) -> DrillReport | None:
        if self.drills and self.drills[-1].outcome == DrillOutcome.RUNNING:
            return self.drills[-1]
        return None

    @property
    def in_run(self) -> bool:
        return is_in_run(self.phase.value, self.current_step)


class RolloutPlan(Wire):
    api_version: Literal["rolloutctl.dev/v1alpha1"] = "rolloutctl.dev/v1alpha1"
    kind: Literal["RolloutPlan"] = "RolloutPlan"
    metadata: ObjectMeta
    spec: RolloutPlanSpec
    status: RolloutPlanStatus = Field(default_factory=RolloutPlanStatus)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"
