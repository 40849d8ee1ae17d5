"""SLOPolicy: the service's SLOs, their SLIs and burn-rate alerts, and the freeze policy."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, model_validator

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

#: An SLOPolicy with this label set to "true" is its namespace's platform policy: its
#: freeze applies to every plan in the namespace, whatever the plan's sloPolicyRef names.
PLATFORM_LABEL = "rolloutctl.dev/platform"

MAX_BURN_RATE_ALERTS = 8
MAX_OVERRIDE_ALLOW = 100

PromQL = Annotated[str, Field(min_length=1, max_length=4096)]
MetricName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
]


class RatioSLI(Wire):
    """bad / total, both PromQL templates of a rate over ``{{window}}``."""

    bad: PromQL
    total: PromQL


class LatencySLI(Wire):
    """Share of requests faster than ``le``: the histogram bucket ratio, not a quantile."""

    histogram: MetricName
    le: Annotated[str, Field(
        max_length=32, pattern=r"^([0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|\+Inf)$")]
    selector: Annotated[str, Field(max_length=1024)] = ""
    track_selector: Annotated[str, Field(max_length=1024)] = (
        'service="{{service}}",track="{{track}}"'
    )


class ThroughputSLI(Wire):
    """The rate must stay at or above ``min`` (per second)."""

    query: PromQL
    min: Annotated[float, Field(ge=0)]


class GaugeSLI(Wire):
    """The value must stay at or below ``max`` (and at or above ``min`` when set)."""

    query: PromQL
    max: float | None = None
    min: float | None = None
    # true: the value must stay strictly below ``max`` (``memory_usage < 80``)
    exclusive_max: bool = False

    @model_validator(mode="after")
    def _a_bound(self) -> Self:
        if self.max is None and self.min is None:
            raise ValueError("set max (the highest acceptable value) or min, or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class ProbeSLI(Wire):
    """A synthetic health check: HTTP GET ``url`` every ``interval``; 2xx/3xx is success."""

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://")]
    interval: AtLeastOneSecond = Duration("10s")
    timeout: Annotated[Duration, duration_between(high=60)] = Duration("2s")


class SLIKind(StrEnum):
    RATIO = "ratio"
    LATENCY = "latency"
    THROUGHPUT = "throughput"
    GAUGE = "gauge"
    PROBE = "probe"


class SLI(Wire):
    """Exactly one of ratio, latency, throughput, gauge or probe."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "[has(self.ratio), has(self.latency), has(self.throughput), has(self.gauge), "
                "has(self.probe)].filter(x, x).size() == 1",
        "message": "set exactly one of ratio, latency, throughput, gauge or probe",
    }]})

    ratio: RatioSLI | None = None
    latency: LatencySLI | None = None
    throughput: ThroughputSLI | None = None
    gauge: GaugeSLI | None = None
    probe: ProbeSLI | None = None

    @property
    def kind(self) -> SLIKind:
        for kind in SLIKind:
            if getattr(self, kind.value) is not None:
                return kind
        raise ValueError("SLI has no kind")

    def templates(self) -> dict[str, str]:
        """Every text that may hold template variables, by its field name."""
        out: dict[str, str] = {}
        if self.ratio:
            out["ratio.bad"] = self.ratio.bad
            out["ratio.total"] = self.ratio.total
        if self.latency:
            out["latency.selector"] = self.latency.selector
            out["latency.trackSelector"] = self.latency.track_selector
        if self.throughput:
            out["throughput.query"] = self.throughput.query
        if self.gauge:
            out["gauge.query"] = self.gauge.query
        if self.probe:
            out["probe.url"] = self.probe.url
        return out


class AlertSeverity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"


class BurnRateAlert(Wire):
    """Fires when the burn rate exceeds ``factor`` over both ``long`` and ``short``."""

    severity: AlertSeverity = AlertSeverity.CRITICAL
    factor: Annotated[float, Field(gt=0)]
    long: Duration
    short: Duration


