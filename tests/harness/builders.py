"""Builders of plans, policies and observations for tests, the simulator and benchmarks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.api.plan import RolloutPlan, RolloutPlanStatus
from controller.api.policy import SLOPolicy
from controller.engine.measurements import (
    BurnRateMeasurement,
    GateMeasurement,
    Measurement,
    MeasurementStatus,
)
from controller.engine.observation import (
    FreezeInput,
    Observation,
    RouterObservation,
    WorkloadState,
)

T0 = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def plan_doc(
    name: str = "checkout",
    namespace: str = "shop",
    *,
    steps: list[tuple[int, str]] | None = None,
    gates: list[dict[str, Any]] | None = None,
    analysis: dict[str, Any] | None = None,
    router: dict[str, Any] | None = None,
    notifications: bool = True,
    **spec: Any,
) -> dict[str, Any]:
    """A RolloutPlan document (as a user would write it)."""
    doc: dict[str, Any] = {
        "apiVersion": "rolloutctl.dev/v1alpha1",
        "kind": "RolloutPlan",
        "metadata": {"name": name, "namespace": namespace, "generation": 1, "uid": "uid-1"},
        "spec": {
            "target": {"stable": {"name": name}, "canary": {"name": f"{name}-canary"}},
            "traffic": router or {"gatewayAPI": {
                "httpRoute": name, "stableBackend": name, "canaryBackend": f"{name}-canary"}},
            "steps": [{"weight": w, "hold": h} for w, h in
                      (steps or [(10, "1m"), (25, "1m"), (50, "1m"), (100, "1m")])],
            "sloPolicyRef": {"name": "platform"},
            "gates": gates if gates is not None else [{"slo": "api_availability"}],
            "analysis": analysis or {"interval": "10s", "window": "1m", "rollbackAfter": "30s",
                                     "minSamples": 100, "noDataTimeout": "2m"},
            **spec,
        },
    }
    if notifications:
        doc["spec"]["notifications"] = {"slack": {
            "channel": "#deploys", "tokenSecretRef": {"name": "slack", "key": "token"}}}
    return doc


def plan(**kwargs: Any) -> RolloutPlan:
    return RolloutPlan.model_validate(plan_doc(**kwargs))


def policy_doc(name: str = "platform", namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "rolloutctl.dev/v1alpha1",
        "kind": "SLOPolicy",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {
            "slos": [
                {
                    "name": "api_availability",
                    "objective": 99.9,
                    "window": "30d",
                    "sli": {"ratio": {
                        "bad": 'sum(rate(http_requests_total{service="{{service}}",'
                               'track="{{track}}",code=~"5.."}[{{window}}]))',
                        "total": 'sum(rate(http_requests_total{service="{{service}}",'
                                 'track="{{track}}"}[{{window}}]))',
                    }},
                    "burnRateAlerts": [
                        {"severity": "critical", "factor": 14.4, "long": "1h", "short": "5m"},
                        {"severity": "critical", "factor": 6, "long": "6h", "short": "30m"},
                    ],
                },
                {
                    "name": "auth_latency",
                    "objective": 95,
                    "window": "7d",
                    "sli": {"latency": {"histogram": "http_request_duration_seconds",
                                        "le": "0.2"}},
                },
                {
                    "name": "task_throughput",
                    "window": "1h",
                    "sli": {"throughput": {"query": "sum(rate(tasks_total[{{window}}]))",
                                           "min": 20}},
                },
            ],
            "errorBudgetPolicy": {"freezeReleases": {"slo": "api_availability"}},
        },
    }


def policy(**kwargs: Any) -> SLOPolicy:
    return SLOPolicy.model_validate(policy_doc(**kwargs))


def ratio(bad_ratio: float, samples: float = 1000.0, query: str = "q") -> Measurement:
    return Measurement(MeasurementStatus.OK, value=bad_ratio, samples=samples,
                       numerator=bad_ratio * samples, denominator=samples, query=query)


def missing(status: MeasurementStatus = MeasurementStatus.NO_DATA,
            message: str = "") -> Measurement:
    return Measurement(status, message=message)


def gate_measurement(gate: str = "api_availability", canary: Measurement | None = None,
                     stable: Measurement | None = None, burn: float | None = None,
                     window: float = 60.0) -> GateMeasurement:
    """A gate measurement; ``burn`` sets both windows of the 14.4x alert to that bad ratio."""
    burns: tuple[BurnRateMeasurement, ...] = ()
    if burn is not None:
        burns = (BurnRateMeasurement(0, ratio(burn, 5000), ratio(burn, 1000), 3600, 300),)
    return GateMeasurement(gate, canary or ratio(0.0), stable, burns, window)


def workload(revision: str, replicas: int = 2, ready: bool = True) -> WorkloadState:
    return WorkloadState(
        exists=True, revision=revision, replicas=replicas,
        ready_replicas=replicas if ready else 0, updated_replicas=replicas if ready else 0,
    )


def observation(
    p: RolloutPlan,
    now: datetime,
    *,
    status: RolloutPlanStatus | None = None,
    router_weight: int | None = 0,
    stable: WorkloadState | None = None,
    canary: WorkloadState | None = None,
    measurements: tuple[GateMeasurement, ...] | None = None,
    pol: SLOPolicy | None = None,
    freeze: FreezeInput | None = None,
    slot_available: bool = True,
) -> Observation:
    if status is not None:
        p = p.model_copy(update={"status": status})
    return Observation(
        plan=p,
        now=now,
        stable=stable or workload("rev-stable"),
        canary=canary or workload("rev-new"),
        router=RouterObservation(weight=router_weight),
        measurements=measurements,
        policy=pol if pol is not None else policy(),
        freeze=freeze,
        slot_available=slot_available,
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def with_now(obs: Observation, now: datetime) -> Observation:
    return replace(obs, now=now)
