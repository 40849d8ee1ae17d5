"""A Deployment's revision as the controller observes it is the one it always recorded.

``Workloads.observe`` reads Deployments as raw JSON (building the client's ``V1Deployment``
model on every pass cost more CPU than the request itself) and hashes the pod template in
its model form once per generation. Plans in flight carry revisions hashed from the model
form: the raw read must give the very same revision, or an upgraded controller would take
every running canary for a new release. Checked on the real API server, for a Deployment
with the fields users write (resources, probes, env, annotations on the template).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from kubernetes import client

from controller.adapters.kube.workloads import Workloads, template_revision, workload_state
from tests.harness.fixtures import TestCluster

pytestmark = pytest.mark.cluster


def deployment(name: str, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels,
                             "annotations": {"team": "shop",
                                             "kubectl.kubernetes.io/restartedAt": "now"}},
                "spec": {"containers": [{
                    "name": "app", "image": image,
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "MODE", "value": "canary"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                  "limits": {"memory": "128Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080},
                                       "periodSeconds": 5},
                }]},
            },
        },
    }


def model_revision(api: client.ApiClient, namespace: str, name: str) -> str:
    """The revision as the controller computed it before the raw read: from the model."""
    model = client.AppsV1Api(api).read_namespaced_deployment(name, namespace,
                                                             _request_timeout=30)
    return template_revision(api.sanitize_for_serialization(model))  # type: ignore[no-untyped-call]


def test_observed_revision_equals_the_model_revision_and_follows_template_changes(
    cluster: TestCluster, namespace: str
) -> None:
    api = cluster.api_client()
    apps: Any = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("checkout", "app:v1"),
                                      _request_timeout=30)
    workloads = Workloads(api)
    built: list[str] = []
    original = workloads._as_model_dict

    def counting(raw: bytes) -> dict[str, Any]:
        built.append("model")
        return original(raw)

    workloads._as_model_dict = counting  # type: ignore[method-assign]

    first = workloads.observe(namespace, "checkout")
    again = workloads.observe(namespace, "checkout")
    assert first.exists and first.revision == model_revision(api, namespace, "checkout")
    assert again.revision == first.revision
    assert built == ["model"]  # once for this generation, not per pass

    # Scaling moves the generation but not the template: same revision.
    apps.patch_namespaced_deployment_scale("checkout", namespace, {"spec": {"replicas": 2}},
                                           _request_timeout=30)
    scaled = workloads.observe(namespace, "checkout")
    assert scaled.revision == first.revision and scaled.replicas == 2

    # A new template is a new revision, again the model's.
    apps.patch_namespaced_deployment(
        "checkout", namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:v2"}]}}}},
        _request_timeout=30)
    changed = workloads.observe(namespace, "checkout")
    assert changed.revision != first.revision
    assert changed.revision == model_revision(api, namespace, "checkout")

    # Everything else the engine reads of the Deployment is what the model form of the same
    # read says. One snapshot feeds both paths: kwok is still making pods ready, so two
    # reads may differ. Why pods are not ready comes from other objects (the pods).
    raw = workloads._read(namespace, "checkout")
    assert raw is not None
    workloads._read = lambda _ns, _name: raw  # type: ignore[method-assign]
    observed = replace(workloads.observe(namespace, "checkout"), not_ready_reason="",
                       not_ready_message="")
    assert observed == workload_state(workloads._as_model_dict(raw))
    del workloads._read
    assert workloads.observe(namespace, "missing").exists is False
    api.close()  # type: ignore[no-untyped-call]
