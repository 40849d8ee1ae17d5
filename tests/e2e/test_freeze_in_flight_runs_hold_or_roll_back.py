"""Issue #9 end to end: a freeze that starts while a run is at a step holds the run there
(``inFlight: hold``) until the freeze lifts, then the run continues; with
``inFlight: rollback`` the run rolls back.

The budget comes from a backfilled 30-day history that leaves 20 %; the gates judge the live
demo services in the same Prometheus. The freeze starts mid-step without new data: the
policy's ``whenRemainingBelow`` is raised above the budget (30 %, release at 35 %) and lifts
when it is put back (10 %, release at 15 %).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.freeze_world import (
    FreezeWorld,
    canary_replicas,
    condition,
    decisions,
    freeze_policy,
    patch_policy_spec,
    route_weight,
    set_thresholds,
    watch,
    world_with_history,
)
from tests.harness.stack import Stack, rollout_plan

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

SERVICE = "checkout"
# Step 2 holds long enough for the freeze to land while the run sits there.
STEPS = [{"weight": 10, "hold": "4s"}, {"weight": 25, "hold": "20s"},
         {"weight": 50, "hold": "4s"}, {"weight": 100, "hold": "4s"}]


@pytest.fixture
def world(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[FreezeWorld]:
    with world_with_history(Path(cluster.kubeconfig), cluster.api_client(), namespace,
                            tmp_path / "stack", 20.0) as w:
        yield w


def at_step_2(stack: Stack) -> dict[str, Any]:
    stack.apply(rollout_plan(SERVICE, "platform", steps=STEPS))
    stack.start_controller()
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 90,
                   "the plan to see nothing to roll out")
    policy = stack.wait_for(lambda: stack.policy_status().get("evaluatedAt")
                            and stack.policy_status(), 60, "the policy's first evaluation")
    assert policy["frozen"] is False
    stack.release("v2")
    status: dict[str, Any] = stack.wait_for(
        lambda: stack.status().get("currentStep") == 1 and stack.status().get("phase")
        == "Progressing" and stack.status(), 90, "step 2 (25 %)")
    return status


def test_a_freeze_mid_step_holds_the_run_at_its_step_and_it_resumes_when_lifted(
    world: FreezeWorld,
) -> None:
    stack = world.stack
    assert stack.prometheus is not None
    stack.apply(freeze_policy("platform", stack.prometheus.url, evaluation_interval="5s"))
    at_step_2(stack)

    set_thresholds(stack, "platform", 30, 35)
    frozen_at = time.monotonic()
    status = stack.wait_for(lambda: stack.status().get("phase") == "Frozen" and stack.status(),
                            30, "the run to hold in Frozen")
    took = time.monotonic() - frozen_at
    assert status["currentStep"] == 1 and status["canaryWeight"] == 25
    assert status["reason"] == "BudgetBelowThreshold"
    assert status["message"].startswith("holding at this step: SLOPolicy platform is frozen "
                                        "(BudgetBelowThreshold: 20.0% of the error budget left)")
    assert condition(status, "Frozen")["status"] == "True"
    policy = stack.policy_status()
    assert policy["frozen"] and policy["budgetRemaining"] == pytest.approx(20.0, abs=0.05)

    # Held for longer than the step's 20 s hold: the weight and the step do not move.
    seen = watch(stack, 25, lambda: (route_weight(stack, SERVICE),
                                     stack.status().get("currentStep"),
                                     stack.status().get("phase")))
    assert set(seen) == {(25, 1, "Frozen")}, seen
    assert canary_replicas(stack, SERVICE) == 1

    set_thresholds(stack, "platform", 10, 15)
    stack.wait_for(lambda: stack.status().get("phase") == "Succeeded", 120,
                   "the run to resume and succeed")
    status = stack.status()
    kinds = [(d["type"], d["weight"]) for d in
             decisions(status, "StepAdvanced", "Frozen", "Unfrozen")]
    assert kinds == [("StepAdvanced", 10), ("StepAdvanced", 25), ("Frozen", 25),
                     ("Unfrozen", 25), ("StepAdvanced", 50), ("StepAdvanced", 100)]
    assert status["history"][-1]["outcome"] == "Succeeded"
    assert condition(status, "Frozen")["status"] == "False"
    print(f"\nfreeze reached the plan {took:.2f}s after the policy patch")


def test_with_in_flight_rollback_a_freeze_mid_step_rolls_the_run_back(
    world: FreezeWorld,
) -> None:
    stack = world.stack
    assert stack.prometheus is not None
    stack.apply(freeze_policy("platform", stack.prometheus.url, in_flight="rollback"))
    at_step_2(stack)

    patch_policy_spec(stack.api, stack.namespace, "platform", {"errorBudgetPolicy": {
        "freezeReleases": {"whenRemainingBelow": 30, "releaseAbove": 35}}})
    stack.wait_for(lambda: stack.status().get("phase") == "RolledBack", 60, "RolledBack")
    status = stack.status()
    assert status["reason"] == "ErrorBudgetFrozen"
    assert "20.0% of the error budget left" in status["message"]
    assert stack.route_weight() == 0 and canary_replicas(stack, SERVICE) == 0
    assert status["history"][-1]["outcome"] == "RolledBack"
    assert status["history"][-1]["finalStep"] == 1
