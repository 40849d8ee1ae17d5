"""What a plan's decisions say: the outbox entry (title, severity) and the wording shared
by status messages and announcements. Pure functions; titles and severities come from the
decision table (``controller.api.decisions``)."""

from __future__ import annotations

from datetime import datetime

from controller.api.decisions import DECISIONS, DecisionType
from controller.api.notifications import OutgoingMessage
from controller.api.plan import FreezeInfo, GateStatus
from controller.api.types import ObjectMeta
from controller.engine.observation import FreezeInput, WorkloadState

# decision types whose title names no weight (the run has ended, or the step says it)
_NO_WEIGHT = frozenset({DecisionType.ROLLED_BACK, DecisionType.SUCCEEDED, DecisionType.FAILED})


def title(type_: DecisionType, plan: ObjectMeta, *, drill: bool, step: int | None, steps: int,
          weight: int, weight_before: int) -> str:
    """"ns/name: rolling back at step 2/4 (from 25%)": the table's title, where the run
    stands and, for a rollback, the weight it leaves."""
    where = f" at step {step + 1}/{steps}" if step is not None else ""
    if type_ == DecisionType.ROLLBACK_STARTED:
        where += f" (from {weight_before}%)"
    elif step is not None and type_ not in _NO_WEIGHT:
        where += f" ({weight}%)"
    return (f"{'[DRILL] ' if drill else ''}{plan.namespace}/{plan.name}: "
            f"{DECISIONS[type_].title}{where}")


def outgoing(key: str, type_: DecisionType, at: datetime, title: str, text: str, *,
             drill: bool, run: int, step: int | None, weight: int,
             evidence: list[GateStatus]) -> OutgoingMessage:
    """The outbox entry of one decision, with the table's severity."""
    return OutgoingMessage(
        key=key, type=type_, severity=DECISIONS[type_].severity, at=at, title=title,
        text=text, drill=drill, run=run, step=step, weight=weight,
        evidence=[evidence_of(g) for g in evidence],
    )


def evidence_of(g: GateStatus) -> dict[str, object]:
    data = g.model_dump(mode="json", by_alias=True, exclude_none=True,
                        include={"name", "verdict", "reason", "message", "value", "objective",
                                 "burn_rate", "samples", "query", "stable_value"})
    return dict(data)


def why(workload: WorkloadState) -> str:
    """The pods' own reason for not being ready, for status messages and alarms."""
    if not workload.not_ready_reason:
        return ""
    detail = f" ({workload.not_ready_message})" if workload.not_ready_message else ""
    return f"; pods: {workload.not_ready_reason}{detail}"


def on_off(value: bool | None) -> str:
    return "on" if value else "off" if value is False else "not as planned"


def secs(start: datetime, end: datetime | None) -> str:
    return f"{(end - start).total_seconds():.2f}s" if end is not None else "n/a"


def freeze_text(freeze: FreezeInput) -> str:
    budget = (f"{freeze.budget_remaining:.1f}% of the error budget left"
              if freeze.budget_remaining is not None else "budget unknown")
    return f"SLOPolicy {freeze.policy} is frozen ({freeze.reason}: {budget})" + (
        f"; {freeze.message}" if freeze.message else "")


def freeze_info(freeze: FreezeInput, previous: FreezeInfo | None, now: datetime) -> FreezeInfo:
    return FreezeInfo(
        policy=freeze.policy, reason=freeze.reason, message=freeze.message,
        budget_remaining=freeze.budget_remaining,
        since=(previous.since if previous is not None else None) or freeze.since or now,
    )


def stuck_text(stuck: list[GateStatus], timeout: str) -> str:
    return "; ".join(f"{g.name} inconclusive for {timeout} or more ({g.reason})" for g in stuck)
