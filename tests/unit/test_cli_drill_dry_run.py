"""`rolloutctl drill --dry-run` prints the actions the controller's engine would take, in
order, computed by running the engine on the plan plus the drill request (not a list
written by hand), and the timings table of a finished drill reads request -> rollback
started -> canary weight 0 -> stable ready -> restored."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from controller.api.plan import DrillReport, DrillRequest, Phase, RolloutPlan
from controller.cli import render, summary
from controller.cli.drill import predict, with_drill
from controller.engine.decide import decide
from tests.harness import builders as b

STEPS = [(10, "1m"), (25, "1h"), (50, "1h"), (100, "1h")]


def at_step(index: int) -> RolloutPlan:
    """A plan mid-run at STEPS[index], reached by the engine itself."""
    plan = b.plan(steps=STEPS)
    obs = b.observation(plan, b.T0, router_weight=0, canary=b.workload("rev-new"))
    weight = 0
    for i in range(200):
        decision = decide(obs)
        plan = plan.model_copy(update={"status": decision.status})
        for a in decision.actions:
            if a.weight is not None:
                weight = a.weight
        if plan.status.current_step == index and plan.status.step_started_at is not None:
            return plan
        obs = b.observation(plan, b.at(i + 1) + timedelta(minutes=i), router_weight=weight,
                            canary=b.workload("rev-new"),
                            measurements=(b.gate_measurement(),))
    raise AssertionError(f"never reached step {index}: {plan.status}")


def request(restore: bool) -> DrillRequest:
    return DrillRequest(id="d1", by="alice", at=b.T0 + timedelta(hours=1), restore=restore)


def dry_run(plan: RolloutPlan, restore: bool, router_weight: int, canary_replicas: int = 2
            ) -> tuple[list[str], str]:
    now = b.T0 + timedelta(hours=1)
    obs = b.observation(with_drill(plan, request(restore)), now, status=None,
                        router_weight=router_weight,
                        canary=b.workload("rev-new", replicas=canary_replicas))
    prediction = predict(obs, "d1")
    assert prediction.finished
    return prediction.actions, prediction.outcome


def test_mid_run_drill_at_25_sets_weight_0_then_scales_the_canary_down() -> None:
    plan = at_step(1)
    assert plan.status.canary_weight == 25
    actions, outcome = dry_run(plan, restore=False, router_weight=25)
    assert actions == ["set canary weight to 0%", "scale canary to 0 replica(s)"]
    assert outcome == "the run would end rolled back (phase RolledBack at step 2, canary " \
                      "weight 0%)"


def test_mid_run_drill_with_restore_returns_to_25() -> None:
    plan = at_step(1)
    actions, outcome = dry_run(plan, restore=True, router_weight=25)
    assert actions == ["set canary weight to 0%", "scale canary to 0 replica(s)",
                       "scale canary to 2 replica(s)", "set canary weight to 25%"]
    assert "restored (phase Progressing at step 2, canary weight 25%)" in outcome


def test_idle_plan_gets_the_synthetic_drill_first_step_then_rollback() -> None:
    plan = b.plan(steps=STEPS)  # never ran: Pending, weight 0, canary at 0 replicas
    actions, outcome = dry_run(plan, restore=False, router_weight=0, canary_replicas=0)
    assert actions == ["scale canary to 2 replica(s)", "set canary weight to 10%",
                       "set canary weight to 0%", "scale canary to 0 replica(s)"]
    assert "left as it was (phase Pending, canary weight 0%)" in outcome


def test_dry_run_changes_nothing_in_the_plan_it_was_given() -> None:
    plan = at_step(1)
    before = plan.model_dump()
    dry_run(plan, restore=True, router_weight=25)
    assert plan.model_dump() == before


def test_a_drill_the_controller_would_ignore_says_why() -> None:
    plan = b.plan(steps=STEPS, onSuccess={"promote": "none"})
    done = plan.model_copy(update={"status": plan.status.model_copy(update={
        "phase": Phase.SUCCEEDED, "canary_weight": 100, "revision": "rev-new"})})
    actions, outcome = dry_run(done, restore=False, router_weight=100)
    assert actions == []
    assert outcome.startswith("the controller would ignore the drill: drill d1 ignored: the "
                              "idle canary carries 100%")


def test_timings_of_a_finished_drill_in_order() -> None:
    t = b.T0
    report = DrillReport(id="d1", by="alice", restore=True, requested_at=t,
                         rollback_started_at=t + timedelta(seconds=0.4),
                         canary_weight_zero_at=t + timedelta(seconds=0.5),
                         stable_ready_at=t + timedelta(seconds=0.5),
                         restored_at=t + timedelta(seconds=2.25), outcome="Succeeded",
                         stage="Done")
    console = Console(record=True, width=100, color_system=None)
    console.print(render.drill_timings_table(report))
    rows = [line.split() for line in console.export_text().splitlines()[1:]]
    assert [r[:-3] if r[0] != "requested" else r[:1] for r in rows] == [
        ["requested"], ["rollback", "started"], ["canary", "weight", "0"], ["stable", "ready"],
        ["restored"]]
    assert [r[-2] for r in rows] == ["0.00s", "0.40s", "0.50s", "0.50s", "2.25s"]
    assert [r[-1] for r in rows] == ["-", "0.40s", "0.10s", "0.00s", "1.75s"]
    assert summary.drill_seconds(report) == 2.25
