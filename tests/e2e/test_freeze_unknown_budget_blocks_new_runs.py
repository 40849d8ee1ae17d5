"""Issue #9 end to end: an unknown budget never lets a run through. With the policy's
Prometheus down the budget cannot be measured: the policy freezes with reason BudgetUnknown
and a new run waits in Frozen, shifting nothing; once the budget can be measured again
(20 % left, above the 10 % threshold) the run starts.

Real servers: kube-apiserver, the `rolloutctl run` process, and Prometheus (a backfilled
30-day history plus the live demo services) stopped and started again by its PID.
"""

from __future__ import annotations

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
    patch_policy_spec,
    restart_prometheus,
    route_weight,
    set_thresholds,
    watch,
    world_with_history,
)
from tests.harness.stack import rollout_plan

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

SERVICE = "checkout"


@pytest.fixture
def world(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[FreezeWorld]:
    with world_with_history(Path(cluster.kubeconfig), cluster.api_client(), namespace,
                            tmp_path / "stack", 20.0) as w:
        yield w


@pytest.fixture
def world_12(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[FreezeWorld]:
    with world_with_history(Path(cluster.kubeconfig), cluster.api_client(), namespace,
                            tmp_path / "stack", 12.0) as w:
        yield w


def test_with_prometheus_down_a_new_run_waits_with_reason_budget_unknown(
    world: FreezeWorld,
) -> None:
    stack = world.stack
    prometheus = stack.prometheus
    assert prometheus is not None
    stack.apply(freeze_policy("platform", prometheus.url, evaluation_interval="2s"))
    stack.apply(rollout_plan(SERVICE, "platform"))
    stack.start_controller()
    stack.wait_for(lambda: stack.policy_status().get("evaluatedAt")
                   and stack.policy_status()["frozen"] is False, 60, "an open policy")
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 60,
                   "the plan to see nothing to roll out")
    port = prometheus.port

    prometheus.stop()
    policy = stack.wait_for(lambda: (st := stack.policy_status()).get("frozen") and st, 30,
                            "the policy to freeze on an unknown budget")
    assert policy["reason"] == "BudgetUnknown"
    assert "budgetRemaining" not in policy
    slo = next(s for s in policy["slos"] if s["name"] == BUDGET_SLO)
    assert slo["state"] == "Unknown" and slo["reason"] == "PrometheusError"
    assert f"cannot reach http://127.0.0.1:{port}: connection refused" in slo["message"]
    assert condition(policy, "Ready")["reason"] == "SLOsUnknown"

    stack.release("v2")
    status = stack.wait_for(lambda: (st := stack.status()).get("phase") == "Frozen" and st, 30,
                            "the new run to wait in Frozen")
    assert status["reason"] == "BudgetUnknown"
    assert "(BudgetUnknown: budget unknown)" in status["message"]
    assert condition(status, "Frozen")["reason"] == "BudgetUnknown"
    seen = watch(stack, 10, lambda: (stack.status().get("phase"), route_weight(stack, SERVICE),
                                     canary_replicas(stack, SERVICE)))
    assert set(seen) == {("Frozen", 0, 0)}, seen
    assert decisions(stack.status(), "RunStarted") == []

    # Measurable again (Prometheus back on its data, at a new address): the run starts.
    patch_policy_spec(stack.api, stack.namespace, "platform",
                      {"prometheus": {"url": restart_prometheus(stack)}})
    stack.wait_for(lambda: route_weight(stack, SERVICE) == 10, 90, "the run at 10 %")
    policy = stack.policy_status()
    assert policy["frozen"] is False
    assert policy["budgetRemaining"] == pytest.approx(20.0, abs=0.05)
    status = stack.status()
    assert [d["type"] for d in decisions(status, "Frozen", "Unfrozen", "RunStarted")] == [
        "Frozen", "Unfrozen", "RunStarted"]


def test_a_prometheus_outage_does_not_lift_a_budget_freeze_inside_the_hysteresis_band(
    world_12: FreezeWorld,
) -> None:
    """12 % left: frozen below 15 %, then held by hysteresis with the thresholds at 10/15.
    An outage (BudgetUnknown) and the return of the same 12 % must not open releases: the
    latch (status.budgetFreeze) lives in the API server, through the outage."""
    stack = world_12.stack
    prometheus = stack.prometheus
    assert prometheus is not None
    stack.apply(freeze_policy("platform", prometheus.url, evaluation_interval="2s",
                              when_below=15, release_above=20))
    stack.apply(rollout_plan(SERVICE, "platform"))
    stack.start_controller()
    stack.wait_for(lambda: stack.policy_status().get("reason") == "BudgetBelowThreshold", 60,
                   "a budget freeze at 12 %")
    stack.release("v2")
    stack.wait_for(lambda: stack.status().get("phase") == "Frozen", 60, "the run frozen")
    set_thresholds(stack, "platform", 10, 15)
    policy = stack.wait_for(lambda: (st := stack.policy_status()).get("observedGeneration")
                            == 2 and st, 30, "the new thresholds evaluated")
    assert policy["frozen"] and policy["budgetFreeze"] is True
    assert policy["message"] == ("12.0% of the budget_availability budget left; releases "
                                 "resume at 15%")

    prometheus.stop()
    policy = stack.wait_for(lambda: (st := stack.policy_status()).get("reason")
                            == "BudgetUnknown" and st, 30, "the outage")
    assert policy["frozen"] and policy["budgetFreeze"] is True  # kept by the API server
    patch_policy_spec(stack.api, stack.namespace, "platform",
                      {"prometheus": {"url": restart_prometheus(stack)}})
    policy = stack.wait_for(lambda: (st := stack.policy_status()).get("budgetRemaining")
                            is not None and st, 60, "the budget measured again")
    assert policy["frozen"] and policy["reason"] == "BudgetBelowThreshold"
    assert policy["budgetRemaining"] == pytest.approx(12.0, abs=0.05)
    seen = watch(stack, 6, lambda: (stack.policy_status()["frozen"],
                                    stack.status().get("phase"), route_weight(stack, SERVICE)))
    assert set(seen) == {(True, "Frozen", 0)}, seen

    # Releases open at releaseAbove or more: lower it under the budget left (Prometheus
    # measures 11.9998 %, so 12 would still hold).
    set_thresholds(stack, "platform", 10, 11)
    stack.wait_for(lambda: route_weight(stack, SERVICE) == 10, 90, "the run at 10 %")
    assert stack.policy_status()["budgetFreeze"] is False
