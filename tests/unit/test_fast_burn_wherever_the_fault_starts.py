"""The fast-burn rule does not depend on when in the step a fault starts.

A canary's traffic is modelled second by second (a rate and an error ratio over time); the
measurements the controller would get are computed from it exactly (bad / total over each
window), and the engine runs as the controller runs it: an analysis every
``analysis.interval`` and, between analyses, the fast path every 10 s handing a measurement
to a pass only when ``fast_path_wants`` says so. Time is a FakeClock; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from controller.api.plan import Phase, RolloutPlan, RolloutPlanStatus
from controller.api.policy import SLOPolicy
from controller.engine.decide import (
    decide,
    evaluation_window,
    fast_path_wants,
    gates_due,
    run_seconds,
    steps_hash,
)
from controller.engine.measurements import (
    NOT_MEASURED,
    BurnRateMeasurement,
    GateMeasurement,
    Measurement,
    MeasurementStatus,
)
from controller.engine.observation import ActionType, Observation, RouterObservation
from tests.harness import builders as b
from tests.harness.fakes import FakeClock

MIN = 60.0
STEP = 10 * MIN  # the run's second step (25 %) starts 10 minutes into the run
FAST = 10.0
RECENT = 30.0

ErrorRatio = Callable[[float], float]


def healthy(_: float) -> float:
    return 0.0002


def after(t0: float, bad: float) -> ErrorRatio:
    return lambda t: bad if t >= t0 else 0.0002


def between(t0: float, t1: float, bad: float) -> ErrorRatio:
    return lambda t: bad if t0 <= t < t1 else 0.0002


@dataclass
class Canary:
    """Requests per second and the share failing, second by second from the run's start."""

    errors: ErrorRatio = healthy
    rate: float = 20.0
    silent_from: float | None = None  # no samples at all from here (series gone)

    def window(self, t: float, seconds: float) -> Measurement:
        start = max(0.0, t - seconds)
        total = bad = 0.0
        s = start
        while s < t:
            if self.silent_from is None or s < self.silent_from:
                total += self.rate
                bad += self.rate * self.errors(s)
            s += 1.0
        if total <= 0:
            return Measurement(MeasurementStatus.NO_DATA, message="no traffic")
        return Measurement(MeasurementStatus.OK, value=bad / total, samples=total,
                           numerator=bad, denominator=total, query="q")


def plan(ceiling: str | None = None) -> RolloutPlan:
    analysis = {"interval": "60s", "window": "5m", "rollbackAfter": "5m", "minSamples": 100,
                "noDataTimeout": "15m"}
    if ceiling is not None:
        analysis["errorRatioCeiling"] = ceiling
    return b.plan(steps=[(10, "10m"), (25, "1h"), (50, "1h"), (100, "1h")],
                  analysis=analysis, notifications=False)


def regular(c: Canary, obs: Observation, t: float) -> tuple[GateMeasurement, ...]:
    st = obs.plan.status
    window = evaluation_window(st, 300, obs.now)
    run = run_seconds(st, obs.now)
    burns = (BurnRateMeasurement(0, c.window(t, min(3600, run)), c.window(t, min(300, run)),
                                 min(3600, run), min(300, run)),)
    return (GateMeasurement("api_availability", c.window(t, window), None, burns, window,
                            c.window(t, min(RECENT, run)), min(RECENT, run)),)


def fast(c: Canary, t: float) -> tuple[GateMeasurement, ...]:
    burns = (BurnRateMeasurement(0, NOT_MEASURED, c.window(t, 300), 0.0, 300),)
    return (GateMeasurement("api_availability", NOT_MEASURED, None, burns, 0.0,
                            c.window(t, RECENT), RECENT),)


@dataclass
class Run:
    rollback_at: float | None = None
    reason: str = ""
    message: str = ""
    fast_passes: int = 0
    passes: int = 0
    burning: list[float] = field(default_factory=list)


