"""Property tests of DESIGN.md's invariants, over generated runs in virtual time."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controller.api.plan import Phase, Verdict
from controller.engine.decide import decide, evaluation_window, record_results
from controller.engine.measurements import Measurement, MeasurementStatus
from controller.engine.observation import ActionType, FreezeInput
from tests.harness import builders as b
from tests.harness.world import World

KINDS = ["good", "bad", "burn", "nodata", "error", "few"]


def measurement(kind: str) -> Measurement:
    return {
        "good": b.ratio(0.0, 1000),
        "bad": b.ratio(0.02, 1000),
        "burn": b.ratio(1.0, 1000),
        "nodata": b.missing(MeasurementStatus.NO_DATA),
        "error": b.missing(MeasurementStatus.ERROR, "refused"),
        "few": b.ratio(0.0, 3),
    }[kind]


@st.composite
def scenarios(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    n = draw(st.integers(1, 4))
    weights = sorted(draw(st.sets(st.integers(1, 99), min_size=n - 1, max_size=n - 1)))
    holds = draw(st.lists(st.integers(15, 90), min_size=n, max_size=n))
    segments = draw(st.lists(st.tuples(st.integers(5, 120), st.sampled_from(KINDS)),
                             min_size=1, max_size=8))
    return {
        "steps": [(w, f"{h}s") for w, h in zip([*weights, 100], holds, strict=True)],
        "rollback_after": draw(st.sampled_from(["0s", "20s", "45s"])),
        "on_no_data": draw(st.sampled_from(["hold", "pause", "rollback"])),
        "segments": segments,
        "fast_burn": draw(st.booleans()),
    }


def build(sc: dict) -> World:  # type: ignore[type-arg]
    plan = b.plan(steps=sc["steps"], analysis={
        "interval": "10s", "window": "30s", "rollbackAfter": sc["rollback_after"],
        "minSamples": 100, "noDataTimeout": "60s", "onNoData": sc["on_no_data"]})
    bounds = []
    t = 0
    for duration, kind in sc["segments"]:
        t += duration
        bounds.append((t, kind))

    def kind_at(t: float) -> str:
        return next((k for end, k in bounds if t < end), bounds[-1][1])

    def script(now: float, _w: int, gate: str) -> object:
        kind = kind_at(now)
        # A failure stays in the evaluation window (a rate over it), as in Prometheus, so
        # a run cannot miss one by when it happens to look; the rest is as measured now.
        st = world.plan.status
        window = evaluation_window(st, 30, b.T0 + timedelta(seconds=now))
        if st.run_started_at is not None:
            window = min(window, max(1.0, now - (st.run_started_at - b.T0).total_seconds()))
        seen = {kind_at(t) for t in _between(now - window, now)}
        kind = next((k for k in ("burn", "bad") if k in seen), kind)
        m = measurement(kind)
        burn = 1.0 if (kind == "burn" and sc["fast_burn"]) else None
        return b.gate_measurement(gate, m, stable=b.ratio(0.0), burn=burn, window=30)

    world = World(plan, b.policy(), b.T0, script=script)  # type: ignore[arg-type]
    return world


def _between(start: float, end: float) -> list[float]:
    """Sample times covering [start, end] finer than the shortest segment (5 s)."""
    n = max(1, int((end - start) // 1))
    return [start + (end - start) * i / n for i in range(n + 1)]


def horizon(world: World) -> timedelta:
    total = sum(s.hold.seconds for s in world.plan.spec.steps)
    return timedelta(seconds=total + 600)


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenarios())
def test_weights_move_only_along_the_steps_or_to_zero(sc: dict) -> None:  # type: ignore[type-arg]
    world = build(sc)
    world.run(b.T0 + horizon(world))
    steps = [s.weight for s in world.plan.spec.steps]
    previous_step = None
    for step in world.history:
        for action in step.decision.actions:
            if action.type != ActionType.SET_WEIGHT:
                continue
            assert action.weight == 0 or action.weight in steps
            if action.weight:
                assert action.weight == steps[step.decision.status.current_step]
        current = step.decision.status.current_step
        if previous_step is not None and current is not None and current != previous_step:
            assert current in (previous_step + 1, 0), "a step was skipped"
        previous_step = current if current is not None else previous_step


@SETTINGS
@given(scenarios())
def test_no_promotion_on_fail_or_inconclusive_or_before_the_hold(sc: dict) -> None:  # type: ignore[type-arg]
    world = build(sc)
    world.run(b.T0 + horizon(world))
    before = None
    for step in world.history:
        status = step.decision.status
        if before is not None and before.current_step is not None and (
            status.current_step == before.current_step + 1
            or (status.phase == Phase.PROMOTING and before.phase != Phase.PROMOTING)
        ):
            assert step.measured, "advanced without a fresh evaluation"
            assert all(g.verdict == Verdict.PASS for g in status.gates)
            hold = world.plan.spec.steps[before.current_step].hold.timedelta
            assert before.step_started_at is not None
            assert step.at >= before.step_started_at + hold
        before = status


@SETTINGS
@given(scenarios())
def test_rollback_takes_one_decision(sc: dict) -> None:  # type: ignore[type-arg]
    world = build(sc)
    world.run(b.T0 + horizon(world))
    previous = Phase.PENDING
    for step in world.history:
        status = step.decision.status
        if status.phase == Phase.ROLLING_BACK and previous != Phase.ROLLING_BACK:
            sets = [a.weight for a in step.decision.actions if a.type == ActionType.SET_WEIGHT]
            assert sets == [0], "rollback did not set weight 0 in the same decision"
            assert status.canary_weight == 0
        previous = status.phase
    if any(s.decision.status.phase == Phase.ROLLING_BACK for s in world.history):
        assert world.plan.status.phase == Phase.ROLLED_BACK


@SETTINGS
@given(scenarios(), st.data())
def test_replaying_from_any_persisted_status_gives_the_same_decision(
    sc: dict, data: st.DataObject  # type: ignore[type-arg]
) -> None:
    world = build(sc)
    world.run(b.T0 + horizon(world))
    # Decide again from a persisted status with the same observation: same decision.
    index = data.draw(st.integers(0, len(world.history) - 1))
    replay = build(sc)
    replay.run(world.history[index].at - timedelta(microseconds=1))
    obs = replay.observe(world.history[index].at)
    assert decide(obs) == decide(obs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sets(st.integers(0, 400), max_size=40))
# The route write of the first shift lands, its status write does not: the failures the
# canary served before the restart must still be judged (they once were not).
@example({"steps": [(100, "15s")], "rollback_after": "0s", "on_no_data": "hold",
          "segments": [(12, "bad"), (5, "good")], "fast_burn": False}, {1})
def test_crashes_before_the_status_write_skip_nothing(sc: dict, crashes: set[int]) -> None:  # type: ignore[type-arg]
    clean = build(sc)
    clean.run(b.T0 + horizon(clean))
    crashed = build(sc)
    crashed.run(b.T0 + horizon(crashed), crash=lambda n: n in crashes)
    # A crash never turns a rollback into a promotion. Not "the same outcome": a lost step
    # start restarts that step's hold (the engine cannot know when the route changed), so
    # the crashed run stays exposed longer and may judge later failures. Known limits, not
    # checked here: a lost write loses when a failure or a no-data spell began
    # (failingSince/inconclusiveSince restart at the next pass, so rollbackAfter and
    # noDataTimeout's pause or rollback count from there), and a lost run start with its
    # first shift leaves no run to judge that traffic in.
    shifted = [s.at for s in crashed.history
               if any(a.type == ActionType.SET_WEIGHT and a.weight for a in s.decision.actions)]
    run_start = crashed.plan.status.run_started_at
    run_start_lost = bool(shifted) and run_start is not None and run_start > shifted[0]
    timers = sc["rollback_after"] != "0s" or sc["on_no_data"] != "hold"
    if clean.plan.status.phase == Phase.ROLLED_BACK and not timers and not run_start_lost:
        assert crashed.plan.status.phase == Phase.ROLLED_BACK
    # The persisted steps never skip one (a crashed pass's decision was never persisted).
    seen = []
    for n, step in enumerate(crashed.history):
        if n in crashes:
            continue
        s = step.decision.status.current_step
        if s is not None and (not seen or seen[-1] != s):
            seen.append(s)
    for a, c in itertools.pairwise(seen):
        assert c in (a + 1, 0)
    succeeded = [r for r in crashed.plan.status.history if r.outcome == "Succeeded"]
    assert len(succeeded) <= 1, "promoted twice"


@SETTINGS
@given(scenarios(), st.sampled_from(["BudgetBelowThreshold", "FastBurn", "BudgetUnknown"]))
def test_no_run_starts_while_frozen(sc: dict, reason: str) -> None:  # type: ignore[type-arg]
    world = build(sc)
    world.freeze = FreezeInput(policy="platform", frozen=True, reason=reason,
                               budget_remaining=5.0)
    world.run(b.T0 + horizon(world))
    assert world.router_weight == 0
    assert world.plan.status.phase == Phase.FROZEN
    assert all(r.type != "RunStarted" for r in world.plan.status.decisions)


def test_record_results_takes_drill_timings_from_the_write() -> None:
    from controller.api.plan import DrillReport, RolloutPlanStatus
    from controller.engine.observation import Action, ActionResult, ActionTag

    status = RolloutPlanStatus(drills=[DrillReport(id="d", requested_at=b.T0)])
    zero = Action(ActionType.SET_WEIGHT, weight=0, tag=ActionTag.DRILL_ZERO)
    out = record_results(status, [ActionResult(zero, True, b.at(0.3))], True, 1)
    assert out.drills[-1].canary_weight_zero_at == b.at(0.3)
    assert out.drills[-1].stable_ready_at == b.at(0.3)
    failed = record_results(status, [ActionResult(zero, False, b.at(0.3), "boom", "ApiError")],
                            True, 1)
    assert failed.drills[-1].canary_weight_zero_at is None
    degraded = next(c for c in failed.conditions if c.type == "Degraded")
    assert degraded.status == "True" and "boom" in degraded.message


def test_a_rollback_whose_status_write_was_lost_still_ends_rolled_back() -> None:
    """A crash between the rollback's route write and its status write, then a restart
    after the evaluation window has passed: the unrouted canary has no data any more."""

    def script(t: float, weight: int, gate: str) -> object:
        if weight == 0:
            return b.gate_measurement(gate, b.missing(MeasurementStatus.NO_DATA))
        return b.gate_measurement(gate, b.ratio(0.05 if t >= 200 else 0.0, 1000))

    plan = b.plan(steps=[(10, "10m"), (100, "10m")])
    world = World(plan, b.policy(), b.T0, script=script)  # type: ignore[arg-type]
    now = b.T0
    while True:
        obs = world.observe(now)
        from controller.engine.decide import decide as decide_

        if decide_(obs).status.phase == Phase.ROLLING_BACK:
            world.tick(now, write_status=False)  # the route went to 0, the status did not
            break
        step = world.tick(now)
        now += timedelta(seconds=step.decision.requeue_after or 10)
        assert now < b.T0 + timedelta(hours=1)
    assert world.router_weight == 0
    now += timedelta(seconds=600)  # the controller comes back after the window
    for _ in range(50):
        step = world.tick(now)
        now += timedelta(seconds=min(step.decision.requeue_after or 30, 30))
    assert world.plan.status.phase == Phase.ROLLED_BACK
    assert world.router_weight == 0
