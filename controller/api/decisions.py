"""What the controller decides and how each decision is announced: one enum, one table.

``DecisionType`` names every decision recorded in a status (``status.decisions[].type``,
the outbox entries' ``type``, the Kubernetes Events' reason); ``Reason`` names why the
engine took it (``status.reason``, ``decisions[].reason``). Both are ``StrEnum``s whose
values are the wire strings, so a status written before them reads the same.

``DECISIONS`` holds, per decision type, everything the engine and the notifier need to
know about it: the title people read, its severity, whether it is an alarm (broadcast from
the Slack thread and copied to ``criticalChannel``), whether it is e-mailed, whether it
triggers or resolves an incident, and whether its Kubernetes Event is a Warning. Adding a
decision type is one enum member and one row; a unit test fails when a member has no row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controller.api.notifications import Severity


class DecisionType(StrEnum):
    # a plan's run (controller.engine)
    RUN_STARTED = "RunStarted"
    STEP_ADVANCED = "StepAdvanced"
    AWAITING_PROMOTION = "AwaitingPromotion"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    HOLDING = "Holding"
    FROZEN = "Frozen"
    UNFROZEN = "Unfrozen"
    ROLLBACK_STARTED = "RollbackStarted"
    ROLLED_BACK = "RolledBack"
    PROMOTING = "Promoting"
    PROMOTED_FULL = "PromotedFull"
    PROMOTE_REFUSED = "PromoteRefused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUPERSEDED = "Superseded"
    DRIFT_CORRECTED = "DriftCorrected"
    DRILL_STARTED = "DrillStarted"
    DRILL_COMPLETED = "DrillCompleted"
    STEPS_CHANGED = "StepsChanged"
    REQUEST_IGNORED = "RequestIgnored"
    SPEC_VALID = "SpecValid"
    INVALID = "Invalid"
    # an SLOPolicy's evaluation (controller.engine.freeze)
    FREEZE_STARTED = "FreezeStarted"
    FREEZE_LIFTED = "FreezeLifted"
    OVERRIDE_ACTIVATED = "OverrideActivated"
    OVERRIDE_EXPIRED = "OverrideExpired"
    BURN_RATE_WARNING = "BurnRateWarning"


class Reason(StrEnum):
    """Why the engine decided: a plan's ``status.reason`` and ``decisions[].reason``.
    Gate verdicts have their own (``GateReason``), workloads ``WorkloadReason`` and
    freezes ``FreezeReason``; a reason may also be one of those, passed through."""

    # waiting and holding
    WAITING_FOR_CANARY = "WaitingForCanary"
    WAITING_FOR_ROUTE = "WaitingForRoute"
    WAITING_FOR_SLOT = "WaitingForSlot"
    WAITING_FOR_STABLE = "WaitingForStable"
    HOLDING_STEP = "HoldingStep"
    STEP_STARTED = "StepStarted"
    GATE_FAILING = "GateFailing"
    WEIGHT_BELOW_PLAN = "WeightBelowPlan"
    # idle plans
    CANARY_NOT_FOUND = "CanaryNotFound"
    STABLE_NOT_FOUND = "StableNotFound"
    NO_NEW_REVISION = "NoNewRevision"
    NEW_REVISION = "NewRevision"
    RETRY = "Retry"
    # requests
    NO_RUN_IN_PROGRESS = "NoRunInProgress"
    CANARY_CARRIES_TRAFFIC = "CanaryCarriesTraffic"
    NOTHING_TO_RETRY = "NothingToRetry"
    PROMOTED_BY_OPERATOR = "PromotedByOperator"
    PAUSED_BY_OPERATOR = "PausedByOperator"
    AWAITING_PROMOTION = "AwaitingPromotion"
    RESUMED = "Resumed"
    ABORTED = "Aborted"
    # rollbacks
    FAST_BURN = "FastBurn"
    SUSTAINED_VIOLATION = "SustainedViolation"
    ERROR_BUDGET_FROZEN = "ErrorBudgetFrozen"
    NO_DATA_TIMEOUT = "NoDataTimeout"
    ROUTE_AT_ZERO = "RouteAtZero"
    ROLLED_BACK = "RolledBack"
    # freezes
    FREEZE_LIFTED = "FreezeLifted"
    # steps and promotion
    STEPS_CHANGED = "StepsChanged"
    STEPS_COMPLETE = "StepsComplete"
    COPYING_TEMPLATE = "CopyingTemplate"
    ROUTING_TO_STABLE = "RoutingToStable"
    PROMOTED = "Promoted"
    # drift
    ROUTE_DRIFT = "RouteDrift"
    WEIGHT_DRIFT = "WeightDrift"
    # drills
    DRILL = "Drill"
    DRILL_RESTORING = "DrillRestoring"
    DRILL_RESTORED = "DrillRestored"
    DRILL_COMPLETED = "DrillCompleted"
    # the spec
    SPEC_VALID = "SpecValid"
    INVALID_SPEC = "InvalidSpec"
    # conditions (Ready, Frozen, Degraded)
    RECONCILED = "Reconciled"
    WORKLOAD_NOT_FOUND = "WorkloadNotFound"
    OVERRIDE_ACTIVE = "OverrideActive"
    FROZEN = "Frozen"
    NOT_FROZEN = "NotFrozen"
    ROUTE_NOT_ACCEPTED = "RouteNotAccepted"
    HEALTHY = "Healthy"
    ACTION_FAILED = "ActionFailed"


class Source(StrEnum):
    """Which kind of object announces a decision type."""

    PLAN = "RolloutPlan"
    POLICY = "SLOPolicy"


class IncidentAction(StrEnum):
    TRIGGER = "trigger"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class DecisionInfo:
    """How one decision type is announced."""

    #: what people read after "namespace/name: " (a policy's announcements add details)
    title: str
    severity: Severity
    #: Slack's emoji in the thread reply
    emoji: str = ":information_source:"
    source: Source = Source.PLAN
    #: broadcast from the thread to the channel and copied to criticalChannel
    alarm: bool = False
    #: e-mailed (critical entries are e-mailed whatever this says)
    email: bool = False
    #: what the entry does to the incident webhook (never for a drill)
    incident: IncidentAction | None = None
    #: a policy's Slack thread starts with this type (a plan's starts with each run)
    starts_thread: bool = False
    #: its Kubernetes Event is of type Warning (else Normal)
    warning_event: bool = False


_I, _W, _C = Severity.INFO, Severity.WARNING, Severity.CRITICAL
_TRIGGER, _RESOLVE = IncidentAction.TRIGGER, IncidentAction.RESOLVE
_POLICY = Source.POLICY
D = DecisionType

#: The one table: every decision type's title, severity, alarm, e-mail, incident routing and
#: Event type.
DECISIONS: dict[DecisionType, DecisionInfo] = {
    D.RUN_STARTED: DecisionInfo("rollout started", _I, ":new:", incident=_RESOLVE),
    D.STEP_ADVANCED: DecisionInfo("step started", _I, ":arrow_up:"),
    D.AWAITING_PROMOTION: DecisionInfo("awaiting promotion", _I, ":raised_hand:"),
    D.PAUSED: DecisionInfo("paused", _W, ":double_vertical_bar:", warning_event=True),
    D.RESUMED: DecisionInfo("resumed", _I, ":arrow_forward:"),
    D.HOLDING: DecisionInfo("holding", _W, ":hourglass_flowing_sand:", warning_event=True),
    D.FROZEN: DecisionInfo("frozen by the error budget", _W, ":ice_cube:", warning_event=True),
    D.UNFROZEN: DecisionInfo("freeze lifted", _I, ":sunny:"),
    D.ROLLBACK_STARTED: DecisionInfo("rolling back", _C, ":rotating_light:", alarm=True,
                                     email=True, incident=_TRIGGER, warning_event=True),
    D.ROLLED_BACK: DecisionInfo("rolled back", _C, ":leftwards_arrow_with_hook:", alarm=True,
                                email=True, warning_event=True),
    D.PROMOTING: DecisionInfo("promoting", _I, ":rocket:"),
    D.PROMOTED_FULL: DecisionInfo("promoted fully by an operator", _I),
    D.PROMOTE_REFUSED: DecisionInfo("promotion refused", _W, ":no_entry:", warning_event=True),
    D.SUCCEEDED: DecisionInfo("succeeded", _I, ":white_check_mark:", incident=_RESOLVE),
    D.FAILED: DecisionInfo("failed", _C, ":x:", alarm=True, email=True, incident=_TRIGGER,
                           warning_event=True),
    D.SUPERSEDED: DecisionInfo("superseded by a new revision", _W, ":fast_forward:",
                               warning_event=True),
    D.DRIFT_CORRECTED: DecisionInfo("route drift corrected", _W, ":wrench:", warning_event=True),
    D.DRILL_STARTED: DecisionInfo("rollback drill started", _I, ":fire_drill:"),
    D.DRILL_COMPLETED: DecisionInfo("rollback drill completed", _I, ":checkered_flag:"),
    D.STEPS_CHANGED: DecisionInfo("steps changed, restarting", _I),
    D.REQUEST_IGNORED: DecisionInfo("request ignored", _I),
    D.SPEC_VALID: DecisionInfo("spec valid again", _I),
    D.INVALID: DecisionInfo("invalid spec", _W, ":warning:", alarm=True),
    D.FREEZE_STARTED: DecisionInfo("releases frozen", _C, ":ice_cube:", _POLICY, alarm=True,
                                   email=True, incident=_TRIGGER, starts_thread=True,
                                   warning_event=True),
    D.FREEZE_LIFTED: DecisionInfo("releases open again", _I, ":sunny:", _POLICY, email=True,
                                  incident=_RESOLVE),
    D.OVERRIDE_ACTIVATED: DecisionInfo("break-glass override", _W, ":unlock:", _POLICY),
    D.OVERRIDE_EXPIRED: DecisionInfo("override expired", _I, ":lock:", _POLICY),
    D.BURN_RATE_WARNING: DecisionInfo("burns its budget fast (warning)", _W, source=_POLICY),
}


_BY_WIRE: dict[str, DecisionInfo] = {str(t): info for t, info in DECISIONS.items()}


def decision_info(type_: str) -> DecisionInfo | None:
    """The row of a decision type read from the wire (None for a type this version does
    not know, e.g. written by a newer controller)."""
    return _BY_WIRE.get(type_)


def severity_of(type_: DecisionType) -> Severity:
    return DECISIONS[type_].severity


def title_of(type_: DecisionType) -> str:
    return DECISIONS[type_].title