def replay(c: Canary, until: float, p: RolloutPlan | None = None, fast_path: bool = True,
           pol: SLOPolicy | None = None) -> Run:
    """The run from the second step's start to UNTIL (seconds after the run started)."""
    p = p or plan()
    pol = pol or b.policy()
    clock = FakeClock(b.at(STEP))
    status = RolloutPlanStatus(
        phase=Phase.PROGRESSING, run=1, revision="rev-new", steps_hash=steps_hash(p.spec.steps),
        current_step=1, canary_weight=25, run_started_at=b.T0, step_started_at=b.at(STEP))
    out = Run()
    next_regular = STEP
    t = STEP
    while t <= until:
        p = p.model_copy(update={"status": status})
        obs = Observation(plan=p, now=clock.now(), stable=b.workload("rev-stable"),
                          canary=b.workload("rev-new"),
                          router=RouterObservation(weight=status.canary_weight), policy=pol)
        if t >= next_regular and gates_due(obs):
            obs = replace(obs, measurements=regular(c, obs, t))
        elif t >= next_regular:
            pass  # a pass with nothing due (the controller requeued early)
        elif fast_path:
            measured = fast(c, t)
            if not fast_path_wants(p, pol, measured):
                clock.advance(FAST)
                t += FAST
                continue
            obs = replace(obs, fast=measured)
            out.fast_passes += 1
        else:
            clock.advance(FAST)
            t += FAST
            continue
        d = decide(obs)
        out.passes += 1
        status = d.status
        if any(g.burning_since is not None for g in status.gates):
            out.burning.append(t)
        if d.status.phase == Phase.ROLLING_BACK:
            assert [a.weight for a in d.actions if a.type == ActionType.SET_WEIGHT] == [0]
            out.rollback_at, out.reason, out.message = t, status.reason, status.message
            return out
        if obs.measurements is not None or t >= next_regular:
            next_regular = t + (d.requeue_after if d.requeue_after is not None else 60.0)
        clock.advance(FAST)
        t += FAST
    return out


# -- a severe fault is a fast burn wherever it starts ----------------------------------------


@pytest.mark.parametrize("into_step", [2 * MIN, 15 * MIN, 40 * MIN])
def test_a_50x_burn_rolls_back_within_two_evaluations_wherever_it_starts(
        into_step: float) -> None:
    fault = STEP + into_step
    run = replay(Canary(after(fault, 0.05)), fault + 10 * MIN)
    assert run.reason == "FastBurn", run
    assert run.rollback_at is not None
    # 5 % of requests failing = 50x a 99.9 % objective's budget: the 5-minute window passes
    # 14.4x after 86 s; confirmed at the next evaluation: within two analysis intervals
    assert run.rollback_at - fault <= 2 * MIN
    assert "at two evaluations in a row" in run.message or "over 1h" in run.message


def test_late_in_a_step_the_long_window_alone_would_take_minutes() -> None:
    """Why the episode rule exists: the Workbook's rule on a long window clipped to the run
    sees a fault 15 minutes into the step diluted by the healthy past."""
    fault = STEP + 15 * MIN
    c = Canary(after(fault, 0.05))
    t = fault + 2 * MIN
    long = c.window(t, t)  # the run so far (25 + 2 minutes)
    assert long.value is not None and long.value / 0.001 < 14.4  # not a fast burn yet
    run = replay(c, fault + 10 * MIN)
    assert run.rollback_at is not None and run.rollback_at - fault <= 2 * MIN


def test_the_fast_path_catches_it_between_analyses() -> None:
    fault = STEP + 15 * MIN + 5
    run = replay(Canary(after(fault, 0.05)), fault + 10 * MIN)
    assert run.fast_passes >= 1 and run.reason == "FastBurn"
    without = replay(Canary(after(fault, 0.05)), fault + 10 * MIN, fast_path=False)
    assert without.reason == "FastBurn"  # analyses alone apply the same rule, later
    assert run.rollback_at is not None and without.rollback_at is not None
    assert run.rollback_at <= without.rollback_at


# -- what must not roll back ----------------------------------------------------------------


