"""A plan can do only what its author may do (the chart's author-check admission policies,
on by default) on the real API server, with two identities set up by RBAC in the test and
requests made as each through impersonation:

- alice may patch the Deployments and the HTTPRoute her plan names and get its Slack
  Secret: her plan is stored;
- mallory may write plans and policies but not patch Deployment ``payments``, the route or
  Ingress of another team, nor read the platform's Slack Secret: each plan or policy naming
  one of those is refused, and the message names the rule, the missing permission (verb,
  resource, name, the field that named it) and the fix. Changing a plan's target or traffic
  is checked too; other changes (a pause) are not checked again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness.fixtures import TestCluster
from tests.harness.stack import slo_policy

from .test_chart_harness import apply, chart, delete, documents, eventually

pytestmark = pytest.mark.cluster

T = 30
GROUP, VERSION = "rolloutctl.dev", "v1alpha1"
MERGE = "application/merge-patch+json"
ALICE, MALLORY = "alice@example.com", "mallory@example.com"
ADMISSION_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def plan(name: str, *, stable: str = "checkout", canary: str = "checkout-canary",
         traffic: dict[str, Any] | None = None, secret: str | None = None) -> Any:
    spec: dict[str, Any] = {
        "target": {"stable": {"name": stable}, "canary": {"name": canary}},
        "traffic": traffic or {"gatewayAPI": {"httpRoute": "checkout", "stableBackend": stable,
                                              "canaryBackend": canary}},
    }
    if secret:
        spec["notifications"] = {"slack": {"channel": "#deploys",
                                           "tokenSecretRef": {"name": secret, "key": "token"}}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RolloutPlan",
            "metadata": {"name": name}, "spec": spec}


def role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name}, "rules": rules}


def binding(name: str, user: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": user}]}


# both write plans and policies; only alice may change what her plan names
AUTHORING = {"apiGroups": [GROUP], "resources": ["rolloutplans", "slopolicies"],
             "verbs": ["get", "list", "create", "update", "patch"]}
ALICE_RULES = [
    AUTHORING,
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"],
     "resourceNames": ["checkout", "checkout-canary"]},
    {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"],
     "verbs": ["patch"], "resourceNames": ["checkout"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["slack"]},
]
MALLORY_RULES = [
    AUTHORING,
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"],
     "resourceNames": ["checkout", "checkout-canary"]},
]


@dataclass
class Authors:
    namespace: str
    admin: client.ApiClient
    as_user: dict[str, client.ApiClient]

    def create(self, user: str, body: Any, *, plural: str = "rolloutplans",
               dry_run: bool = True) -> tuple[int, str]:
        """Create BODY as USER: (HTTP status, the server's message). DRY_RUN: admission
        judges it, nothing is stored."""
        api = client.CustomObjectsApi(self.as_user[user])
        return attempt(lambda: api.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body, dry_run="All" if dry_run else None,
            _request_timeout=T))

    def patch(self, user: str, name: str, spec: dict[str, Any]) -> tuple[int, str]:
        api = client.CustomObjectsApi(self.as_user[user])
        return attempt(lambda: api.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "rolloutplans", name, {"spec": spec},
            _content_type=MERGE, _request_timeout=T))

    def stored(self, name: str) -> dict[str, Any]:
        obj: Any = client.CustomObjectsApi(self.admin).get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "rolloutplans", name, _request_timeout=T)
        return dict(obj)


def attempt(call: Callable[[], Any]) -> tuple[int, str]:
    try:
        call()
    except ApiException as exc:
        body = json.loads(exc.body) if exc.body else {}
        return int(exc.status or 0), str(body.get("message", ""))
    return 200, ""


def impersonating(cluster: TestCluster, user: str) -> client.ApiClient:
    """The admin's client, acting as USER (Impersonate-User): RBAC and admission see USER."""
    api = cluster.api_client()
    api.set_default_header("Impersonate-User", user)
    return api


@pytest.fixture
def authors(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Authors]:
    values = {"admission": {
        # this test's namespace only: other tests' plans are never judged by this copy
        "authorChecks": {"namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        "platformPolicies": {"enabled": False},
    }}
    docs = documents(chart(tmp_path, values, release=f"pa-{namespace[-6:]}"), ADMISSION_KINDS)
    assert {d["metadata"]["name"].split("-rolloutctl-")[1] for d in docs} == {
        "plan-author", "policy-author"}
    rbac = [role("alice", ALICE_RULES), binding("alice", ALICE),
            role("mallory", MALLORY_RULES), binding("mallory", MALLORY)]
    admin = cluster.api_client()
    users = {user: impersonating(cluster, user) for user in (ALICE, MALLORY)}
    a = Authors(namespace, admin, users)
    try:
        apply(cluster, [{**d, "metadata": {**d["metadata"], "namespace": namespace}}
                        for d in rbac])
        apply(cluster, docs)
        # in force once the API server's informers have the policy and the roles
        eventually(lambda: _allowed(a.create(ALICE, plan("probe", secret="slack"))),
                   timeout=120)
        eventually(lambda: _refused(a.create(MALLORY, plan("probe", canary="payments",
                                                           traffic={"replicas": {}}))),
                   timeout=120)
        yield a
    finally:
        delete(cluster, docs)
        for api in (admin, *users.values()):
            api.close()  # type: ignore[no-untyped-call]


def _allowed(result: tuple[int, str]) -> None:
    assert result == (200, ""), result


def _refused(result: tuple[int, str]) -> None:
    assert result[0] == 403, result


def test_a_plan_naming_only_what_its_author_may_change_is_stored(authors: Authors) -> None:
    assert authors.create(ALICE, plan("checkout", secret="slack"), dry_run=False) == (200, "")
    assert authors.stored("checkout")["spec"]["target"]["canary"]["name"] == "checkout-canary"


def test_a_deployment_the_author_may_not_patch_is_refused_naming_it(authors: Authors) -> None:
    status, message = authors.create(MALLORY, plan("takeover", canary="payments",
                                                   traffic={"replicas": {}}))
    assert status == 403
    assert "rule PlanAuthorMayPatch" in message
    assert (f"{MALLORY} may not patch deployments.apps \"payments\" (spec.target.canary.name)"
            in message)
    assert '"checkout"' not in message  # what she may patch is not named
    assert f"kubectl auth can-i patch deployments.apps/payments -n {authors.namespace}" in message


@pytest.mark.parametrize(("traffic", "missing"), [
    ({"gatewayAPI": {"httpRoute": "payments", "stableBackend": "checkout",
                     "canaryBackend": "checkout-canary"}},
     'patch httproutes.gateway.networking.k8s.io "payments" '
     "(spec.traffic.gatewayAPI.httpRoute)"),
    ({"istio": {"virtualService": "payments", "route": "primary", "stableHost": "checkout",
                "canaryHost": "checkout-canary"}},
     'patch virtualservices.networking.istio.io "payments" (spec.traffic.istio.virtualService)'),
    ({"nginx": {"ingress": "payments", "canaryService": "checkout-canary"}},
     'patch ingresses.networking.k8s.io "payments" (spec.traffic.nginx.ingress)'),
], ids=["gateway-api", "istio", "nginx"])
def test_a_route_the_author_may_not_patch_is_refused_naming_it(
        traffic: dict[str, Any], missing: str, authors: Authors) -> None:
    status, message = authors.create(MALLORY, plan("reroute", traffic=traffic))
    assert status == 403
    assert "rule PlanAuthorMayPatch" in message and missing in message
    assert "deployments" not in message  # her Deployments are fine
    # alice may patch her route, not another team's
    assert authors.create(ALICE, plan("reroute", traffic=traffic))[0] == 403


def test_a_secret_the_author_may_not_read_is_refused_naming_it(authors: Authors) -> None:
    status, message = authors.create(MALLORY, plan("leak", traffic={"replicas": {}},
                                                   secret="platform-slack"))
    assert status == 403
    assert "rule AuthorMayReadSecret" in message
    assert (f'{MALLORY} may not get secrets "platform-slack" '
            "(spec.notifications.slack.tokenSecretRef.name)") in message
    # the same plan without that Secret is hers to write
    assert authors.create(MALLORY, plan("leak", traffic={"replicas": {}})) == (200, "")


def test_changing_the_target_of_a_stored_plan_is_checked_other_changes_are_not(
        authors: Authors) -> None:
    assert authors.create(ALICE, plan("checkout", traffic={"replicas": {}}, secret="slack"),
                          dry_run=False) == (200, "")
    # mallory may edit plans, but not make this one act on what she may not
    status, message = authors.patch(MALLORY, "checkout", {"target": {"canary": {
        "name": "payments"}}})
    assert status == 403 and 'may not patch deployments.apps "payments"' in message
    status, message = authors.patch(MALLORY, "checkout", {"notifications": {"slack": {
        "tokenSecretRef": {"name": "platform-slack", "key": "token"}}}})
    assert status == 403 and 'may not get secrets "platform-slack"' in message
    stored = authors.stored("checkout")["spec"]
    assert stored["target"]["canary"]["name"] == "checkout-canary"
    assert stored["notifications"]["slack"]["tokenSecretRef"]["name"] == "slack"
    # a change that names nothing new is not judged again (the Secret is alice's to name)
    assert authors.patch(MALLORY, "checkout", {"paused": True}) == (200, "")
    # a change to what it names is judged as a whole: the plan would then be hers too
    status, message = authors.patch(MALLORY, "checkout", {"target": {"stable": {
        "name": "checkout-canary"}}})
    assert status == 403 and 'may not get secrets "slack"' in message


def test_an_slo_policy_notifying_through_a_secret_the_author_may_not_read_is_refused(
        authors: Authors) -> None:
    notify = {"notifications": {"slack": {"channel": "#freeze", "tokenSecretRef": {
        "name": "platform-slack", "key": "token"}}}}
    status, message = authors.create(
        MALLORY, slo_policy("mine", "checkout", "http://127.0.0.1:9", notify),
        plural="slopolicies")
    assert status == 403
    assert "rule AuthorMayReadSecret: SLOPolicy" in message
    assert (f'{MALLORY} may not get secrets "platform-slack" '
            "(spec.notifications.slack.tokenSecretRef.name)") in message
    notify["notifications"]["slack"]["tokenSecretRef"]["name"] = "slack"
    assert authors.create(ALICE, slo_policy("mine", "checkout", "http://127.0.0.1:9", notify),
                          plural="slopolicies") == (200, "")
    # a policy without notifications names no Secret
    assert authors.create(MALLORY, slo_policy("plain", "checkout", "http://127.0.0.1:9"),
                          plural="slopolicies") == (200, "")
