"""The chart's service account may do what the controller does, and the API server refuses
it everything else (403): Secrets it was not given, listing Secrets, deleting or creating
Deployments, touching Services, plan specs, other Leases, cluster-scoped objects, and, with
per-namespace RBAC, anything in a namespace it does not watch.

Each check runs as the token user ``system:serviceaccount:rolloutctl-system:rolloutctl``
against the chart's RBAC objects applied for real; positive controls in the same namespace
show the bindings are in force, so a 403 means "not granted", not "not bound yet".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.cluster import CONTROLLER_USER
from tests.harness.fixtures import TestCluster

from .test_chart_harness import (
    CONTROLLER_NAMESPACE,
    chart_rbac,
    ensure_namespace,
    eventually,
    status_of,
)

pytestmark = pytest.mark.cluster

MERGE = "application/merge-patch+json"
T = 30  # request timeout, seconds
LEASE = "rolloutctl-minimal-test"


def body(obj: dict[str, Any]) -> Any:
    """OBJ as a request body: the client sends dicts as they are."""
    return obj


def deployment(name: str) -> Any:  # a body for the client (raw JSON is fine)
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "app", "image": "registry.local/app:1"}]}}}}


def secret(name: str) -> Any:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {"token": f"{name}-value"}}


def plan() -> Any:
    return {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
            "metadata": {"name": "app"},
            "spec": {"target": {"stable": {"name": "app"}, "canary": {"name": "app-canary"}},
                     "traffic": {"replicas": {}}}}


@dataclass
class World:
    namespace: str  # watched
    other: str  # not watched (with per-namespace RBAC)
    admin: client.ApiClient
    sa: client.ApiClient
    per_namespace: bool

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.sa)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.sa)

    @property
    def hpas(self) -> client.AutoscalingV2Api:
        return client.AutoscalingV2Api(self.sa)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.sa)

    @property
    def leases(self) -> client.CoordinationV1Api:
        return client.CoordinationV1Api(self.sa)


def populate(admin: client.ApiClient, namespace: str) -> None:
    """What a user's namespace holds: two Secrets, a Deployment, a Service, a plan."""
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    for name in ("slack", "database"):
        core.create_namespaced_secret(namespace, secret(name), _request_timeout=T)
    apps.create_namespaced_deployment(namespace, deployment("app"), _request_timeout=T)
    core.create_namespaced_service(namespace, body({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"},
        "spec": {"selector": {"app": "app"}, "ports": [{"port": 80}]}}), _request_timeout=T)
    client.CustomObjectsApi(admin).create_namespaced_custom_object(
        "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans", plan(), _request_timeout=T)


@pytest.fixture(params=["per-namespace", "cluster-wide"])
def world(request: pytest.FixtureRequest, cluster: TestCluster, namespace: str,
          tmp_path: Path) -> Iterator[World]:
    admin = cluster.api_client()
    other = f"{namespace[:55]}-other"
    ensure_namespace(admin, other)
    ensure_namespace(admin, CONTROLLER_NAMESPACE)
    sa = cluster.api_client(CONTROLLER_USER)
    values: dict[str, Any] = {"notifications": {"secretNames": ["slack"]},
                              "leaderElection": {"leaseName": LEASE}}
    if request.param == "per-namespace":
        values["watchNamespaces"] = [namespace]
    try:
        populate(admin, namespace)
        populate(admin, other)
        with chart_rbac(cluster, tmp_path, values):
            w = World(namespace, other, admin, sa, request.param == "per-namespace")
            # the bindings are in force once the controller's own calls are allowed
            eventually(lambda: allowed_calls(w))
            yield w
    finally:
        client.CoreV1Api(admin).delete_namespace(other, _request_timeout=T)
        with contextlib.suppress(client.ApiException):
            client.CoordinationV1Api(admin).delete_namespaced_lease(
                LEASE, CONTROLLER_NAMESPACE, _request_timeout=T)
        sa.close()  # type: ignore[no-untyped-call]
        admin.close()  # type: ignore[no-untyped-call]