class SLO(Wire):
    name: SloName
    description: Annotated[str, Field(max_length=1024)] = ""
    objective: Annotated[float, Field(gt=0, lt=100)] | None = None
    window: Duration = Duration("30d")
    sli: SLI
    burn_rate_alerts: Annotated[list[BurnRateAlert], Field(max_length=MAX_BURN_RATE_ALERTS)] = (
        Field(default_factory=list))

    @property
    def budget(self) -> float:
        """The error budget as a fraction: 1 - objective."""
        if self.objective is None:
            raise ValueError(f"SLO {self.name} has no objective")
        return 1.0 - self.objective / 100.0

    @property
    def is_threshold(self) -> bool:
        """Throughput and gauge SLIs are judged by their bound, not by a ratio objective."""
        return self.sli.kind in (SLIKind.THROUGHPUT, SLIKind.GAUGE)


class InFlight(StrEnum):
    HOLD = "hold"
    ROLLBACK = "rollback"


class NotifyChannel(StrEnum):
    SLACK = "slack"
    EMAIL = "email"


class FreezeReleases(Wire):
    slo: SloName
    when_remaining_below: Percent = Percent(10)
    release_above: Percent = Percent(15)
    in_flight: InFlight = InFlight.HOLD
    notify: Annotated[list[NotifyChannel], Field(max_length=len(NotifyChannel))] = Field(
        default_factory=lambda: [NotifyChannel.SLACK])
    open_incident: bool = True


class ErrorBudgetPolicy(Wire):
    freeze_releases: FreezeReleases | None = None


class PrometheusRef(Wire):
    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://")]
    timeout: Annotated[Duration, duration_between(high=60)] = Duration("10s")


