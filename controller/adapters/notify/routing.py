"""Who gets which announcement: pure rules over an outbox entry and the object's settings."""

from __future__ import annotations

from enum import StrEnum

from controller.adapters.notify.subject import Kind
from controller.api.notifications import OutgoingMessage, Severity


class ChannelName(StrEnum):
    """A channel's name: a metrics label and what ``delivered`` lists (the channels
    themselves are in ``channels.py``)."""

    SLACK = "slack"  # the run's thread (or the incoming webhook)
    SLACK_CRITICAL = "slackCritical"  # a top-level copy in criticalChannel
    EMAIL = "email"
    INCIDENT = "incident"


class IncidentAction(StrEnum):
    TRIGGER = "trigger"
    RESOLVE = "resolve"


#: Every type the engine and the policy evaluator emit; anything else is "Other" in metrics.
KNOWN_TYPES = frozenset({
    "RunStarted", "StepAdvanced", "AwaitingPromotion", "Paused", "Resumed", "Holding",
    "Frozen", "Unfrozen", "RollbackStarted", "RolledBack", "Promoting", "Succeeded",
    "Superseded", "DriftCorrected", "DrillStarted", "DrillCompleted", "Invalid",
    "PromoteRefused", "Failed",
    "FreezeStarted", "FreezeLifted", "OverrideActivated", "OverrideExpired", "BurnRateWarning",
})

#: Failures: broadcast from the thread to the channel and copied to criticalChannel.
ALARM_TYPES = frozenset({"RollbackStarted", "RolledBack", "Failed", "FreezeStarted", "Invalid"})
#: E-mail goes out for critical entries (rollbacks, freezes) and when a freeze is lifted.
EMAIL_TYPES = frozenset({"RollbackStarted", "RolledBack", "Failed", "FreezeStarted",
                         "FreezeLifted"})

_TRIGGERS = {Kind.ROLLOUT_PLAN: frozenset({"RollbackStarted", "Failed"}),
             Kind.SLO_POLICY: frozenset({"FreezeStarted"})}
_RESOLVERS = {Kind.ROLLOUT_PLAN: frozenset({"Succeeded", "RunStarted"}),
              Kind.SLO_POLICY: frozenset({"FreezeLifted"})}

#: A policy's thread starts with a freeze; a plan's with a new run.
POLICY_THREAD_STARTERS = frozenset({"FreezeStarted"})


def metric_type(entry: OutgoingMessage) -> str:
    return entry.type if entry.type in KNOWN_TYPES else "Other"


def is_alarming(entry: OutgoingMessage) -> bool:
    return entry.severity is Severity.CRITICAL or entry.type in ALARM_TYPES


def wants_email(entry: OutgoingMessage) -> bool:
    return entry.severity is Severity.CRITICAL or entry.type in EMAIL_TYPES


def incident_action(kind: Kind, entry: OutgoingMessage) -> IncidentAction | None:
    """Trigger on a rollback or a freeze, resolve on recovery; never for a drill (a
    rehearsal must not page anyone)."""
    if entry.drill:
        return None
    if entry.type in _TRIGGERS[kind]:
        return IncidentAction.TRIGGER
    if entry.type in _RESOLVERS[kind]:
        return IncidentAction.RESOLVE
    return None
