"""The chart's optional release-freeze ValidatingAdmissionPolicy on the real API server:
while the namespace's SLOPolicy has ``status.frozen: true`` (written through the status
subresource, as the controller does), a change to the pod template of a Deployment labelled
``rolloutctl.dev/target: "true"`` is denied with a message naming the freeze and the
break-glass annotation; the annotation lets it through; after the freeze it goes through;
unlabelled Deployments, scaling and the controller itself are never stopped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness.cluster import CONTROLLER_USER
from tests.harness.fixtures import TestCluster
from tests.harness.stack import slo_policy

from .test_chart_harness import (
    CONTROLLER_NAMESPACE,
    RBAC_KINDS,
    apply,
    chart,
    delete,
    documents,
    ensure_namespace,
    eventually,
)

pytestmark = pytest.mark.cluster

T = 30
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
OVERRIDE = "rolloutctl.dev/override-freeze"


def deployment(name: str, labels: dict[str, str]) -> Any:  # a raw JSON body
    selector = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {**selector, **labels}},
            "spec": {"replicas": 0, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": selector}, "spec": {"containers": [
                         {"name": "app", "image": f"registry.local/{name}:v1"}]}}}}


@dataclass
class Freeze:
    namespace: str
    admin: client.ApiClient

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.admin)

    def set_frozen(self, frozen: bool) -> None:
        status = {"frozen": frozen, "reason": "BudgetExhausted" if frozen else "",
                  "budgetRemaining": 8.0 if frozen else 20.0}
        client.CustomObjectsApi(self.admin).patch_namespaced_custom_object_status(
            "rolloutctl.dev", "v1alpha1", self.namespace, "slopolicies", "platform",
            {"status": status}, _content_type=MERGE, _request_timeout=T)

    def release(self, name: str, image: str, *, api: client.ApiClient | None = None,
                annotations: dict[str, str | None] | None = None, dry_run: bool = False
                ) -> tuple[int, str]:
        """A new pod template for Deployment NAME: (HTTP status, the server's message).
        DRY_RUN: admission judges it, nothing is stored."""
        patch: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": f"registry.local/{name}:{image}"}]}}}}
        if annotations is not None:
            patch["metadata"] = {"annotations": annotations}
        return self._attempt(lambda: client.AppsV1Api(api or self.admin)
                             .patch_namespaced_deployment(name, self.namespace, patch,
                                                          dry_run="All" if dry_run else None,
                                                          _content_type=STRATEGIC,
                                                          _request_timeout=T))

    def scale(self, name: str, replicas: int) -> tuple[int, str]:
        return self._attempt(lambda: self.apps.patch_namespaced_deployment(
            name, self.namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE,
            _request_timeout=T))

    def image(self, name: str) -> str:
        d: Any = self.apps.read_namespaced_deployment(name, self.namespace, _request_timeout=T)
        return str(d.spec.template.spec.containers[0].image).rsplit(":", 1)[1]

    @staticmethod
    def _attempt(call: Any) -> tuple[int, str]:
        try:
            call()
        except ApiException as exc:
            body = json.loads(exc.body) if exc.body else {}
            return int(exc.status or 0), str(body.get("message", ""))
        return 200, ""


@pytest.fixture
def freeze(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Freeze]:
    values = {
        "watchNamespaces": [namespace],  # lets the controller's identity patch Deployments
        "admission": {"freezeEnforcement": {
            "enabled": True, "policyName": "platform",
            # this test's namespace only: other tests' Deployments are never affected
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        }},
    }
    docs = documents(chart(tmp_path, values), (
        *RBAC_KINDS, "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"))
    admin = cluster.api_client()
    f = Freeze(namespace, admin)
    try:
        client.CustomObjectsApi(admin).create_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", namespace, "slopolicies",
            slo_policy("platform", "checkout", "http://127.0.0.1:9"), _request_timeout=T)
        f.apps.create_namespaced_deployment(
            namespace, deployment("checkout", {"rolloutctl.dev/target": "true"}),
            _request_timeout=T)
        f.apps.create_namespaced_deployment(
            namespace, deployment("worker", {}), _request_timeout=T)
        ensure_namespace(admin, CONTROLLER_NAMESPACE)  # the chart's ServiceAccount lives there
        apply(cluster, docs)
        f.set_frozen(True)
        # the policy is in force once the API server's informers have it (seconds; minutes
        # on a machine whose two cores are busy with other clusters)
        eventually(lambda: _denied(f.release("checkout", "probe", dry_run=True)), timeout=180)
        assert f.image("checkout") == "v1"
        yield f
    finally:
        delete(cluster, docs)
        admin.close()  # type: ignore[no-untyped-call]


def _denied(result: tuple[int, str]) -> None:
    assert result[0] == 403, result


def test_a_template_change_is_denied_while_frozen_with_the_way_out(freeze: Freeze) -> None:
    status, message = freeze.release("checkout", "v2")
    assert status == 403
    assert "ValidatingAdmissionPolicy 'rolloutctl-release-freeze'" in message
    assert (f"releases in namespace {freeze.namespace} are frozen by SLOPolicy platform "
            "(BudgetExhausted)") in message
    assert "changes to the pod template of Deployment checkout are denied" in message
    assert f"{OVERRIDE}=<why>" in message
    assert freeze.image("checkout") == "v1"


def test_scaling_and_unlabelled_deployments_are_never_stopped(freeze: Freeze) -> None:
    assert freeze.scale("checkout", 2) == (200, "")  # not the pod template
    assert freeze.release("worker", "v2") == (200, "")
    assert freeze.image("worker") == "v2"


def test_the_override_annotation_lets_a_change_through(freeze: Freeze) -> None:
    assert freeze.release("checkout", "v2", annotations={OVERRIDE: ""})[0] == 403
    assert freeze.release("checkout", "v2", annotations={OVERRIDE: "INC-42 hotfix"}) == (200, "")
    assert freeze.image("checkout") == "v2"
    # once the annotation is gone, the freeze holds again
    assert freeze.release("checkout", "v3", annotations={OVERRIDE: None})[0] == 403
    assert freeze.image("checkout") == "v2"


def test_after_the_freeze_changes_go_through(freeze: Freeze) -> None:
    freeze.set_frozen(False)
    eventually(lambda: _allowed(freeze.release("checkout", "v2", dry_run=True)), timeout=15)
    assert freeze.release("checkout", "v2") == (200, "")
    assert freeze.image("checkout") == "v2"
    freeze.set_frozen(True)
    eventually(lambda: _denied(freeze.release("checkout", "v3", dry_run=True)), timeout=15)
    assert freeze.image("checkout") == "v2"


def test_a_namespace_without_the_policy_is_not_affected(freeze: Freeze) -> None:
    client.CustomObjectsApi(freeze.admin).delete_namespaced_custom_object(
        "rolloutctl.dev", "v1alpha1", freeze.namespace, "slopolicies", "platform",
        _request_timeout=T)
    eventually(lambda: _allowed(freeze.release("checkout", "v2", dry_run=True)), timeout=15)
    assert freeze.release("checkout", "v2") == (200, "")
    assert freeze.image("checkout") == "v2"


def test_the_controller_itself_is_exempt(freeze: Freeze, cluster: TestCluster) -> None:
    # promotion (copyToStable) is the controller's own decision, made with the freeze in view
    controller = cluster.api_client(CONTROLLER_USER)
    try:
        # (RBAC for it may take a moment: the chart's Role was just written)
        eventually(lambda: _allowed(freeze.release("checkout", "v2", api=controller,
                                                   dry_run=True)))
        assert freeze.release("checkout", "v2", api=controller) == (200, "")
        assert freeze.image("checkout") == "v2"
        assert freeze.release("checkout", "v3")[0] == 403  # anyone else still is stopped
    finally:
        controller.close()  # type: ignore[no-untyped-call]


def _allowed(result: tuple[int, str]) -> None:
    assert result == (200, ""), result
