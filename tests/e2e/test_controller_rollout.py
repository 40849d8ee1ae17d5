"""The controller end to end: the real `rolloutctl run` process on the local control plane,
with real Prometheus scraping a real stable and canary service and traffic split by the
HTTPRoute's weights."""

from __future__ import annotations

from typing import Any

import pytest

from controller.engine.verdicts import RECENT_MIN_EVENTS
from tests.harness.stack import Stack, rollout_plan

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]


def advances(status: dict[str, Any], run: int | None = None) -> list[int]:
    return [d["weight"] for d in status.get("decisions", [])
            if d["type"] == "StepAdvanced"]


def test_a_healthy_release_goes_10_25_50_100_and_is_promoted(stack: Stack) -> None:
    stack.apply(rollout_plan(stack.service, "platform"))
    stack.start_controller()
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 60,
                   "the plan to see nothing to roll out")
    stack.release("v2")
    stack.wait_for(lambda: stack.status().get("phase") == "Succeeded", 180, "Succeeded")
    status = stack.status()
    assert advances(status) == [10, 25, 50, 100]
    for d in status["decisions"]:
        if d["type"] == "StepAdvanced" and d["weight"] > 10:
            assert "api_availability Pass" in d["message"], d
    # stable runs the canary's template, the canary is at 0, all traffic on stable
    stable = stack.deployment(stack.service)
    canary = stack.deployment(f"{stack.service}-canary")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")
    assert stable["spec"]["template"]["metadata"]["labels"]["track"] == "stable"
    assert canary["spec"]["replicas"] == 0
    assert stack.route_weight() == 0
    assert status["history"][-1]["outcome"] == "Succeeded"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == 1


def test_a_bad_canary_is_rolled_back_with_evidence_and_an_event(stack: Stack) -> None:
    stack.apply(rollout_plan(stack.service, "platform"))
    stack.start_controller()
    assert stack.canary_app is not None
    stack.canary_app.configure(error_rate=0.3)
    stack.release("v2")
    stack.wait_for(lambda: stack.status().get("phase") == "RolledBack", 180, "RolledBack")
    status = stack.status()
    assert stack.route_weight() == 0
    assert stack.deployment(f"{stack.service}-canary")["spec"]["replicas"] == 0
    assert status["reason"] in ("SustainedViolation", "FastBurn")
    evidence = status["history"][-1]["evidence"]
    gate = next(g for g in evidence if g["name"] == "api_availability")
    assert gate["verdict"] == "Fail" and gate["value"] < 99
    # the evidence names its query and its count: never a verdict on a handful of requests
    # (a fast-path verdict's window is the recent one, judged from RECENT_MIN_EVENTS events;
    # an analysis fails below minSamples only when the errors already seen exceed what
    # minSamples events allow)
    assert gate["query"] and gate["samples"] >= RECENT_MIN_EVENTS, (status["reason"], gate)
    reasons = {e["reason"] for e in stack.events()
               if e["involvedObject"]["kind"] == "RolloutPlan"}
    assert {"RollbackStarted", "RolledBack"} <= reasons
    # the stable Deployment never took the bad template
    stable = stack.deployment(stack.service)
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v1")


def test_a_hand_edited_weight_is_restored_with_an_event(stack: Stack) -> None:
    stack.apply(rollout_plan(stack.service, "platform", hold="5m"))
    stack.start_controller()
    stack.release("v2")
    stack.wait_for(lambda: stack.route_weight() == 10 and stack.status().get(
        "canaryWeight") == 10, 120, "the first step")
    route = stack.custom.get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", stack.namespace, "httproutes", stack.service)
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 20
    route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 80  # someone sends 80 % by hand
    stack.custom.replace_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", stack.namespace, "httproutes", stack.service, route)
    stack.wait_for(lambda: stack.route_weight() == 10, 30, "the weight restored to 10 %")
    assert any(d["type"] == "DriftCorrected" and "80%" in d["message"]
               for d in stack.status()["decisions"])
    stack.wait_for(lambda: "DriftCorrected" in {
        e["reason"] for e in stack.events() if e["involvedObject"]["kind"] == "RolloutPlan"},
        10, "a DriftCorrected Event")


def test_a_missing_route_is_a_condition_not_a_crash(stack: Stack) -> None:
    doc = rollout_plan(stack.service, "platform")
    doc["spec"]["traffic"]["gatewayAPI"]["httpRoute"] = "no-such-route"
    stack.apply(doc)
    controller = stack.start_controller()
    stack.release("v2")

    def ready_condition() -> dict[str, Any] | None:
        return next((c for c in stack.status().get("conditions", [])
                     if c["type"] == "Ready" and c["status"] == "False"), None)

    cond = stack.wait_for(ready_condition, 60, "Ready=False")
    assert cond["reason"] == "RouteNotFound" and "no-such-route" in cond["message"]
    assert controller.alive() and controller.ready()
    assert stack.route_weight() == 0  # the real route was never touched