def test_a_single_60_second_spike_of_3_percent_is_no_fast_burn() -> None:
    spike = STEP + 15 * MIN
    run = replay(Canary(between(spike, spike + 60, 0.03)), spike + 15 * MIN)
    assert run.rollback_at is None, run
    assert run.burning == []  # 3 % for 60 s is 6x over 5 minutes at most


def test_a_trickle_of_failing_requests_is_too_few_events() -> None:
    # 2.4 requests a minute, all failing: under minSamples (100) in every window, so only
    # the sustained-violation rule may judge it (as before), never the fast path
    run = replay(Canary(after(STEP + 5 * MIN, 1.0), rate=0.04), STEP + 20 * MIN)
    assert run.reason != "FastBurn" and run.burning == [] and run.fast_passes == 0


def test_a_canary_that_stops_reporting_is_no_verdict() -> None:
    c = Canary(after(STEP + 5 * MIN, 0.05), silent_from=STEP + 5 * MIN + 30)
    run = replay(c, STEP + 20 * MIN)
    assert run.reason != "FastBurn"


def test_one_burning_evaluation_followed_by_a_healthy_one_clears_the_episode() -> None:
    p = plan()
    pol = b.policy()
    st = RolloutPlanStatus(
        phase=Phase.PROGRESSING, run=1, revision="rev-new", steps_hash=steps_hash(p.spec.steps),
        current_step=1, canary_weight=25, run_started_at=b.T0, step_started_at=b.at(STEP),
        last_analysis_at=b.at(STEP + 60))
    burning = Canary(after(0, 0.05))
    obs = Observation(plan=p.model_copy(update={"status": st}), now=b.at(STEP + 70),
                      stable=b.workload("rev-stable"), canary=b.workload("rev-new"),
                      router=RouterObservation(weight=25), policy=pol,
                      fast=fast(burning, STEP + 70))
    d1 = decide(obs)
    assert d1.status.phase == Phase.PROGRESSING
    [g] = d1.status.gates
    assert g.burning_since == b.at(STEP + 70) and g.verdict != "Fail"
    assert d1.status.last_analysis_at == st.last_analysis_at  # the analysis schedule stands
    p2 = p.model_copy(update={"status": d1.status})
    assert fast_path_wants(p2, pol, fast(Canary(), STEP + 80))  # to clear it
    d2 = decide(replace(obs, plan=p2, now=b.at(STEP + 80), fast=fast(Canary(), STEP + 80)))
    assert d2.status.phase == Phase.PROGRESSING and d2.status.gates[0].burning_since is None


def test_a_healthy_fast_measurement_needs_no_pass() -> None:
    p = plan()
    st = RolloutPlanStatus(
        phase=Phase.PROGRESSING, run=1, revision="rev-new", steps_hash=steps_hash(p.spec.steps),
        current_step=1, canary_weight=25, run_started_at=b.T0, step_started_at=b.at(STEP))
    p = p.model_copy(update={"status": st})
    assert not fast_path_wants(p, b.policy(), fast(Canary(), STEP + 100))
    gone = (GateMeasurement("api_availability", NOT_MEASURED, None, (), 0.0,
                            Measurement(MeasurementStatus.ERROR, message="down"), RECENT),)
    assert not fast_path_wants(p, b.policy(), gone)
    idle = p.model_copy(update={"status": RolloutPlanStatus()})
    assert not fast_path_wants(idle, b.policy(), fast(Canary(after(0, 1.0)), STEP + 100))


# -- the hard ceiling -----------------------------------------------------------------------


def test_an_error_ratio_above_the_ceiling_rolls_back_at_the_first_fast_evaluation() -> None:
    fault = STEP + 15 * MIN + 1
    run = replay(Canary(after(fault, 1.0)), fault + 5 * MIN, p=plan(ceiling="20%"))
    assert run.reason == "FastBurn" and run.rollback_at is not None
    assert run.rollback_at - fault <= FAST  # 9 s of failures: 30 % of the recent window
    assert "exceeds the ceiling 20%" in run.message  # the ceiling is named first
    # 30 %: the recent window must reach 20 %; the severe episode rule may get there first
    run = replay(Canary(after(fault, 0.3)), fault + 5 * MIN, p=plan(ceiling="20%"))
    assert run.reason == "FastBurn" and run.rollback_at is not None
    assert run.rollback_at - fault <= FAST + RECENT


