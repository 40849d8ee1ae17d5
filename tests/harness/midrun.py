"""A RolloutPlan mid-run on an API server, as the reconciler leaves it, and a kubeconfig
only the official client can read: for the CLI's benchmark and its end-to-end tests.

The status is the one the real reconciler writes after 90 s of a run (step 2/4 at 25 %,
one gate passing, its decisions), driven on a virtual clock with fakes for the world, then
stored through the ``/status`` subresource like the controller does.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client


def mid_run_status(namespace: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A plan document, its policy and the status the reconciler wrote after 90 s of a run."""
    from prometheus_client import CollectorRegistry

    from controller.adapters.traffic.registry import NullRouter
    from controller.reconciler import PlanReconciler
    from controller.telemetry import Telemetry
    from tests.harness import builders as b
    from tests.harness.fakes import FakeClock, FakeWorkloads, MemoryStore

    steps = [(10, "1m"), (25, "10m"), (50, "10m"), (100, "10m")]
    plan = b.plan_doc(namespace=namespace, steps=steps, notifications=False)
    policy = b.policy_doc(namespace=namespace)
    store = MemoryStore()
    store.put(plan)
    store.put({**policy, "status": {"evaluatedAt": "2026-11-27T11:59:00Z", "frozen": False}})
    workloads = FakeWorkloads()
    workloads.set(namespace, "checkout", b.workload("rev-stable"))
    workloads.set(namespace, "checkout-canary", b.workload("rev-new", replicas=0))
    clock = FakeClock(b.T0)
    router = NullRouter()
    rec = PlanReconciler(
        store=store, workloads=workloads, router_for=lambda p: router,
        measure_gates=lambda p, *_: [b.gate_measurement(g.name, b.ratio(0.0002, 1500))
                                     for g in p.spec.gates],
        policy_lookup=lambda ns, n: store.get("SLOPolicy", ns, n), clock=clock,
        telemetry=Telemetry(CollectorRegistry()))
    end = clock.now() + timedelta(seconds=90)
    while clock.now() < end:
        clock.advance(min(max(rec.reconcile(f"{namespace}/checkout") or 5.0, 0.1), 5.0))
    written = store.get("RolloutPlan", namespace, "checkout")
    assert written is not None
    return plan, policy, written["status"]


def create_mid_run_plan(api: client.ApiClient, namespace: str) -> None:
    """The plan ``checkout`` (with its mid-run status) and its SLOPolicy ``platform`` in
    NAMESPACE, which exists."""
    from controller.adapters.kube.objects import ObjectStore
    from controller.api.types import GROUP, PLURALS, VERSION

    plan, policy, status = mid_run_status(namespace)
    custom = client.CustomObjectsApi(api)
    for doc in (policy, plan):
        body = {k: v for k, v in doc.items() if k != "status"}
        body["metadata"] = {"name": doc["metadata"]["name"]}
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[doc["kind"]],
                                               body, _request_timeout=30)
    store = ObjectStore(api)
    raw = store.get("RolloutPlan", namespace, "checkout")
    assert raw is not None
    store.write_status(raw, status)


def exec_plugin_kubeconfig(kubeconfig: Path, directory: Path) -> Path:
    """A copy of a token KUBECONFIG whose token is handed over by an exec credential plugin
    (a shell script in DIRECTORY): the same user, read only through the official client."""
    doc = yaml.safe_load(kubeconfig.read_text())
    user = doc["users"][0]["user"]
    credential = json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1",
                             "kind": "ExecCredential", "status": {"token": user.pop("token")}})
    plugin = directory / "credential-plugin"
    plugin.write_text(f"#!/bin/sh\ncat <<'EOF'\n{credential}\nEOF\n")
    plugin.chmod(0o700)
    user["exec"] = {"apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": str(plugin)}
    path = directory / "kubeconfig-exec"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path
