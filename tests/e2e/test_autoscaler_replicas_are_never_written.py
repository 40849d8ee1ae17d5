"""Autoscalers end to end: the real `rolloutctl run` on the local control plane, with real
autoscaling/v2 HorizontalPodAutoscalers on the stable and the canary Deployments.

There is no metrics-server here, so kube-controller-manager's HPA controller cannot compute
a recommendation (it reports FailedGetResourceMetric and leaves replicas alone). The
autoscaler's *writes* are played by a writer that scales through the ``scale`` subresource
as the HPA controller does, with its own field manager. What is asserted is what a user
sees on the Deployments: replicas an HPA owns keep the HPA's value, the canary starts at the
stable's current size, promotion leaves the HPA's replicas (and the HPA) working, and
the controller's field manager never owns the stable's ``spec.replicas``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.fixtures import TestCluster
from tests.harness.stack import Stack, rollout_plan

pytestmark = [pytest.mark.cluster]

WRITER = "hpa-writer"


def hpa(target: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1, "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    }


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(Path(cluster.kubeconfig), cluster.api_client(), namespace, tmp_path / "stack")
    try:
        s.create_workloads(stable_replicas=2)
        yield s
    finally:
        s.stop()


def autoscale(stack: Stack, name: str, replicas: int) -> None:
    """What the HPA controller does: an update of the scale subresource."""
    scale = stack.apps.read_namespaced_deployment_scale(name, stack.namespace)
    scale.spec.replicas = replicas
    stack.apps.replace_namespaced_deployment_scale(name, stack.namespace, scale,
                                                   field_manager=WRITER)


def replicas(stack: Stack, name: str) -> int:
    return int(stack.deployment(name)["spec"]["replicas"])


def replica_managers(stack: Stack, name: str) -> set[str]:
    """The field managers that own the Deployment's spec.replicas."""
    out = set()
    for entry in stack.deployment(name)["metadata"].get("managedFields") or []:
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if "f:replicas" in spec:
            out.add(entry["manager"])
    return out


def holds(stack: Stack, predicate: Any, seconds: float, what: str) -> None:
    """PREDICATE stays true for SECONDS (the controller passes every second meanwhile)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), what
        time.sleep(0.25)


def start(stack: Stack, *, hold: str) -> None:
    plan = rollout_plan(stack.service, "unused", interval="1s")
    spec = plan["spec"]
    del spec["sloPolicyRef"]
    del spec["target"]["canary"]["replicas"]  # sized from the stable
    spec["gates"] = []
    spec["steps"] = [{"weight": w, "hold": hold} for w in (25, 50, 100)]
    spec["analysis"] = {"interval": "1s"}
    stack.apply(plan)
    stack.start_controller()
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 60,
                   "the plan to see nothing to roll out")


def test_an_hpa_on_the_stable_keeps_its_replicas_and_sizes_the_canary(stack: Stack) -> None:
    stable, canary = stack.service, f"{stack.service}-canary"
    autoscaling: Any = client.AutoscalingV2Api(stack.api)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(stack.namespace, hpa(stable))
    autoscale(stack, stable, 3)  # the HPA grew the stable before the release
    start(stack, hold="3s")
    stack.release("v2")
    stack.wait_for(lambda: replicas(stack, canary) == 3, 30,
                   "the canary sized from the stable's current 3 replicas")
    stack.wait_for(lambda: stack.status().get("canaryWeight") == 25, 30, "the first step")
    autoscale(stack, stable, 4)  # load grows mid-run: the HPA scales the stable
    stack.wait_for(lambda: replicas(stack, canary) == 4, 30,
                   "the canary following the stable's 4 replicas")
    assert replicas(stack, stable) == 4
    stack.wait_for(lambda: stack.status().get("phase") == "Succeeded", 90, "Succeeded")
    # promotion copied the template and left the HPA's replicas alone
    assert replicas(stack, stable) == 4
    image = stack.deployment(stable)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":v2")
    assert "rolloutctl" not in replica_managers(stack, stable), replica_managers(stack, stable)
    # ...and the HPA keeps working after it
    autoscale(stack, stable, 5)
    holds(stack, lambda: replicas(stack, stable) == 5, 3, "the HPA's 5 replicas kept")
    target = autoscaling.read_namespaced_horizontal_pod_autoscaler(stable, stack.namespace)
    assert target.spec.scale_target_ref.name == stable
    assert "rolloutctl" not in replica_managers(stack, stable)


def test_an_hpa_on_the_canary_owns_its_replicas_once_the_controller_started_it(
    stack: Stack,
) -> None:
    stable, canary = stack.service, f"{stack.service}-canary"
    autoscaling: Any = client.AutoscalingV2Api(stack.api)
    for name in (stable, canary):
        autoscaling.create_namespaced_horizontal_pod_autoscaler(stack.namespace, hpa(name))
    start(stack, hold="5s")
    stack.release("v2")
    # an HPA never scales up from 0: the controller starts the canary at the stable's size
    stack.wait_for(lambda: replicas(stack, canary) == 2, 30, "the canary started at 2")
    stack.wait_for(lambda: stack.status().get("canaryWeight") == 25, 30, "the first step")
    autoscale(stack, canary, 3)  # the canary's HPA scales it
    holds(stack, lambda: replicas(stack, canary) == 3 and stack.status().get(
        "phase") == "Progressing", 3, "the canary HPA's 3 replicas kept while the run steps")
    stack.wait_for(lambda: stack.status().get("phase") == "Succeeded", 90, "Succeeded")
    # the run ends with the canary at 0 (its HPA is idle at 0) and the stable untouched
    assert replicas(stack, canary) == 0 and replicas(stack, stable) == 2
    assert "rolloutctl" not in replica_managers(stack, stable)
