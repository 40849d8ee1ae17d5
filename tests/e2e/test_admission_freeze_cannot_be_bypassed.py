"""The release freeze cannot be bypassed through admission (the chart's freeze policy and its
platform-policy guard, on the real API server). A tenant (RBAC set up here: may change
Deployments and SLOPolicies in the namespace; requests made through impersonation) tries
each known way around the freeze and each is refused with a message naming the rule:

- OverrideNeedsPermission: the break-glass annotation, set by the tenant in the same request
  (someone bound to the chart's freeze-override ClusterRole gets through);
- FrozenTargetLabelRemoved: removing the ``rolloutctl.dev/target`` label first (alone, and
  together with a template change);
- FrozenTargetCreate: deleting the Deployment and creating it again with a new template;
- PlatformPolicyEditors: editing the platform SLOPolicy (an override, its Prometheus URL),
  removing its platform label, deleting it, or labelling a policy of one's own as platform
  (an editor named in the chart's values may).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.fixtures import TestCluster
from tests.harness.stack import slo_policy

from .test_admission_plan_author_may_do_only_what_it_names import (
    attempt,
    binding,
    impersonating,
    role,
)
from .test_admission_release_freeze import OVERRIDE, Freeze, deployment
from .test_chart_harness import (
    CONTROLLER_NAMESPACE,
    apply,
    chart,
    delete,
    documents,
    ensure_namespace,
    eventually,
)

pytestmark = pytest.mark.cluster

T = 30
GROUP, VERSION = "rolloutctl.dev", "v1alpha1"
MERGE = "application/merge-patch+json"
TENANT, BREAKER, PLATFORM = "tenant@example.com", "oncall@example.com", "platform@example.com"
PLATFORM_LABEL = {"rolloutctl.dev/platform": "true"}
TENANT_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "list", "create", "update", "patch", "delete"]},
    {"apiGroups": [GROUP], "resources": ["slopolicies", "rolloutplans"],
     "verbs": ["get", "list", "create", "update", "patch", "delete"]},
]


@dataclass
class World:
    freeze: Freeze
    tenant: client.ApiClient
    breaker: client.ApiClient
    platform: client.ApiClient

    @property
    def namespace(self) -> str:
        return self.freeze.namespace

    def policy_patch(self, api: client.ApiClient, name: str, body: dict[str, Any]
                     ) -> tuple[int, str]:
        return attempt(lambda: client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "slopolicies", name, body, _content_type=MERGE,
            _request_timeout=T))

    def policy(self, name: str) -> dict[str, Any]:
        obj: Any = client.CustomObjectsApi(self.freeze.admin).get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "slopolicies", name, _request_timeout=T)
        return dict(obj)


@pytest.fixture
def world(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[World]:
    only_here = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    values = {
        "watchNamespaces": [namespace],
        "admission": {
            "freezeEnforcement": {"enabled": True, "policyName": "platform",
                                  "namespaceSelector": only_here},
            "platformPolicies": {"namespaceSelector": only_here,
                                 "editors": {"users": [PLATFORM], "groups": []}},
            "authorChecks": {"enabled": False},
        },
    }
    release = f"fz-{namespace[-6:]}"
    docs = documents(chart(tmp_path, values, release=release), (
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ClusterRole"))
    docs = [d for d in docs if d["kind"] != "ClusterRole"
            or d["metadata"]["name"].endswith("-freeze-override")]
    override_role = f"{release}-rolloutctl-freeze-override"
    rbac = [{**d, "metadata": {**d["metadata"], "namespace": namespace}} for d in (
        role("tenant", TENANT_RULES), binding("tenant", TENANT),
        role("oncall", TENANT_RULES), binding("oncall", BREAKER),
        role("platform", TENANT_RULES), binding("platform", PLATFORM),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "oncall-breaks-glass"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": override_role},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                       "name": BREAKER}]})]
    admin = cluster.api_client()
    apis = [impersonating(cluster, user) for user in (TENANT, BREAKER, PLATFORM)]
    w = World(Freeze(namespace, admin), *apis)
    custom = client.CustomObjectsApi(admin)
    try:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "slopolicies",
            _labelled(slo_policy("platform", "checkout", "http://127.0.0.1:9")),
            _request_timeout=T)
        w.freeze.apps.create_namespaced_deployment(
            namespace, deployment("checkout", {"rolloutctl.dev/target": "true"}),
            _request_timeout=T)
        ensure_namespace(admin, CONTROLLER_NAMESPACE)
        apply(cluster, rbac)
        apply(cluster, docs)
        w.freeze.set_frozen(True)
        # in force once the API server's informers have the policies and the roles
        eventually(lambda: _refused(w.freeze.release("checkout", "probe", api=w.tenant,
                                                     dry_run=True)), timeout=180)
        eventually(lambda: _refused(w.policy_patch(w.tenant, "platform", {
            "spec": {"evaluationInterval": "30s"}})), timeout=180)
        yield w
    finally:
        delete(cluster, docs)
        for api in (admin, *apis):
            api.close()  # type: ignore[no-untyped-call]


def _labelled(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"]["labels"] = dict(PLATFORM_LABEL)
    return body


def _refused(result: tuple[int, str]) -> None:
    assert result[0] == 403, result


def test_the_override_annotation_counts_only_with_the_override_permission(world: World
                                                                         ) -> None:
    status, message = world.freeze.release("checkout", "v2", api=world.tenant,
                                           annotations={OVERRIDE: "my own hotfix"})
    assert status == 403
    assert "rule OverrideNeedsPermission" in message
    assert (f"{TENANT} is not" in message
            and "update slopolicies/override-freeze of SLOPolicy platform" in message)
    assert world.freeze.image("checkout") == "v1"
    # bound to the chart's freeze-override ClusterRole, the on-call engineer breaks the glass
    eventually(lambda: _ok(world.freeze.release("checkout", "v2", api=world.breaker,
                                                annotations={OVERRIDE: "INC-7"},
                                                dry_run=True)))
    assert world.freeze.release("checkout", "v2", api=world.breaker,
                                annotations={OVERRIDE: "INC-7"}) == (200, "")
    assert world.freeze.image("checkout") == "v2"
    # the annotation left behind does not count for the tenant's next change
    status, message = world.freeze.release("checkout", "v3", api=world.tenant)
    assert status == 403 and "rule OverrideNeedsPermission" in message
    assert world.freeze.image("checkout") == "v2"


def test_removing_the_target_label_while_frozen_is_refused(world: World) -> None:
    apps = client.AppsV1Api(world.tenant)
    for label in (None, "false"):
        status, message = attempt(lambda label=label: apps.patch_namespaced_deployment(
            "checkout", world.namespace, {"metadata": {"labels": {
                "rolloutctl.dev/target": label}}}, _content_type=MERGE, _request_timeout=T))
        assert status == 403, label
        assert "rule FrozenTargetLabelRemoved" in message
        assert "removing or changing the label rolloutctl.dev/target of Deployment checkout" \
            in message
    # in the same request as a new template: the template rule
    status, message = attempt(lambda: apps.patch_namespaced_deployment(
        "checkout", world.namespace, {"metadata": {"labels": {"rolloutctl.dev/target": None}},
                                      "spec": {"template": {"spec": {"containers": [
                                          {"name": "app", "image": "registry.local/x:v2"}]}}}},
        _content_type="application/strategic-merge-patch+json", _request_timeout=T))
    assert status == 403 and "rule FrozenTemplateChange" in message
    labels = world.freeze.apps.read_namespaced_deployment(
        "checkout", world.namespace, _request_timeout=T).metadata.labels
    assert labels["rolloutctl.dev/target"] == "true"
    assert world.freeze.image("checkout") == "v1"


def test_deleting_and_recreating_a_target_while_frozen_is_refused(world: World) -> None:
    apps = client.AppsV1Api(world.tenant)
    apps.delete_namespaced_deployment("checkout", world.namespace, _request_timeout=T)
    recreated = deployment("checkout", {"rolloutctl.dev/target": "true"})
    recreated["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.local/x:v2"
    status, message = attempt(lambda: apps.create_namespaced_deployment(
        world.namespace, recreated, _request_timeout=T))
    assert status == 403
    assert "rule FrozenTargetCreate" in message
    assert "creating Deployment checkout labelled rolloutctl.dev/target=true is denied" \
        in message
    # and with a break-glass annotation of her own making, the override rule
    recreated["metadata"]["annotations"] = {OVERRIDE: "trust me"}
    status, message = attempt(lambda: apps.create_namespaced_deployment(
        world.namespace, recreated, _request_timeout=T))
    assert status == 403 and "rule OverrideNeedsPermission" in message


def test_only_named_editors_may_change_the_platform_policy(world: World) -> None:
    attempts = {
        "an override of her own": {"spec": {"overrides": [{
            "id": "mine", "reason": "ship it", "expires": "2099-01-01T00:00:00Z"}]}},
        "a Prometheus that reports a healthy budget": {"spec": {"prometheus": {
            "url": "http://127.0.0.1:1"}}},
        "its platform label removed": {"metadata": {"labels": {
            "rolloutctl.dev/platform": None}}},
    }
    for what, body in attempts.items():
        status, message = world.policy_patch(world.tenant, "platform", body)
        assert status == 403, what
        assert "rule PlatformPolicyEditors" in message
        assert (f"SLOPolicy {world.namespace}/platform is a platform policy" in message
                and "admission.platformPolicies.editors" in message
                and f"{TENANT} is not one of them" in message)
    status, message = attempt(lambda: client.CustomObjectsApi(world.tenant)
                              .delete_namespaced_custom_object(
                                  GROUP, VERSION, world.namespace, "slopolicies", "platform",
                                  _request_timeout=T))
    assert status == 403 and "rule PlatformPolicyEditors" in message
    policy = world.policy("platform")
    assert policy["metadata"]["labels"] == PLATFORM_LABEL
    assert policy["spec"]["prometheus"]["url"] == "http://127.0.0.1:9"
    assert "overrides" not in policy["spec"] or not policy["spec"]["overrides"]
    # a policy of her own is hers, but she cannot make it a platform policy
    custom = client.CustomObjectsApi(world.tenant)
    status, message = attempt(lambda: custom.create_namespaced_custom_object(
        GROUP, VERSION, world.namespace, "slopolicies",
        _labelled(slo_policy("rogue", "checkout", "http://127.0.0.1:1")), _request_timeout=T))
    assert status == 403 and "rule PlatformPolicyEditors" in message
    custom.create_namespaced_custom_object(
        GROUP, VERSION, world.namespace, "slopolicies",
        slo_policy("mine", "checkout", "http://127.0.0.1:1"), _request_timeout=T)
    status, message = world.policy_patch(world.tenant, "mine",
                                         {"metadata": {"labels": PLATFORM_LABEL}})
    assert status == 403 and "rule PlatformPolicyEditors" in message
    # the editor named in the chart's values may
    assert world.policy_patch(world.platform, "platform",
                              {"spec": {"evaluationInterval": "30s"}}) == (200, "")
    assert world.policy("platform")["spec"]["evaluationInterval"] == "30s"


def _ok(result: tuple[int, str]) -> None:
    assert result == (200, ""), result