def allowed_calls(w: World) -> None:
    ns = w.namespace
    calls = {
        "get the named Secret": lambda: w.core.read_namespaced_secret("slack", ns),
        "list plans": lambda: w.custom.list_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", ns, "rolloutplans"),
        "list deployments": lambda: w.apps.list_namespaced_deployment(ns),
        "list pods": lambda: w.core.list_namespaced_pod(ns),
        "list HPAs": lambda: w.hpas.list_namespaced_horizontal_pod_autoscaler(ns),
        "patch a deployment": lambda: w.apps.patch_namespaced_deployment(
            "app", ns, {"metadata": {"annotations": {"touched": "yes"}}},
            _content_type=MERGE),
        "scale a deployment": lambda: w.apps.patch_namespaced_deployment_scale(
            "app", ns, {"spec": {"replicas": 0}}, _content_type=MERGE),
        "patch plan status": lambda: w.custom.patch_namespaced_custom_object_status(
            "rolloutctl.dev", "v1alpha1", ns, "rolloutplans", "app",
            {"status": {"message": "rbac test"}}, _content_type=MERGE),
        "read the Lease by name": lambda: w.leases.read_namespaced_lease(
            LEASE, CONTROLLER_NAMESPACE),
    }
    results = {what: status_of(call) for what, call in calls.items()}
    # the Lease may not exist yet: 404 means the read was allowed
    assert results == {**{what: 200 for what in calls}, "read the Lease by name":
                       results["read the Lease by name"]}, results
    assert results["read the Lease by name"] in (200, 404), results


def denied(w: World, namespace: str) -> dict[str, int]:
    """Calls the controller never makes, in NAMESPACE: what the API server answers."""
    event = body({"apiVersion": "v1", "kind": "Event",
             "metadata": {"generateName": "x-", "namespace": namespace},
             "involvedObject": {"kind": "Deployment", "name": "app", "namespace": namespace},
             "reason": "Test", "message": "m", "type": "Normal"})
    calls = {
        "get a Secret not named in the values": lambda: w.core.read_namespaced_secret(
            "database", namespace),
        "list Secrets": lambda: w.core.list_namespaced_secret(namespace),
        "watch Secrets": lambda: w.core.list_namespaced_secret(
            namespace, watch=True, timeout_seconds=1, _preload_content=False),
        "create a Secret": lambda: w.core.create_namespaced_secret(namespace, secret("mine")),
        "delete a Deployment": lambda: w.apps.delete_namespaced_deployment("app", namespace),
        "create a Deployment": lambda: w.apps.create_namespaced_deployment(
            namespace, deployment("intruder")),
        "replace a Deployment (update)": lambda: w.apps.replace_namespaced_deployment(
            "app", namespace, deployment("app")),
        "patch a Service": lambda: w.core.patch_namespaced_service(
            "app", namespace, {"metadata": {"labels": {"x": "y"}}}, _content_type=MERGE),
        "read a ConfigMap list": lambda: w.core.list_namespaced_config_map(namespace),
        "read a Pod's logs": lambda: w.core.read_namespaced_pod_log("p", namespace),
        "delete a Pod": lambda: w.core.delete_namespaced_pod("p", namespace),
        "patch an HPA": lambda: w.hpas.patch_namespaced_horizontal_pod_autoscaler(
            "app", namespace, {"spec": {"maxReplicas": 9}}, _content_type=MERGE),
        "create a Pod": lambda: w.core.create_namespaced_pod(namespace, body({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x"}]}})),
        "patch a plan's spec": lambda: w.custom.patch_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans", "app",
            {"spec": {"paused": True}}, _content_type=MERGE),
        "delete a plan": lambda: w.custom.delete_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans", "app"),
        "create a plan": lambda: w.custom.create_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans",
            {**plan(), "metadata": {"name": "other"}}),
        "delete an Event collection": lambda: w.core.delete_collection_namespaced_event(
            namespace),
        "create a Lease here": lambda: w.leases.create_namespaced_lease(namespace, body({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "grab"}, "spec": {}})),
    }
    if w.per_namespace and namespace != w.namespace:  # nothing at all in another namespace
        calls.update({
            "list plans elsewhere": lambda: w.custom.list_namespaced_custom_object(
                "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans"),
            "get the named Secret elsewhere": lambda: w.core.read_namespaced_secret(
                "slack", namespace),
            "patch a Deployment elsewhere": lambda: w.apps.patch_namespaced_deployment(
                "app", namespace, {"metadata": {"annotations": {"x": "y"}}},
                _content_type=MERGE),
            "create an Event elsewhere": lambda: w.core.create_namespaced_event(
                namespace, event),
        })
    return {what: status_of(call) for what, call in calls.items()}


