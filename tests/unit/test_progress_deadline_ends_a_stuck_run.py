"""analysis.progressDeadline: a canary that never becomes ready ends the run (RolledBack,
ProgressDeadlineExceeded, traffic on stable, canary scaled down, the pods' reason in the
alarm); a stable that is not ready during promotion ends it Failed, the canary keeping the
traffic. And an HPA's replicas are never written by the controller."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.api.notifications import Severity
from controller.api.plan import Phase, PromotionStage, RolloutPlanStatus, RunOutcome
from controller.api.validation import check_plan
from controller.engine.decide import decide, steps_hash
from controller.engine.observation import ActionType, WorkloadState
from tests.harness import builders as b

PULL = "Back-off pulling image \"registry.local/checkout:v9\""


def stuck_canary(reason: str = "ImagePullBackOff") -> WorkloadState:
    return replace(b.workload("rev-new", ready=False), not_ready_reason=reason,
                   not_ready_message=PULL)


def waiting(p: object, since: float) -> RolloutPlanStatus:
    return RolloutPlanStatus(
        phase=Phase.PROGRESSING, reason="WaitingForCanary", run=1, revision="rev-new",
        steps_hash=steps_hash(p.spec.steps), current_step=0,  # type: ignore[attr-defined]
        canary_weight=0, run_started_at=b.at(since), waiting_since=b.at(since))


def test_default_is_ten_minutes_and_too_short_a_deadline_is_refused_naming_the_field() -> None:
    assert b.plan().spec.analysis.progress_deadline.seconds == 600
    doc = b.plan_doc(analysis={"interval": "10s", "progressDeadline": "2s"})
    _, problems = check_plan(doc)
    assert [p.path for p in problems] == ["spec.analysis.progressDeadline"]
    assert "at least 10s" in problems[0].message


def test_the_wait_starts_the_clock_and_shows_the_pods_reason() -> None:
    p = b.plan()
    d = decide(b.observation(p, b.T0, canary=stuck_canary()))
    assert d.status.phase == Phase.PROGRESSING and d.status.reason == "WaitingForCanary"
    assert d.status.waiting_since == b.T0
    assert "ImagePullBackOff" in d.status.message


def test_within_the_deadline_the_run_keeps_waiting() -> None:
    p = b.plan()
    d = decide(b.observation(p, b.at(599), status=waiting(p, 0), canary=stuck_canary()))
    assert d.status.phase == Phase.PROGRESSING and d.status.waiting_since == b.T0
    assert d.actions == ()


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "CrashLoopBackOff"])
def test_past_the_deadline_the_run_rolls_back_with_the_reason(reason: str) -> None:
    p = b.plan()
    d = decide(b.observation(p, b.at(600), status=waiting(p, 0), canary=stuck_canary(reason)))
    assert d.status.phase == Phase.ROLLING_BACK
    assert d.status.reason == "ProgressDeadlineExceeded"
    assert d.status.canary_weight == 0
    assert [(a.type, a.weight, a.replicas) for a in d.actions] == [
        (ActionType.SET_WEIGHT, 0, None), (ActionType.SCALE_CANARY, None, 0)]
    alarm = d.status.notifications.outbox[-1]
    assert alarm.type == "RollbackStarted" and alarm.severity == Severity.CRITICAL
    assert reason in alarm.text and "progressDeadline" in alarm.text
    # the next pass, with the route at 0 and the canary at 0, ends the run RolledBack
    done = decide(b.observation(p, b.at(601), status=d.status, router_weight=0,
                                canary=replace(stuck_canary(reason), replicas=0)))
    assert done.status.phase == Phase.ROLLED_BACK
    assert done.status.reason == "ProgressDeadlineExceeded"
    assert done.status.history[-1].outcome == RunOutcome.ROLLED_BACK
    assert done.status.waiting_since is None
    assert reason in done.status.notifications.outbox[-1].text


def test_a_ready_canary_clears_the_clock() -> None:
    p = b.plan()
    d = decide(b.observation(p, b.at(300), status=waiting(p, 0)))
    assert d.status.current_step == 0 and d.status.canary_weight == 10
    assert d.status.waiting_since is None


def promoting(p: object, since: float | None) -> RolloutPlanStatus:
    return RolloutPlanStatus(
        phase=Phase.PROMOTING, reason="WaitingForStable", run=1, revision="rev-new",
        steps_hash=steps_hash(p.spec.steps), current_step=3,  # type: ignore[attr-defined]
        canary_weight=100, run_started_at=b.T0,
        promotion_stage=PromotionStage.WAITING_FOR_STABLE,
        waiting_since=b.at(since) if since is not None else None)


def test_a_stable_not_ready_during_promotion_fails_the_run_and_keeps_the_canary_serving(
) -> None:
    p = b.plan()
    stable = replace(b.workload("rev-new", ready=False), not_ready_reason="CrashLoopBackOff",
                     not_ready_message="back-off restarting failed container")
    first = decide(b.observation(p, b.at(10), status=promoting(p, None), router_weight=100,
                                 stable=stable))
    assert first.status.phase == Phase.PROMOTING and first.status.waiting_since == b.at(10)
    assert "CrashLoopBackOff" in first.status.message
    d = decide(b.observation(p, b.at(610), status=first.status, router_weight=100,
                             stable=stable))
    assert d.status.phase == Phase.FAILED and d.status.reason == "ProgressDeadlineExceeded"
    assert d.actions == ()  # no write: the canary keeps the traffic it has
    assert d.status.canary_weight == 100
    assert d.status.history[-1].outcome == RunOutcome.FAILED
    alarm = d.status.notifications.outbox[-1]
    assert alarm.type == "Failed" and alarm.severity == Severity.CRITICAL
    assert "CrashLoopBackOff" in alarm.text
    degraded = next(c for c in d.status.conditions if c.type == "Degraded")
    assert degraded.status == "True" and degraded.reason == "ProgressDeadlineExceeded"
    # nothing restarts by itself: the same revision is no new run
    again = decide(b.observation(p, b.at(620), status=d.status, router_weight=100,
                                 stable=stable))
    assert again.status.phase == Phase.FAILED and again.actions == ()
    # the route is the operator's now: moving traffic back to stable by hand is kept
    by_hand = decide(b.observation(p, b.at(630), status=d.status, router_weight=0,
                                   stable=stable))
    assert by_hand.actions == () and by_hand.status.phase == Phase.FAILED


# -- autoscalers ----------------------------------------------------------------------------


def test_the_canary_follows_the_stables_current_replicas_without_an_hpa_on_it() -> None:
    p = b.plan()
    st = RolloutPlanStatus(
        phase=Phase.PROGRESSING, run=1, revision="rev-new", steps_hash=steps_hash(p.spec.steps),
        current_step=0, canary_weight=10, run_started_at=b.T0, step_started_at=b.T0)
    stable = replace(b.workload("rev-stable", replicas=5), autoscaled=True)
    d = decide(b.observation(p, b.at(5), status=st, router_weight=10, stable=stable,
                             canary=b.workload("rev-new", replicas=2)))
    assert [(a.type, a.replicas) for a in d.actions] == [(ActionType.SCALE_CANARY, 5)]


def test_an_hpa_on_the_canary_owns_its_replicas_once_it_runs() -> None:
    p = b.plan()
    st = RolloutPlanStatus(
        phase=Phase.PROGRESSING, run=1, revision="rev-new", steps_hash=steps_hash(p.spec.steps),
        current_step=0, canary_weight=10, run_started_at=b.T0, step_started_at=b.T0)
    canary = replace(b.workload("rev-new", replicas=3), autoscaled=True)
    d = decide(b.observation(p, b.at(5), status=st, router_weight=10,
                             stable=b.workload("rev-stable", replicas=5), canary=canary))
    assert d.actions == ()
    # from 0 (an HPA never scales up from 0) the controller starts it, sized from stable
    start = decide(b.observation(p, b.T0, stable=b.workload("rev-stable", replicas=5),
                                 canary=replace(b.workload("rev-new", replicas=0),
                                                autoscaled=True)))
    assert [(a.type, a.replicas) for a in start.actions] == [(ActionType.SCALE_CANARY, 5)]
