"""The real controller (``rolloutctl run``) on the local control plane with an HTTPRoute
attached to a Gateway: a mirror step with header routes first, then 100 %. A step's hold
counts only once the Gateway accepted the change; a route not accepted within
``traffic.readyTimeout`` shows Degraded (RouteNotAccepted) with the parent's words and the
step does not move; on success the header rules and the mirror are gone.

No Gateway controller runs here: the test writes the route's parent status as one would
(``accept_route``), only when it chooses to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.stack import Stack, rollout_plan
from tests.harness.traffic import accept_route

pytestmark = pytest.mark.cluster

HTTPROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(Path(cluster.kubeconfig), cluster.api_client(), namespace, tmp_path / "stack")
    try:
        s.create_workloads(stable_replicas=1)
        s.custom.patch_namespaced_custom_object(
            *HTTPROUTES[:2], namespace, HTTPROUTES[2], s.service,
            {"spec": {"parentRefs": [{"name": "demo-gateway"}]}},
            _content_type="application/merge-patch+json")
        yield s
    finally:
        s.stop()


def route(stack: Stack) -> dict[str, Any]:
    got: dict[str, Any] = stack.custom.get_namespaced_custom_object(
        *HTTPROUTES[:2], stack.namespace, HTTPROUTES[2], stack.service)
    return got


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def test_a_step_counts_only_once_the_gateway_accepted_it(stack: Stack) -> None:
    doc = rollout_plan(stack.service, "platform", gates=[],
                       steps=[{"mirror": 50, "hold": "2s"}, {"weight": 100, "hold": "2s"}])
    doc["spec"].pop("sloPolicyRef")
    doc["spec"]["traffic"]["match"] = [{"header": "X-Canary", "exact": "always"}]
    doc["spec"]["traffic"]["readyTimeout"] = "3s"
    stack.apply(doc)
    stack.start_controller()
    stack.release("v2")

    stack.wait_for(lambda: stack.status().get("reason") == "WaitingForRoute", 90,
                   "the mirror step waiting for the Gateway")
    rules = route(stack)["spec"]["rules"]
    assert [r.get("name") for r in rules] == ["rolloutctl-canary-0", None]
    assert rules[1]["filters"][0]["requestMirror"]["percent"] == 50

    degraded = stack.wait_for(
        lambda: (c := condition(stack.status(), "Degraded")).get("status") == "True" and c,
        30, "Degraded after readyTimeout")
    assert degraded["reason"] == "RouteNotAccepted"
    assert "Gateway" in degraded["message"] and "has not reported" in degraded["message"]
    status = stack.status()
    assert status["currentStep"] == 0, "the hold counted while the route was not accepted"
    assert status["reason"] == "WaitingForRoute"

    # the Gateway accepts whatever generation it sees, from now on (a controller would)
    def accepted_and(predicate: Any) -> Any:
        accept_route(stack.custom, stack.namespace, stack.service)
        return predicate(stack.status())

    stack.wait_for(lambda: accepted_and(
        lambda s: condition(s, "Degraded").get("status") == "False"
        and ((s.get("currentStep") or 0) >= 1 or s.get("reason") == "HoldingStep")), 30,
        "the step holding once accepted")
    stack.wait_for(lambda: accepted_and(lambda s: s.get("phase") == "Succeeded"), 120,
                   "Succeeded")
    rules = route(stack)["spec"]["rules"]
    assert len(rules) == 1 and "filters" not in rules[0]
    assert [r["weight"] for r in rules[0]["backendRefs"]] == [100, 0]
    started = [d for d in stack.status()["decisions"] if d["type"] == "StepAdvanced"]
    assert started[0]["message"].startswith("mirroring 50% to the canary")
