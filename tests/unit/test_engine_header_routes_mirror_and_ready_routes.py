"""The engine routes weight, mirror and header routes together, and a step's hold counts
only once the route's parents accepted the change (World: a reconcile loop with fakes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from controller.api.conditions import ConditionType
from controller.api.plan import Phase, RolloutPlan
from controller.api.validation import check_plan
from controller.engine.observation import ActionType
from tests.harness import builders as b
from tests.harness.world import World

MATCH = [{"header": "X-Canary", "exact": "always"}]


def plan(steps: list[dict[str, Any]] | None = None, **traffic: Any) -> RolloutPlan:
    doc = b.plan_doc(notifications=False)
    if steps is not None:
        doc["spec"]["steps"] = steps
    doc["spec"]["traffic"].update(traffic)
    parsed, problems = check_plan(doc)
    assert parsed is not None and not problems, problems
    return parsed


def routings(world: World) -> list[tuple[int | None, int, bool]]:
    return [(a.weight, a.mirror, a.match) for s in world.history for a in s.decision.actions
            if a.type == ActionType.SET_WEIGHT]


def test_header_routes_are_on_from_the_first_step_and_off_after_success() -> None:
    world = World(plan(match=MATCH), b.policy(), b.T0)
    world.run(b.T0 + timedelta(minutes=10))
    assert world.plan.status.phase == Phase.SUCCEEDED
    assert routings(world) == [(10, 0, True), (25, 0, True), (50, 0, True), (100, 0, True),
                               (0, 0, False)]
    assert (world.router_weight, world.router_mirror, world.router_match) == (0, 0, False)


def test_a_mirror_step_copies_traffic_with_no_weight_then_the_weighted_steps_follow() -> None:
    steps = [{"mirror": 50, "hold": "1m"}, {"weight": 10, "hold": "1m"},
             {"weight": 100, "hold": "1m"}]
    world = World(plan(steps, match=MATCH), b.policy(), b.T0)
    world.run(b.T0 + timedelta(minutes=10))
    assert world.plan.status.phase == Phase.SUCCEEDED
    assert routings(world)[:3] == [(0, 50, True), (10, 0, True), (100, 0, True)]
    started = [r.message for r in world.plan.status.decisions if r.type == "StepAdvanced"]
    assert started[0].startswith("mirroring 50% to the canary, holding 1m")


def test_a_rollback_removes_the_mirror_and_the_header_routes() -> None:
    steps = [{"mirror": 50, "hold": "5m"}, {"weight": 100, "hold": "1m"}]

    def failing(_t: float, _w: int, _gate: str) -> Any:
        return b.ratio(0.5)

    world = World(plan(steps, match=MATCH), b.policy(), b.T0, script=failing)
    world.run(b.T0 + timedelta(minutes=3))
    assert world.plan.status.phase == Phase.ROLLED_BACK
    assert routings(world)[0] == (0, 50, True)  # the canary's own series judged it
    assert (world.router_weight, world.router_mirror, world.router_match) == (0, 0, False)
    assert world.plan.status.canary_mirror is None


def test_the_hold_counts_from_when_the_parents_accept_the_change() -> None:
    world = World(plan(), b.policy(), b.T0, router_ready=True, accept_after=20)
    world.run(b.T0 + timedelta(minutes=1, seconds=10))  # a 1m hold, had it counted from T0
    waiting = [s for s in world.history if s.decision.status.reason == "WaitingForRoute"]
    assert len(waiting) >= 20 and all(s.decision.status.current_step == 0 for s in waiting)
    st = world.plan.status
    assert st.current_step == 0, "the step advanced before its hold counted"
    assert st.route_pending_since is None and st.reason == "HoldingStep"
    assert st.step_started_at is not None and st.step_started_at > b.T0 + timedelta(seconds=15)


def test_a_route_never_accepted_is_degraded_with_the_parents_message_never_a_silent_step(
) -> None:
    world = World(plan(readyTimeout="30s"), b.policy(), b.T0, router_ready=True,
                  accept_after=10_000)
    world.run(b.T0 + timedelta(minutes=5))
    st = world.plan.status
    assert st.current_step == 0 and st.reason == "WaitingForRoute"
    degraded = next(c for c in st.conditions if c.type == ConditionType.DEGRADED)
    assert degraded.status == "True" and degraded.reason == "RouteNotAccepted"
    assert "Accepted=False (Pending): not reconciled yet" in degraded.message


def test_a_route_that_reports_nothing_is_not_waited_for() -> None:
    world = World(plan(), b.policy(), b.T0)  # router_ready None: NGINX, replicas, no parents
    world.run(b.T0 + timedelta(seconds=15))
    assert world.plan.status.reason == "HoldingStep"
    assert world.plan.status.route_pending_since is None


def test_header_route_drift_is_corrected() -> None:
    world = World(plan(match=MATCH), b.policy(), b.T0)
    world.run(b.T0 + timedelta(seconds=15))
    assert world.router_match
    world.router_match = False  # someone removed the rule
    world.tick(b.T0 + timedelta(seconds=16))
    assert world.router_match
    assert any(r.reason == "RouteDrift" for r in world.plan.status.decisions)
