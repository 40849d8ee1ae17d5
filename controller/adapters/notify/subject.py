"""What the dispatcher needs to know about one object, parsed from its raw form once.

``Subject`` is built by the store from the object the API server returned; raw dicts do
not travel further than this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from controller.api.notifications import Notifications, NotificationState
from controller.api.plan import GateStatus, RolloutPlanStatus
from controller.api.policy import SLOPolicyStatus


class Kind(StrEnum):
    ROLLOUT_PLAN = "RolloutPlan"
    SLO_POLICY = "SLOPolicy"

    @property
    def plural(self) -> str:
        return "rolloutplans" if self is Kind.ROLLOUT_PLAN else "slopolicies"


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    kind: Kind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def key(self) -> str:
        """The work-queue key, ``namespace/Kind/name``: the namespace first, so the queue's
        per-namespace bound applies to notifications too."""
        return f"{self.namespace}/{self.kind}/{self.name}"

    @classmethod
    def from_key(cls, key: str) -> ObjectRef:
        """The inverse of :attr:`key`; ValueError for anything else."""
        namespace, kind, name = key.split("/", 2)
        return cls(Kind(kind), namespace, name)


@dataclass(frozen=True, slots=True)
class GateView:
    name: str
    verdict: str
    reason: str
    value: float | None
    objective: float | None
    burn_rate: float | None
    samples: float | None


@dataclass(frozen=True, slots=True)
class PlanView:
    """The live state of a plan's run, as shown in the root Slack message."""

    run: int
    phase: str
    reason: str
    message: str
    revision: str | None
    current_step: int | None  # index into spec.steps (0-based)
    steps: int
    weight: int
    gates: tuple[GateView, ...]
    drill: bool
    service: str | None


@dataclass(frozen=True, slots=True)
class SloView:
    name: str
    budget_remaining: float | None
    state: str


@dataclass(frozen=True, slots=True)
class PolicyView:
    """The live state of a policy's freeze, as shown in the root Slack message."""

    frozen: bool
    reason: str
    message: str
    budget_remaining: float | None
    slos: tuple[SloView, ...]
    overrides: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Subject:
    ref: ObjectRef
    uid: str
    resource_version: str
    settings: Notifications | None
    settings_error: str | None
    state: NotificationState
    view: PlanView | PolicyView
    # Policies only: the channels errorBudgetPolicy.freezeReleases.notify allows for freeze
    # messages (None: no restriction) and whether it wants incidents opened.
    freeze_channels: frozenset[str] | None = None
    open_incident: bool = True
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def current_run(self) -> int:
        return self.view.run if isinstance(self.view, PlanView) else 0


def _gate_view(g: GateStatus) -> GateView:
    return GateView(
        name=g.name,
        verdict=str(g.verdict),
        reason=str(g.reason),
        value=g.value,
        objective=g.objective,
        burn_rate=g.burn_rate,
        samples=g.samples,
    )


def _plan_view(spec: dict[str, Any], status: dict[str, Any]) -> PlanView:
    try:
        st = RolloutPlanStatus.model_validate(status)
    except ValidationError:
        st = RolloutPlanStatus()
    steps = spec.get("steps")
    service = spec.get("service") or (spec.get("target") or {}).get("stable", {}).get("name")
    return PlanView(
        run=st.run,
        phase=str(st.phase),
        reason=st.reason,
        message=st.message,
        revision=st.revision,
        current_step=st.current_step,
        steps=len(steps) if isinstance(steps, list) else 4,
        weight=st.canary_weight,
        gates=tuple(_gate_view(g) for g in st.gates),
        drill=st.active_drill is not None,
        service=service if isinstance(service, str) else None,
    )


def _policy_view(status: dict[str, Any]) -> PolicyView:
    try:
        st = SLOPolicyStatus.model_validate(status)
    except ValidationError:
        st = SLOPolicyStatus()
    return PolicyView(
        frozen=st.frozen,
        reason=st.reason,
        message=st.message,
        budget_remaining=st.budget_remaining,
        slos=tuple(SloView(s.name, s.budget_remaining, str(s.state)) for s in st.slos),
        overrides=tuple(o.id for o in st.overrides if o.active),
    )


class UnreadableState(Exception):
    """status.notifications does not parse; the dispatcher leaves such an object alone."""


def subject_from_object(kind: Kind, obj: dict[str, Any]) -> Subject:
    """Parse what the dispatcher needs; a broken spec.notifications is reported in
    ``settings_error`` (the outbox is then kept, not dropped)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    settings: Notifications | None = None
    settings_error: str | None = None
    raw_settings = spec.get("notifications")
    if raw_settings is not None:
        try:
            settings = Notifications.model_validate(raw_settings)
        except ValidationError as exc:
            settings_error = f"spec.notifications is invalid ({exc.error_count()} errors)"
    try:
        state = NotificationState.model_validate(status.get("notifications") or {})
    except ValidationError as exc:
        raise UnreadableState(
            f"status.notifications of {kind}/{meta.get('namespace')}/{meta.get('name')} "
            f"does not parse ({exc.error_count()} errors)"
        ) from None
    freeze_channels: frozenset[str] | None = None
    open_incident = True
    if kind is Kind.ROLLOUT_PLAN:
        view: PlanView | PolicyView = _plan_view(spec, status)
    else:
        view = _policy_view(status)
        freeze = (spec.get("errorBudgetPolicy") or {}).get("freezeReleases")
        if isinstance(freeze, dict):
            notify = freeze.get("notify", ["slack"])
            if isinstance(notify, list):
                freeze_channels = frozenset(str(c) for c in notify)
            open_incident = bool(freeze.get("openIncident", True))
    return Subject(
        ref=ObjectRef(kind, str(meta.get("namespace", "")), str(meta.get("name", ""))),
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        settings=settings,
        settings_error=settings_error,
        state=state,
        view=view,
        freeze_channels=freeze_channels,
        open_incident=open_incident,
        labels=dict(meta.get("labels") or {}),
    )
