"""Table tests of the engine: observation -> decision, one transition per row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.api.plan import (
    DrillRequest,
    GateStatus,
    Phase,
    PromoteRequest,
    Request,
    Requests,
    RolloutPlan,
    RolloutPlanStatus,
    Verdict,
)
from controller.api.policy import InFlight
from controller.engine.decide import decide, gates_due, steps_hash
from controller.engine.measurements import MeasurementStatus
from controller.engine.observation import ActionType, FreezeInput
from tests.harness import builders as b


def running(
    p: RolloutPlan, step: int = 0, started: float = 0.0, **extra: object
) -> RolloutPlanStatus:
    """The status of a run sitting at ``step`` since ``started`` seconds after T0."""
    return RolloutPlanStatus(
        phase=Phase.PROGRESSING, run=1, revision="rev-new", steps_hash=steps_hash(p.spec.steps),
        current_step=step, canary_weight=p.spec.steps[step].weight, run_started_at=b.T0,
        step_started_at=b.at(started), **extra,
    )


def with_requests(p: RolloutPlan, **requests: object) -> RolloutPlan:
    spec = p.spec.model_copy(update={"requests": Requests(**requests)})
    return p.model_copy(update={"spec": spec})


def weights(decision: object) -> list[int | None]:
    return [a.weight for a in decision.actions if a.type == ActionType.SET_WEIGHT]  # type: ignore[attr-defined]


# -- starting a run ------------------------------------------------------------------------


def test_new_canary_revision_starts_a_run_and_waits_for_the_canary() -> None:
    p = b.plan()
    d = decide(b.observation(p, b.T0, canary=b.workload("rev-new", replicas=0)))
    assert d.status.phase == Phase.PROGRESSING
    assert d.status.reason == "WaitingForCanary"
    assert d.status.run == 1 and d.status.revision == "rev-new"
    assert [a.type for a in d.actions] == [ActionType.SCALE_CANARY]
    assert d.actions[0].replicas == 2  # the stable's replicas by default
    assert d.status.canary_weight == 0


def test_ready_canary_gets_the_first_step_weight() -> None:
    p = b.plan()
    d = decide(b.observation(p, b.T0))
    assert weights(d) == [10]
    assert d.status.current_step == 0 and d.status.step_started_at == b.T0
    assert [r.type for r in d.status.decisions] == ["RunStarted", "StepAdvanced"]


def test_canary_equal_to_stable_is_nothing_to_roll_out() -> None:
    p = b.plan()
    d = decide(b.observation(p, b.T0, canary=b.workload("rev-stable")))
    assert d.status.phase == Phase.PENDING and d.status.reason == "NoNewRevision"
    assert d.actions == ()


def test_missing_canary_deployment_is_reported_not_crashed() -> None:
    from controller.engine.observation import MISSING

    d = decide(b.observation(b.plan(), b.T0, canary=MISSING))
    assert d.status.phase == Phase.PENDING and d.status.reason == "CanaryNotFound"
    assert "checkout-canary" in d.status.message


def test_no_free_slot_keeps_the_run_pending_with_a_reason() -> None:
    d = decide(b.observation(b.plan(), b.T0, slot_available=False))
    assert d.status.phase == Phase.PENDING and d.status.reason == "WaitingForSlot"
    assert d.actions == ()


# -- gates and steps -----------------------------------------------------------------------


def test_step_advances_only_after_hold_with_every_gate_passing() -> None:
    p = b.plan()
    st = running(p, 0, started=0)
    ok = (b.gate_measurement(canary=b.ratio(0.0)),)
    early = decide(b.observation(p, b.at(30), status=st, router_weight=10, measurements=ok))
    assert early.status.current_step == 0 and weights(early) == []
    on_time = decide(b.observation(p, b.at(60), status=st, router_weight=10, measurements=ok))
    assert on_time.status.current_step == 1 and weights(on_time) == [25]


def test_hold_elapsed_without_fresh_measurement_does_not_advance() -> None:
    p = b.plan()
    st = running(p, 0, started=0)
    d = decide(b.observation(p, b.at(61), status=st, router_weight=10, measurements=None))
    assert d.status.current_step == 0


@pytest.mark.parametrize(
    ("measurement", "reason"),
    [
        (b.missing(MeasurementStatus.ERROR, "connection refused"), "PrometheusError"),
        (b.missing(MeasurementStatus.NO_DATA), "NoData"),
        (b.missing(MeasurementStatus.AMBIGUOUS), "AmbiguousResult"),
        (b.missing(MeasurementStatus.STALE), "Stale"),
        (b.ratio(0.0, samples=20), "TooFewSamples"),
    ],
)
def test_inconclusive_never_advances_and_holds_with_the_reason(measurement, reason) -> None:  # type: ignore[no-untyped-def]
    p = b.plan()
    st = running(p, 0, started=0)
    d = decide(b.observation(p, b.at(61), status=st, router_weight=10,
                             measurements=(b.gate_measurement(canary=measurement),)))
    assert d.status.current_step == 0
    assert d.status.phase == Phase.HOLDING
    assert d.status.reason == reason
    assert d.status.gates[0].verdict == Verdict.INCONCLUSIVE


def test_a_failing_gate_records_failing_since_and_does_not_advance() -> None:
    p = b.plan()
    st = running(p, 0, started=0)
    d = decide(b.observation(p, b.at(61), status=st, router_weight=10,
                             measurements=(b.gate_measurement(canary=b.ratio(0.01)),)))
    gate = d.status.gates[0]
    assert gate.verdict == Verdict.FAIL and gate.reason == "ObjectiveMissed"
    assert gate.failing_since == b.at(61)
    assert d.status.phase == Phase.PROGRESSING and d.status.reason == "GateFailing"
    assert d.status.current_step == 0
    # requeue no later than failingSince + rollbackAfter (30 s)
    assert d.requeue_after is not None and d.requeue_after <= 30


def test_sustained_failure_rolls_back_after_rollback_after() -> None:
    p = b.plan()
    bad = (b.gate_measurement(canary=b.ratio(0.01)),)
    st = running(p, 1, started=0)
    first = decide(b.observation(p, b.at(10), status=st, router_weight=25, measurements=bad))
    assert first.status.phase != Phase.ROLLING_BACK
    later = decide(b.observation(p, b.at(40), status=first.status, router_weight=25,
                                 measurements=bad))
    assert later.status.phase == Phase.ROLLING_BACK
    assert later.status.reason == "SustainedViolation"
    assert weights(later) == [0]
    assert later.status.canary_weight == 0
    assert any(a.type == ActionType.SCALE_CANARY and a.replicas == 0 for a in later.actions)
    critical = [m for m in later.status.notifications.outbox if m.type == "RollbackStarted"]
    assert critical and critical[0].evidence[0]["name"] == "api_availability"


def test_a_blip_that_clears_resets_failing_since() -> None:
    p = b.plan()
    st = running(p, 1, started=0)
    bad = (b.gate_measurement(canary=b.ratio(0.01)),)
    good = (b.gate_measurement(canary=b.ratio(0.0)),)
    s1 = decide(b.observation(p, b.at(10), status=st, router_weight=25, measurements=bad)).status
    s2 = decide(b.observation(p, b.at(20), status=s1, router_weight=25, measurements=good)).status
    assert s2.gates[0].failing_since is None
    s3 = decide(b.observation(p, b.at(45), status=s2, router_weight=25, measurements=bad))
    assert s3.status.phase != Phase.ROLLING_BACK


def test_fast_burn_rolls_back_at_once() -> None:
    p = b.plan()
    st = running(p, 0, started=0)
    m = (b.gate_measurement(canary=b.ratio(1.0), burn=1.0),)
    d = decide(b.observation(p, b.at(10), status=st, router_weight=10, measurements=m))
    assert d.status.phase == Phase.ROLLING_BACK and d.status.reason == "FastBurn"
    assert weights(d) == [0]
    assert "14.4x" in d.status.message


def test_rolling_back_completes_once_route_and_canary_are_down() -> None:
    p = b.plan()
    st = running(p, 1, started=0).model_copy(update={
        "phase": Phase.ROLLING_BACK, "rollback_reason": "FastBurn", "canary_weight": 0})
    d = decide(b.observation(p, b.at(11), status=st, router_weight=0,
                             canary=b.workload("rev-new", replicas=0)))
    assert d.status.phase == Phase.ROLLED_BACK
    assert d.status.history[-1].outcome == "RolledBack"
    assert d.status.history[-1].reason == "FastBurn"
    degraded = next(c for c in d.status.conditions if c.type == "Degraded")
    assert degraded.status == "True" and degraded.reason == "FastBurn"


def test_no_data_timeout_hold_default_keeps_holding() -> None:
    p = b.plan()
    nodata = (b.gate_measurement(canary=b.missing()),)
    st = running(p, 0, started=0)
    s = decide(b.observation(p, b.at(10), status=st, router_weight=10, measurements=nodata)).status
    d = decide(b.observation(p, b.at(200), status=s, router_weight=10, measurements=nodata))
    assert d.status.phase == Phase.HOLDING and weights(d) == []


def test_no_data_timeout_rollback_policy_rolls_back() -> None:
    p = b.plan(analysis={"interval": "10s", "window": "1m", "rollbackAfter": "30s",
                         "minSamples": 100, "noDataTimeout": "2m", "onNoData": "rollback"})
    nodata = (b.gate_measurement(canary=b.missing()),)
    st = running(p, 0, started=0)
    s = decide(b.observation(p, b.at(10), status=st, router_weight=10, measurements=nodata)).status
    d = decide(b.observation(p, b.at(131), status=s, router_weight=10, measurements=nodata))
    assert d.status.phase == Phase.ROLLING_BACK and d.status.reason == "NoDataTimeout"


def test_no_data_timeout_pause_policy_pauses_until_resumed() -> None:
    p = b.plan(analysis={"interval": "10s", "window": "1m", "rollbackAfter": "30s",
                         "minSamples": 100, "noDataTimeout": "2m", "onNoData": "pause"})
    nodata = (b.gate_measurement(canary=b.missing()),)
    good = (b.gate_measurement(canary=b.ratio(0.0)),)
    st = running(p, 0, started=0)
    s = decide(b.observation(p, b.at(10), status=st, router_weight=10, measurements=nodata)).status
    paused = decide(b.observation(p, b.at(131), status=s, router_weight=10, measurements=nodata))
    assert paused.status.phase == Phase.PAUSED and paused.status.reason == "NoDataTimeout"
    still = decide(b.observation(p, b.at(200), status=paused.status, router_weight=10,
                                 measurements=good))
    assert still.status.phase == Phase.PAUSED and still.status.current_step == 0
    resumed_plan = with_requests(p, resume=Request(id="r1"))
    resumed = decide(b.observation(resumed_plan, b.at(210), status=still.status,
                                   router_weight=10, measurements=good))
    assert resumed.status.current_step == 1
    assert "Resumed" in [r.type for r in resumed.status.decisions]


def test_metrics_outage_through_the_default_policy_never_rolls_back() -> None:
    p = b.plan()
    err = (b.gate_measurement(canary=b.missing(MeasurementStatus.ERROR, "refused")),)
    s = running(p, 1, started=0)
    for t in range(10, 1200, 10):
        d = decide(b.observation(p, b.at(t), status=s, router_weight=25, measurements=err))
        s = d.status
        assert weights(d) == [] and s.phase == Phase.HOLDING
    assert s.reason == "PrometheusError"


# -- promotion -----------------------------------------------------------------------------


def test_last_step_passing_promotes_copy_to_stable() -> None:
    p = b.plan()
    st = running(p, 3, started=0)
    ok = (b.gate_measurement(),)
    d = decide(b.observation(p, b.at(60), status=st, router_weight=100, measurements=ok))
    assert d.status.phase == Phase.PROMOTING
    assert [a.type for a in d.actions] == [ActionType.PROMOTE_STABLE]


def test_promotion_waits_for_stable_then_routes_and_scales_down() -> None:
    p = b.plan()
    st = running(p, 3, started=0).model_copy(update={"phase": Phase.PROMOTING})
    waiting = decide(b.observation(p, b.at(61), status=st, router_weight=100,
                                   stable=b.workload("rev-new", ready=False)))
    assert waiting.status.reason == "WaitingForStable" and waiting.actions == ()
    routing = decide(b.observation(p, b.at(62), status=waiting.status, router_weight=100,
                                   stable=b.workload("rev-new")))
    assert [a.type for a in routing.actions] == [ActionType.SET_WEIGHT, ActionType.SCALE_CANARY]
    done = decide(b.observation(p, b.at(63), status=routing.status, router_weight=0,
                                stable=b.workload("rev-new"),
                                canary=b.workload("rev-new", replicas=0)))
    assert done.status.phase == Phase.SUCCEEDED
    assert done.status.history[-1].outcome == "Succeeded"


def test_on_success_none_leaves_the_canary_at_100() -> None:
    p = b.plan(onSuccess={"promote": "none"})
    st = running(p, 3, started=0)
    d = decide(b.observation(p, b.at(60), status=st, router_weight=100,
                             measurements=(b.gate_measurement(),)))
    assert d.status.phase == Phase.SUCCEEDED and d.status.canary_weight == 100
    assert d.actions == ()


# -- operator controls ---------------------------------------------------------------------


def test_manual_mode_waits_for_promote_then_advances_once() -> None:
    p = b.plan(promotion={"mode": "manual"})
    st = running(p, 0, started=0)
    ok = (b.gate_measurement(),)
    waiting = decide(b.observation(p, b.at(60), status=st, router_weight=10, measurements=ok))
    assert waiting.status.phase == Phase.PAUSED and waiting.status.reason == "AwaitingPromotion"
    promoted = with_requests(p, promote=PromoteRequest(id="p1"))
    d = decide(b.observation(promoted, b.at(70), status=waiting.status, router_weight=10,
                             measurements=ok))
    assert d.status.current_step == 1 and d.status.handled.promote == "p1"
    again = decide(b.observation(promoted, b.at(140), status=d.status, router_weight=25,
                                 measurements=ok))
    assert again.status.current_step == 1  # the same request id never promotes twice


def test_pause_holds_the_step_but_safety_still_rolls_back() -> None:
    p = b.plan(paused=True)
    st = running(p, 0, started=0)
    ok = (b.gate_measurement(),)
    d = decide(b.observation(p, b.at(120), status=st, router_weight=10, measurements=ok))
    assert d.status.phase == Phase.PAUSED and d.status.current_step == 0
    fast = (b.gate_measurement(canary=b.ratio(1.0), burn=1.0),)
    d2 = decide(b.observation(p, b.at(130), status=d.status, router_weight=10, measurements=fast))
    assert d2.status.phase == Phase.ROLLING_BACK


def test_abort_rolls_back_in_one_decision() -> None:
    p = with_requests(b.plan(), abort=Request(id="a1", by="alice", reason="bad deploy"))
    st = running(p, 2, started=0)
    d = decide(b.observation(p, b.at(5), status=st, router_weight=50))
    assert d.status.phase == Phase.ROLLING_BACK and d.status.reason == "Aborted"
    assert weights(d) == [0] and "alice" in d.status.message


def test_retry_after_rollback_starts_a_new_run_of_the_same_revision() -> None:
    p = with_requests(b.plan(), retry=Request(id="r1"))
    st = running(p, 1, started=0).model_copy(update={
        "phase": Phase.ROLLED_BACK, "canary_weight": 0})
    d = decide(b.observation(p, b.at(100), status=st, router_weight=0))
    assert d.status.run == 2 and d.status.phase == Phase.PROGRESSING
    assert d.status.revision == "rev-new" and d.status.handled.retry == "r1"


def test_rolled_back_revision_is_not_retried_by_itself() -> None:
    p = b.plan()
    st = running(p, 1, started=0).model_copy(update={
        "phase": Phase.ROLLED_BACK, "canary_weight": 0})
    d = decide(b.observation(p, b.at(100), status=st, router_weight=0))
    assert d.status.phase == Phase.ROLLED_BACK and d.actions == ()


def test_promote_full_skips_remaining_steps_and_is_recorded() -> None:
    p = with_requests(b.plan(), promote=PromoteRequest(id="f1", full=True, by="bob"))
    st = running(p, 0, started=0)
    d = decide(b.observation(p, b.at(5), status=st, router_weight=10,
                             measurements=(b.gate_measurement(),)))
    assert d.status.phase == Phase.PROMOTING and d.status.promoted_full
    assert "PromotedFull" in [r.type for r in d.status.decisions]


def test_promote_full_is_refused_while_a_gate_fails() -> None:
    p = with_requests(b.plan(), promote=PromoteRequest(id="f1", full=True))
    st = running(p, 0, started=0)
    d = decide(b.observation(p, b.at(15), status=st, router_weight=10,
                             measurements=(b.gate_measurement(canary=b.ratio(0.05)),)))
    assert d.status.phase != Phase.PROMOTING
    assert "PromoteRefused" in [r.type for r in d.status.decisions]


# -- restarts ------------------------------------------------------------------------------


def test_changed_steps_restart_at_step_zero() -> None:
    p = b.plan()
    st = running(p, 2, started=0).model_copy(update={"steps_hash": "something-else"})
    d = decide(b.observation(p, b.at(5), status=st, router_weight=50))
    assert d.status.current_step == 0 and weights(d) == [10]


def test_new_revision_mid_run_supersedes_and_restarts() -> None:
    p = b.plan()
    st = running(p, 2, started=0)
    d = decide(b.observation(p, b.at(5), status=st, router_weight=50,
                             canary=b.workload("rev-newer", ready=False)))
    assert d.status.history[-1].outcome == "Superseded"
    assert d.status.run == 2 and d.status.revision == "rev-newer"
    assert weights(d) == [0]  # unverified pods get no traffic until the canary is ready


# -- drift ---------------------------------------------------------------------------------


def test_hand_edited_weight_is_restored_with_an_event() -> None:
    p = b.plan()
    st = running(p, 1, started=0)
    d = decide(b.observation(p, b.at(5), status=st, router_weight=80))
    assert weights(d) == [25]
    assert d.status.decisions[-1].type == "DriftCorrected"


# -- freeze --------------------------------------------------------------------------------


FROZEN = FreezeInput(policy="platform", frozen=True, reason="BudgetBelowThreshold",
                     budget_remaining=8.0)


def test_frozen_policy_blocks_a_new_run_and_shows_the_budget() -> None:
    d = decide(b.observation(b.plan(), b.T0, freeze=FROZEN))
    assert d.status.phase == Phase.FROZEN and d.actions == ()
    assert "8.0%" in d.status.message
    frozen = next(c for c in d.status.conditions if c.type == "Frozen")
    assert frozen.status == "True"


def test_unknown_budget_blocks_new_runs() -> None:
    unknown = FreezeInput(policy="platform", frozen=True, reason="BudgetUnknown")
    d = decide(b.observation(b.plan(), b.T0, freeze=unknown))
    assert d.status.phase == Phase.FROZEN and d.status.reason == "BudgetUnknown"


def test_override_lets_a_run_start_during_a_freeze() -> None:
    overridden = FreezeInput(policy="platform", frozen=True, reason="BudgetBelowThreshold",
                             budget_remaining=8.0, overridden=True)
    d = decide(b.observation(b.plan(), b.T0, freeze=overridden))
    assert d.status.phase == Phase.PROGRESSING and weights(d) == [10]


def test_freeze_mid_step_holds_in_flight_then_resumes() -> None:
    p = b.plan()
    st = running(p, 1, started=0)
    ok = (b.gate_measurement(),)
    held = decide(b.observation(p, b.at(70), status=st, router_weight=25, measurements=ok,
                                freeze=FROZEN))
    assert held.status.phase == Phase.FROZEN and held.status.current_step == 1
    assert weights(held) == []
    lifted = decide(b.observation(p, b.at(80), status=held.status, router_weight=25,
                                  measurements=ok))
    assert lifted.status.current_step == 2
    assert "Unfrozen" in [r.type for r in lifted.status.decisions]


def test_freeze_with_in_flight_rollback_rolls_back() -> None:
    p = b.plan()
    st = running(p, 1, started=0)
    freeze = FreezeInput(policy="platform", frozen=True, reason="BudgetBelowThreshold",
                         budget_remaining=5.0, in_flight=InFlight.ROLLBACK)
    d = decide(b.observation(p, b.at(10), status=st, router_weight=25, freeze=freeze))
    assert d.status.phase == Phase.ROLLING_BACK and d.status.reason == "ErrorBudgetFrozen"


# -- drills --------------------------------------------------------------------------------


def test_drill_mid_run_rolls_back_for_real_then_restores() -> None:
    p = with_requests(b.plan(), drill=DrillRequest(id="d1", restore=True, at=b.at(4)))
    st = running(p, 1, started=0)
    d = decide(b.observation(p, b.at(5), status=st, router_weight=25))
    assert d.status.phase == Phase.ROLLING_BACK and weights(d) == [0]
    report = d.status.drills[-1]
    assert report.pre_drill_step == 1 and report.pre_drill_weight == 25
    assert report.requested_at == b.at(4) and report.rollback_started_at == b.at(5)
    assert d.status.notifications.outbox[-1].drill


def test_synthetic_drill_on_an_idle_plan_shifts_then_rolls_back() -> None:
    p = with_requests(b.plan(), drill=DrillRequest(id="d2"))
    idle = RolloutPlanStatus(phase=Phase.SUCCEEDED, run=1, revision="rev-new")
    d = decide(b.observation(p, b.T0, status=idle, canary=b.workload("rev-new", replicas=1)))
    assert d.status.drills[-1].synthetic and weights(d) == [10]


def test_gates_due_at_interval_and_at_hold_end() -> None:
    p = b.plan()
    st = running(p, 0, started=0, last_analysis_at=b.at(50))
    assert not gates_due(b.observation(p, b.at(55), status=st, router_weight=10))
    # hold (1m) ended after the last analysis
    assert gates_due(b.observation(p, b.at(60), status=st, router_weight=10))
    st2 = st.model_copy(update={"last_analysis_at": b.at(61)})
    assert not gates_due(b.observation(p, b.at(65), status=st2, router_weight=10))
    assert gates_due(b.observation(p, b.at(71), status=st2, router_weight=10))
    # the route disagrees with the plan: measure now, whatever the interval
    assert gates_due(b.observation(p, b.at(65), status=st2, router_weight=25))


def test_an_advance_lost_in_a_crash_is_redone_not_reverted() -> None:
    p = b.plan()
    # The crashed pass set 25 % on the route but its status write never happened.
    st = running(p, 0, started=0, last_analysis_at=b.at(59))
    obs = b.observation(p, b.at(61), status=st, router_weight=25,
                        measurements=(b.gate_measurement(),))
    d = decide(obs)
    assert d.status.current_step == 1 and weights(d) == [25]
    assert "DriftCorrected" not in [r.type for r in d.status.decisions]


def test_a_rollback_lost_in_a_crash_is_finished_not_undone() -> None:
    p = b.plan()
    failing = running(p, 1, started=0).model_copy(update={"gates": [
        GateStatus(name="api_availability", kind="slo", verdict=Verdict.FAIL,
                   reason="ObjectiveMissed", failing_since=b.at(5))]})
    # Unrouted, the canary has no traffic: no data, ever. Waiting would wait forever.
    nodata = (b.gate_measurement(canary=b.missing(MeasurementStatus.NO_DATA)),)
    d = decide(b.observation(p, b.at(600), status=failing, router_weight=0,
                             measurements=nodata))
    assert d.status.phase == Phase.ROLLING_BACK and d.status.reason == "RouteAtZero"
    assert weights(d) == [0]


def test_less_traffic_than_planned_with_a_failing_gate_holds_without_restoring() -> None:
    p = b.plan()
    failing = running(p, 1, started=0).model_copy(update={"gates": [
        GateStatus(name="api_availability", kind="slo", verdict=Verdict.FAIL,
                   reason="ObjectiveMissed", failing_since=b.at(5))]})
    outage = (b.gate_measurement(canary=b.missing(MeasurementStatus.ERROR, "down")),)
    d = decide(b.observation(p, b.at(20), status=failing, router_weight=10,
                             measurements=outage))
    assert weights(d) == []  # holds at 10 %, never back up to 25 % on no evidence
    assert d.status.phase == Phase.HOLDING and d.status.reason == "WeightBelowPlan"
    recovered = (b.gate_measurement(canary=b.ratio(0.0)),)
    d2 = decide(b.observation(p, b.at(30), status=d.status, router_weight=10,
                              measurements=recovered))
    assert weights(d2) == [25]


def test_a_route_set_to_zero_by_hand_on_a_healthy_canary_is_restored() -> None:
    p = b.plan()
    healthy = running(p, 1, started=0).model_copy(update={"gates": [
        GateStatus(name="api_availability", kind="slo", verdict=Verdict.PASS,
                   reason="ObjectiveMet")]})
    nodata = (b.gate_measurement(canary=b.missing(MeasurementStatus.NO_DATA)),)
    d = decide(b.observation(p, b.at(20), status=healthy, router_weight=0,
                             measurements=nodata))
    assert weights(d) == [25]
    assert d.status.decisions[-1].type == "DriftCorrected"


def test_requeue_is_the_earliest_of_analysis_hold_and_rollback_deadline() -> None:
    p = b.plan()
    st = running(p, 0, started=0)
    d = decide(b.observation(p, b.at(55), status=st, router_weight=10,
                             measurements=(b.gate_measurement(),)))
    assert d.requeue_after == pytest.approx(5.0)  # hold ends at 60 s, before the next analysis
    d2 = decide(b.observation(p, b.at(10) + timedelta(seconds=0), status=st, router_weight=10,
                              measurements=(b.gate_measurement(),)))
    assert d2.requeue_after == pytest.approx(10.0)


def test_too_few_samples_early_in_a_step_is_progress_not_holding() -> None:
    p = b.plan()
    st = running(p, 0, started=0)
    few = (b.gate_measurement(canary=b.ratio(0.0, samples=20)),)
    early = decide(b.observation(p, b.at(10), status=st, router_weight=10, measurements=few))
    assert early.status.phase == Phase.PROGRESSING
    assert early.status.gates[0].reason == "TooFewSamples"
    assert "Holding" not in [r.type for r in early.status.decisions]
    broken = (b.gate_measurement(canary=b.missing(MeasurementStatus.ERROR, "refused")),)
    outage = decide(b.observation(p, b.at(10), status=st, router_weight=10, measurements=broken))
    assert outage.status.phase == Phase.HOLDING and outage.status.reason == "PrometheusError"


def test_canary_vs_stable_has_no_baseline_at_100_percent() -> None:
    p = b.plan(gates=[{"slo": "api_availability"},
                      {"canaryVsStable": {"slo": "api_availability", "maxRatio": 2}}])
    st = running(p, 3, started=0)
    no_stable = (b.gate_measurement(canary=b.ratio(0.0)),
                 b.gate_measurement("canaryVsStable:api_availability", canary=b.ratio(0.0),
                                    stable=b.missing()))
    d = decide(b.observation(p, b.at(60), status=st, router_weight=100,
                             measurements=no_stable))
    versus = d.status.gates[1]
    assert versus.verdict == Verdict.PASS and versus.reason == "NotApplicable"
    assert d.status.phase == Phase.PROMOTING
    # below 100 % the same missing baseline holds the run
    st25 = running(p, 1, started=0)
    d25 = decide(b.observation(p, b.at(60), status=st25, router_weight=25,
                               measurements=no_stable))
    assert d25.status.gates[1].verdict == Verdict.INCONCLUSIVE
    assert d25.status.current_step == 1


def test_a_canary_scaled_down_mid_step_is_scaled_back() -> None:
    p = b.plan()
    st = running(p, 1, started=0)
    d = decide(b.observation(p, b.at(5), status=st, router_weight=25,
                             canary=b.workload("rev-new", replicas=0)))
    assert [(a.type, a.replicas) for a in d.actions] == [(ActionType.SCALE_CANARY, 2)]


def test_a_revision_superseded_into_a_freeze_waits_with_no_pods() -> None:
    p = b.plan()
    st = running(p, 2, started=0)
    d = decide(b.observation(p, b.at(5), status=st, router_weight=50,
                             canary=b.workload("rev-newer"), freeze=FROZEN))
    assert d.status.phase == Phase.FROZEN and d.status.current_step is None
    assert [(a.type, a.weight, a.replicas) for a in d.actions] == [
        (ActionType.SET_WEIGHT, 0, None), (ActionType.SCALE_CANARY, None, 0)]


def test_a_shift_whose_status_write_was_lost_is_judged_before_the_step_restarts() -> None:
    """The route already carries step 1 while the status still waits for the canary (a
    crash between the two writes): what the canary served since is judged in this pass,
    over the whole window, before the step's hold starts again."""
    p = b.plan(analysis={"interval": "10s", "window": "30s", "rollbackAfter": "0s"})
    first = p.spec.steps[0].weight
    st = running(p, 0).model_copy(update={"reason": "WaitingForCanary", "canary_weight": 0,
                                         "step_started_at": None})
    assert not gates_due(b.observation(p, b.at(11), status=st, router_weight=0))
    assert gates_due(b.observation(p, b.at(11), status=st, router_weight=first))
    gate = p.spec.gates[0].name
    bad = (b.gate_measurement(gate, b.ratio(0.5), stable=b.ratio(0.0), window=30),)
    d = decide(b.observation(p, b.at(11), status=st, router_weight=first, measurements=bad))
    assert d.status.phase == Phase.ROLLING_BACK and weights(d) == [0]
    assert d.status.gates[0].verdict == Verdict.FAIL
    good = (b.gate_measurement(gate, b.ratio(0.0), stable=b.ratio(0.0), window=30),)
    d = decide(b.observation(p, b.at(11), status=st, router_weight=first, measurements=good))
    assert d.status.phase == Phase.PROGRESSING and d.status.step_started_at == b.at(11)
    assert d.status.gates[0].verdict == Verdict.PASS
    assert d.status.last_analysis_at == b.at(11)
