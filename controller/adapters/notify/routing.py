"""Who gets which announcement: pure rules over an outbox entry and the object's settings."""

from __future__ import annotations

from enum import StrEnum

from controller.adapters.notify.subject import Kind
from controller.api.decisions import (
    DECISIONS,
    DecisionType,
    IncidentAction,
    Source,
    decision_info,
)
from controller.api.notifications import OutgoingMessage, Severity


class ChannelName(StrEnum):
    """A channel's name: a metrics label and what ``delivered`` lists (the channels
    themselves are in ``channels.py``)."""

    SLACK = "slack"  # the run's thread (or the incoming webhook)
    SLACK_CRITICAL = "slackCritical"  # a top-level copy in criticalChannel
    EMAIL = "email"
    INCIDENT = "incident"


#: Every type the engine and the policy evaluator emit; anything else is "Other" in metrics.
KNOWN_TYPES = frozenset(str(t) for t in DecisionType)
#: Failures: broadcast from the thread to the channel and copied to criticalChannel.
ALARM_TYPES = frozenset(str(t) for t, d in DECISIONS.items() if d.alarm)
#: E-mail goes out for critical entries (rollbacks, freezes) and when a freeze is lifted.
EMAIL_TYPES = frozenset(str(t) for t, d in DECISIONS.items() if d.email)
#: A policy's thread starts with a freeze; a plan's with a new run.
POLICY_THREAD_STARTERS = frozenset(str(t) for t, d in DECISIONS.items() if d.starts_thread)

__all__ = [
    "ALARM_TYPES", "EMAIL_TYPES", "KNOWN_TYPES", "POLICY_THREAD_STARTERS", "ChannelName",
    "IncidentAction", "incident_action", "is_alarming", "metric_type",
    "wants_email",
]

_SOURCE = {Kind.ROLLOUT_PLAN: Source.PLAN, Kind.SLO_POLICY: Source.POLICY}


def metric_type(entry: OutgoingMessage) -> str:
    return entry.type if entry.type in KNOWN_TYPES else "Other"


def is_alarming(entry: OutgoingMessage) -> bool:
    info = decision_info(entry.type)
    return entry.severity is Severity.CRITICAL or (info is not None and info.alarm)


def wants_email(entry: OutgoingMessage) -> bool:
    info = decision_info(entry.type)
    return entry.severity is Severity.CRITICAL or (info is not None and info.email)


def incident_action(kind: Kind, entry: OutgoingMessage) -> IncidentAction | None:
    """Trigger on a rollback or a freeze, resolve on recovery; never for a drill (a
    rehearsal must not page anyone)."""
    if entry.drill:
        return None
    info = decision_info(entry.type)
    if info is None or info.source is not _SOURCE[kind]:
        return None
    return info.incident

