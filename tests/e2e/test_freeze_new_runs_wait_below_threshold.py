"""Issue #9 end to end: a new run waits in Frozen while the error budget is below the
threshold, showing the budget figure, and shifts no traffic; above it, the run goes ahead.

Real servers throughout: kube-apiserver, the `rolloutctl run` process, and one Prometheus
holding a backfilled 30-day history (the budget) next to the live demo services (the gates).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.freeze_world import (
    BUDGET_SLO,
    FreezeWorld,
    canary_replicas,
    condition,
    decisions,
    freeze_policy,
    route_weight,
    watch,
    world_with_history,
)
from tests.harness.stack import rollout_plan

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

SERVICE = "checkout"


@pytest.fixture
def world_8(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[FreezeWorld]:
    with world_with_history(Path(cluster.kubeconfig), cluster.api_client(), namespace,
                            tmp_path / "stack", 8.0) as world:
        yield world


@pytest.fixture
def world_20(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[FreezeWorld]:
    with world_with_history(Path(cluster.kubeconfig), cluster.api_client(), namespace,
                            tmp_path / "stack", 20.0) as world:
        yield world


def test_at_8_percent_a_new_run_stays_frozen_showing_the_budget_and_shifts_nothing(
    world_8: FreezeWorld,
) -> None:
    stack = world_8.stack
    assert stack.prometheus is not None
    stack.apply(freeze_policy("platform", stack.prometheus.url))
    stack.apply(rollout_plan(SERVICE, "platform"))
    stack.start_controller()
    policy = stack.wait_for(lambda: stack.policy_status().get("frozen") and stack.policy_status(),
                            90, "the policy to freeze")
    # The budget the controller measured is the one the history holds (~8 %).
    assert policy["reason"] == "BudgetBelowThreshold"
    assert policy["budgetRemaining"] == pytest.approx(world_8.remaining, abs=0.05)
    assert policy["budgetRemaining"] == pytest.approx(8.0, abs=0.05)
    slo = next(s for s in policy["slos"] if s["name"] == BUDGET_SLO)
    assert slo["state"] == "Ok" and slo["reason"] == "Measured"

    stack.release("v2")
    status = stack.wait_for(lambda: stack.status().get("phase") == "Frozen" and stack.status(),
                            60, "the plan to wait in Frozen")
    assert status["reason"] == "BudgetBelowThreshold"
    assert re.search(r"\b8\.0% of the error budget left", status["message"]), status["message"]
    frozen = condition(status, "Frozen")
    assert frozen["status"] == "True" and frozen["reason"] == "BudgetBelowThreshold"
    assert "8.0% of the error budget left" in frozen["message"]
    assert status["freeze"]["budgetRemaining"] == pytest.approx(8.0, abs=0.05)

    # Nothing moves for 20 s (four policy evaluations, ten plan resyncs' worth): the route
    # keeps all traffic on stable, the canary stays at 0 replicas, no run starts.
    seen = watch(stack, 20, lambda: (route_weight(stack, SERVICE),
                                     canary_replicas(stack, SERVICE),
                                     stack.status().get("phase")))
    assert set(seen) == {(0, 0, "Frozen")}, seen
    final = stack.status()
    assert decisions(final, "RunStarted", "StepAdvanced") == []
    assert final.get("run", 0) == 0 and final.get("currentStep") is None
    assert stack.traffic is not None and stack.traffic.sent["canary"] == 0
    assert [d["type"] for d in decisions(final, "Frozen")] == ["Frozen"]  # recorded once
    assert "Frozen" in {e["reason"] for e in stack.events()
                        if e["involvedObject"]["kind"] == "RolloutPlan"}
    assert stack.policy_status()["evaluatedAt"] != policy["evaluatedAt"]  # re-evaluated


def test_at_20_percent_a_new_run_goes_ahead(world_20: FreezeWorld) -> None:
    stack = world_20.stack
    assert stack.prometheus is not None
    stack.apply(freeze_policy("platform", stack.prometheus.url))
    stack.apply(rollout_plan(SERVICE, "platform", hold="4s"))
    stack.start_controller()
    policy = stack.wait_for(lambda: stack.policy_status().get("evaluatedAt")
                            and stack.policy_status(), 90, "the policy's first evaluation")
    assert policy["frozen"] is False
    assert policy["budgetRemaining"] == pytest.approx(20.0, abs=0.05)
    assert policy["message"].startswith("20.0% of the budget_availability budget left")
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 60,
                   "the plan to see nothing to roll out")

    stack.release("v2")
    stack.wait_for(lambda: stack.status().get("phase") == "Succeeded", 180, "Succeeded")
    status = stack.status()
    assert [d["weight"] for d in decisions(status, "StepAdvanced")] == [10, 25, 50, 100]
    assert decisions(status, "Frozen") == []
    assert condition(status, "Frozen")["status"] == "False"
    assert stack.traffic is not None and stack.traffic.sent["canary"] > 0
    assert status["history"][-1]["outcome"] == "Succeeded"
