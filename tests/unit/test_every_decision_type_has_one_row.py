"""Decision types and their announcement: one enum, one table (controller/api/decisions.py),
read by the engine and the notifier alike."""

from __future__ import annotations

from controller.adapters.notify import routing
from controller.adapters.notify.subject import Kind
from controller.api.decisions import (
    DECISIONS,
    DecisionType,
    IncidentAction,
    Source,
    decision_info,
)
from controller.api.notifications import OutgoingMessage, Severity
from tests.harness import builders as b


def test_every_decision_type_has_a_row() -> None:
    missing = [t.name for t in DecisionType if t not in DECISIONS]
    assert not missing, f"DecisionType members without a row in DECISIONS: {missing}"
    for t, info in DECISIONS.items():
        assert info.title and info.title[0].islower(), f"{t}: a title reads after 'ns/name: '"
        assert decision_info(str(t)) is info


def test_an_unknown_type_from_the_wire_has_no_row_and_is_other_in_metrics() -> None:
    assert decision_info("SomethingNewer") is None
    entry = OutgoingMessage(key="1.1", type="SomethingNewer", at=b.T0, title="x")
    assert routing.metric_type(entry) == "Other"
    assert not routing.is_alarming(entry) and not routing.wants_email(entry)
    assert routing.incident_action(Kind.ROLLOUT_PLAN, entry) is None


def test_the_table_routes_as_the_notifier_did() -> None:
    """The sets the notifier and the engine each kept before the table, pinned."""
    alarms = {"RollbackStarted", "RolledBack", "Failed", "FreezeStarted", "Invalid"}
    assert alarms == routing.ALARM_TYPES
    emails = {"RollbackStarted", "RolledBack", "Failed", "FreezeStarted", "FreezeLifted"}
    assert emails == routing.EMAIL_TYPES
    assert {"FreezeStarted"} == routing.POLICY_THREAD_STARTERS
    plan = {t for t, d in DECISIONS.items() if d.source is Source.PLAN and t != "Invalid"}
    assert {t for t in plan if DECISIONS[t].severity is Severity.CRITICAL} == {
        "RollbackStarted", "RolledBack", "Failed"}
    assert {t for t in plan if DECISIONS[t].severity is Severity.WARNING} == {
        "Holding", "Frozen", "DriftCorrected", "Paused", "Superseded", "PromoteRefused"}


def test_incidents_trigger_and_resolve_per_kind_and_never_for_a_drill() -> None:
    def action(kind: Kind, type_: DecisionType, drill: bool = False) -> IncidentAction | None:
        entry = OutgoingMessage(key="1.1", type=type_, at=b.T0, title="x", drill=drill)
        return routing.incident_action(kind, entry)

    plan, policy = Kind.ROLLOUT_PLAN, Kind.SLO_POLICY
    assert action(plan, DecisionType.ROLLBACK_STARTED) is IncidentAction.TRIGGER
    assert action(plan, DecisionType.FAILED) is IncidentAction.TRIGGER
    assert action(plan, DecisionType.SUCCEEDED) is IncidentAction.RESOLVE
    assert action(plan, DecisionType.RUN_STARTED) is IncidentAction.RESOLVE
    assert action(plan, DecisionType.ROLLBACK_STARTED, drill=True) is None
    assert action(plan, DecisionType.FREEZE_STARTED) is None  # a policy's, not a plan's
    assert action(policy, DecisionType.FREEZE_STARTED) is IncidentAction.TRIGGER
    assert action(policy, DecisionType.FREEZE_LIFTED) is IncidentAction.RESOLVE
    assert action(policy, DecisionType.ROLLBACK_STARTED) is None