def test_everything_else_is_forbidden_in_the_watched_namespace(world: World) -> None:
    answers = denied(world, world.namespace)
    assert answers == dict.fromkeys(answers, 403), answers


def test_another_namespace_is_out_of_reach(world: World) -> None:
    answers = denied(world, world.other)
    assert answers == dict.fromkeys(answers, 403), answers
    # with a ClusterRole the named Secret is readable in every namespace, and only it
    assert status_of(lambda: world.core.read_namespaced_secret("slack", world.other)) == (
        403 if world.per_namespace else 200)


def test_leases_only_by_name_in_the_controllers_namespace(world: World) -> None:
    leases = world.leases
    ns = CONTROLLER_NAMESPACE
    answers = {
        "list Leases": status_of(lambda: leases.list_namespaced_lease(ns)),
        "read another Lease": status_of(lambda: leases.read_namespaced_lease(
            "kube-scheduler", ns)),
        "patch another Lease": status_of(lambda: leases.patch_namespaced_lease(
            "someone-else", ns, {"spec": {"holderIdentity": "me"}}, _content_type=MERGE)),
        "delete the Lease": status_of(lambda: leases.delete_namespaced_lease(LEASE, ns)),
        "update the Lease (PUT)": status_of(lambda: leases.replace_namespaced_lease(
            LEASE, ns, body({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                             "metadata": {"name": LEASE}, "spec": {}}))),
    }
    assert answers == dict.fromkeys(answers, 403), answers
    # what the elector does is allowed: create, read, renew (merge patch), watch by name
    created = status_of(lambda: leases.create_namespaced_lease(ns, body({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": LEASE},
        "spec": {"holderIdentity": "rbac-test", "leaseDurationSeconds": 15}})))
    assert created in (200, 409)
    assert status_of(lambda: leases.read_namespaced_lease(LEASE, ns)) == 200
    assert status_of(lambda: leases.patch_namespaced_lease(
        LEASE, ns, {"spec": {"holderIdentity": None}}, _content_type=MERGE)) == 200
    assert status_of(lambda: leases.list_namespaced_lease(
        ns, field_selector=f"metadata.name={LEASE}", watch=True, timeout_seconds=1,
        _preload_content=False)) == 200
    assert status_of(lambda: leases.list_namespaced_lease(
        ns, field_selector="metadata.name=someone-else", watch=True, timeout_seconds=1,
        _preload_content=False)) == 403


def test_nothing_cluster_scoped(world: World) -> None:
    core = world.core
    rbac = client.RbacAuthorizationV1Api(world.sa)
    answers = {
        "list namespaces": status_of(lambda: core.list_namespace()),
        "list nodes": status_of(lambda: core.list_node()),
        "read a CRD": status_of(lambda: client.ApiextensionsV1Api(world.sa)
                                .read_custom_resource_definition("rolloutplans.rolloutctl.dev")),
        "bind itself cluster-admin": status_of(lambda: rbac.create_cluster_role_binding(body({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "rolloutctl-escalation"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "rolloutctl",
                          "namespace": CONTROLLER_NAMESPACE}]}))),
        "list Secrets everywhere": status_of(lambda: core.list_secret_for_all_namespaces()),
    }
    assert answers == dict.fromkeys(answers, 403), answers