def test_below_the_ceiling_and_without_a_burn_nothing_happens() -> None:
    run = replay(Canary(after(STEP + MIN, 0.005)), STEP + 20 * MIN, p=plan(ceiling="20%"))
    assert run.reason != "FastBurn"  # 5x: a sustained violation, not a fast burn


def test_a_ceiling_of_0_is_refused_naming_the_field() -> None:
    from controller.api.validation import check_plan

    doc = b.plan_doc(analysis={"errorRatioCeiling": "0%"})
    _, problems = check_plan(doc)
    assert [(p.path, "above 0%" in p.message) for p in problems] == [
        ("spec.analysis.errorRatioCeiling", True)]
    doc = b.plan_doc(analysis={"errorRatioCeiling": "150%"})
    _, problems = check_plan(doc)
    assert [p.path for p in problems] == ["spec.analysis.errorRatioCeiling"]


# -- a burn too severe to be noise acts at its first evaluation ------------------------------


def test_a_canary_failing_every_request_rolls_back_at_its_first_burning_evaluation() -> None:
    fault = STEP + 15 * MIN + 1
    run = replay(Canary(after(fault, 1.0)), fault + 5 * MIN)
    assert run.reason == "FastBurn" and run.rollback_at is not None, run
    # the first fast evaluation after the fault (9 s of it: 30 % of the recent window)
    assert run.rollback_at - fault <= FAST
    assert run.burning == [run.rollback_at] and run.fast_passes == 1
    assert "severe, at once" in run.message


def test_a_50x_burn_still_waits_for_the_second_evaluation() -> None:
    fault = STEP + 15 * MIN + 1
    run = replay(Canary(after(fault, 0.05)), fault + 10 * MIN)
    assert run.reason == "FastBurn" and "at two evaluations in a row" in run.message, run
    assert len(run.burning) >= 2  # the episode's first evaluation did not act


def test_severe_needs_the_multiple_of_the_threshold_and_two_failures() -> None:
    from controller.engine.severe_burn import is_severe, severe_ratio

    def recent(bad: float, total: float) -> Measurement:
        return Measurement(MeasurementStatus.OK, value=bad / total, samples=total,
                           numerator=bad, denominator=total)

    assert severe_ratio(14.4, 99.9) == pytest.approx(0.0576)
    assert is_severe(recent(6, 100), 14.4, 99.9)
    assert not is_severe(recent(5, 100), 14.4, 99.9)  # 5 %: 50x, under 4 x 14.4x
    assert not is_severe(recent(3, 100), 14.4, 99.9)  # a 3 % spike: 30x
    assert not is_severe(recent(1, 10), 14.4, 99.9)  # 10 %, but one failed request
    assert is_severe(recent(2, 16), 14.4, 99.9)  # the sandbox's canary: 1.6 requests/s
    # a loose objective: 4 x 14.4 x 5 % would be 288 %; half of all requests is severe
    assert severe_ratio(14.4, 95) == 0.5
    assert is_severe(recent(50, 100), 14.4, 95) and not is_severe(recent(49, 100), 14.4, 95)
    assert not is_severe(Measurement(MeasurementStatus.NO_DATA), 14.4, 99.9)
    assert not is_severe(None, 14.4, 99.9)


def test_a_severe_recent_window_without_a_burning_short_window_is_no_fast_burn() -> None:
    # every request failing for 5 s, once, in a step at 20 requests a second: 100 failures,
    # 17 % of the 30 s recent window (severe), but 1.7 % of the 5-minute window: 17x > 14.4x
    # fires the episode; at 3 s (60 failures, 1 %: 10x) the short window holds it back
    blip = STEP + 15 * MIN + 5
    run = replay(Canary(between(blip, blip + 3, 1.0)), blip + 10 * MIN)
    assert run.rollback_at is None and run.burning == [], run