class Override(Wire):
    """Break-glass: lets runs start despite a freeze until ``expires``."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")]
    reason: Annotated[str, Field(min_length=1, max_length=1024)]
    expires: datetime
    allow: Annotated[list[Name], Field(max_length=MAX_OVERRIDE_ALLOW)] = Field(
        default_factory=list)
    by: Annotated[str, Field(max_length=253)] = ""


class SLOPolicySpec(Wire):
    service: LabelValue | None = None
    prometheus: PrometheusRef | None = None
    evaluation_interval: Duration = Duration("60s")
    slos: Annotated[list[SLO], Field(min_length=1, max_length=64)]
    error_budget_policy: ErrorBudgetPolicy = Field(default_factory=ErrorBudgetPolicy)
    notifications: Notifications | None = None
    overrides: Annotated[list[Override], Field(max_length=32)] = Field(default_factory=list)

    def service_for(self, policy_name: str) -> str:
        """The ``{{service}}`` whose budget the policy guards: ``spec.service`` or its name."""
        return self.service or policy_name

    def slo(self, name: str) -> SLO | None:
        for s in self.slos:
            if s.name == name:
                return s
        return None


class SLOState(StrEnum):
    OK = "Ok"
    UNKNOWN = "Unknown"


class BurnRateStatus(Wire):
    model_config = ConfigDict(extra="ignore")

    severity: AlertSeverity
    factor: float
    long: Duration
    short: Duration
    long_rate: float | None = None
    short_rate: float | None = None
    firing: bool = False


class SLOStatus(Wire):
    model_config = ConfigDict(extra="ignore")

    name: str
    state: SLOState = SLOState.UNKNOWN
    reason: str = ""
    message: str = ""
    objective: float | None = None
    window: Duration | None = None
    budget_remaining: float | None = None  # percent of the budget left, may be negative
    error_ratio: float | None = None
    value: float | None = None
    burn_rates: list[BurnRateStatus] = Field(default_factory=list)


class OverrideStatus(Wire):
    model_config = ConfigDict(extra="ignore")

    id: str
    by: str = ""
    reason: str
    until: datetime
    allow: list[str] = Field(default_factory=list)
    active: bool = True


MAX_FREEZES = 20
MAX_FREEZE_OVERRIDES = 16


class FreezeRecord(Wire):
    """One release freeze, kept for reports: when, why, how long, overrides used."""

    model_config = ConfigDict(extra="ignore")

    since: datetime
    until: datetime | None = None  # None while the freeze lasts
    reason: str
    # every reason seen while it lasted
    reasons: Annotated[list[str], Field(max_length=8)] = Field(default_factory=list)
    message: str = ""
    budget_remaining: float | None = None  # the lowest seen while it lasted
    # ids of the overrides active during it
    overrides: Annotated[list[str], Field(max_length=MAX_FREEZE_OVERRIDES)] = Field(
        default_factory=list)


class ServiceStatus(Wire):
    """One guarded service: its budgets per SLO and its own freeze."""

    model_config = ConfigDict(extra="ignore")

    service: str
    frozen: bool = False
    frozen_since: datetime | None = None
    freeze_announced: bool = False
    budget_freeze: bool = False  # the hysteresis latch (see SLOPolicyStatus)
    reason: str = ""
    message: str = ""
    budget_remaining: float | None = None
    # the warning burn-rate alerts firing (``SLO/index``), each announced once per episode
    warnings_firing: list[str] = Field(default_factory=list)
    slos: list[SLOStatus] = Field(default_factory=list)


class SLOPolicyStatus(Wire):
    model_config = ConfigDict(extra="ignore")

    observed_generation: int = 0
    seq: int = 0
    evaluated_at: datetime | None = None
    frozen: bool = False
    frozen_since: datetime | None = None
    freeze_announced: bool = False
    # The hysteresis latch: the freeze SLO's budget fell below whenRemainingBelow and has not
    # been measured at releaseAbove or more since. An unknown budget leaves it as it was.
    budget_freeze: bool = False
    reason: str = ""
    message: str = ""
    budget_remaining: float | None = None
    slos: list[SLOStatus] = Field(default_factory=list)
    # One entry per guarded service (spec.service, or the services of the plans the policy
    # governs). The top-level freeze fields above summarise them: ``frozen`` while any
    # service is frozen (``frozenServices`` names which), the rest from the first frozen one;
    # ``slos`` only when the policy guards exactly one service.
    # None: a status written before services were listed, or by hand (top-level fields only).
    services: list[ServiceStatus] | None = None
    frozen_services: list[str] = Field(default_factory=list)
    # the Deployments (stable and canary) of the governed plans of the frozen services: what
    # the release-freeze admission policy blocks
    frozen_deployments: list[str] = Field(default_factory=list)
    overrides: list[OverrideStatus] = Field(default_factory=list)
    freezes: Annotated[list[FreezeRecord], Field(max_length=MAX_FREEZES)] = Field(
        default_factory=list)  # the last MAX_FREEZES
    conditions: list[Condition] = Field(default_factory=list)
    notifications: NotificationState = Field(default_factory=NotificationState)


class SLOPolicy(Wire):
    api_version: Literal["rolloutctl.dev/v1alpha1"] = "rolloutctl.dev/v1alpha1"
    kind: Literal["SLOPolicy"] = "SLOPolicy"
    metadata: ObjectMeta
    spec: SLOPolicySpec
    status: SLOPolicyStatus = Field(default_factory=SLOPolicyStatus)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def is_platform(self) -> bool:
        """The namespace's platform policy (label ``rolloutctl.dev/platform: "true"``)."""
        return self.metadata.labels.get(PLATFORM_LABEL) == "true"

    def for_service(self, service: str) -> SLOPolicy:
        """This policy with the top-level freeze fields and SLOs of its status describing
        SERVICE (a policy guarding several services keeps them per service)."""
        found = self.service_status(service)
        if found is None or self.spec.service is not None:
            return self
        return self.model_copy(update={"status": self.status.model_copy(update={
            "frozen": found.frozen, "frozen_since": found.frozen_since, "reason": found.reason,
            "message": found.message, "budget_remaining": found.budget_remaining,
            "slos": found.slos})})

    def service_status(self, service: str) -> ServiceStatus | None:
        return next((s for s in self.status.services or [] if s.service == service), None)
