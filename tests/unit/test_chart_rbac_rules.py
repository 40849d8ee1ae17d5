"""The chart grants the controller exactly the API calls it makes, nothing more: no
wildcard, Secrets only by name, the Lease only by name and only in the release namespace,
and nothing cluster-wide when it watches given namespaces.

The table is the product's own (controller/rbac.py: the controller's API calls, which
`rolloutctl doctor` checks too); the chart keeps literal YAML and must grant exactly it. The
end-to-end tests (tests/e2e/test_rbac_*.py) prove on the real API server that these rules
are enough for a rollout and that everything else is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart_harness import CHART, RELEASE_NAMESPACE, by_kind, container, env, one, render

from controller import rbac
from controller.api.plan import RouterKind

Rule = tuple[str, str, tuple[str, ...], tuple[str, ...]]  # group, resource, verbs, names

#: the chart's default notifications.secretNames
SECRET_NAMES = tuple(yaml.safe_load((CHART / "values.yaml").read_text())
                     ["notifications"]["secretNames"])


def expected(routers: Iterable[RouterKind] | None = None,
             secret_names: tuple[str, ...] = SECRET_NAMES) -> set[Rule]:
    """controller.rbac's rules of a watched namespace, as the chart writes them."""
    rules = {(r.group, r.resource, r.verbs, ()) for r in rbac.namespaced(routers)}
    if secret_names:
        s = rbac.SECRETS
        rules.add((s.group, s.resource, s.verbs, secret_names))
    return rules


EXPECTED = expected()


def flatten(rules: list[dict[str, Any]]) -> set[Rule]:
    out = set()
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.add((group, resource, tuple(rule["verbs"]),
                         tuple(rule.get("resourceNames", ()))))
    return out


def test_by_default_one_cluster_role_holds_exactly_the_calls_the_controller_makes(
    tmp_path: Path,
) -> None:
    docs = render(tmp_path)
    role = one(docs, "ClusterRole")
    assert flatten(role["rules"]) == EXPECTED
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rolloutctl",
                                    "namespace": RELEASE_NAMESPACE}]
    account = one(docs, "ServiceAccount")["metadata"]
    assert (account["name"], account["namespace"]) == ("rolloutctl", RELEASE_NAMESPACE)


def test_no_wildcard_anywhere(tmp_path: Path) -> None:
    docs = render(tmp_path) + render(tmp_path, {"watchNamespaces": ["shop"]})
    for doc in docs:
        for rule in doc.get("rules", []):
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), (doc["metadata"]["name"], rule)


def test_watched_namespaces_get_a_role_each_and_nothing_cluster_wide(tmp_path: Path) -> None:
    docs = render(tmp_path, {"watchNamespaces": ["shop", "web"]})
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    roles = {r["metadata"]["namespace"]: r for r in by_kind(docs, "Role")
             if r["metadata"]["namespace"] != RELEASE_NAMESPACE}
    assert set(roles) == {"shop", "web"}
    for role in roles.values():
        assert flatten(role["rules"]) == EXPECTED
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(docs, "RoleBinding")
                if b["metadata"]["namespace"] != RELEASE_NAMESPACE}
    assert set(bindings) == {"shop", "web"}
    for ns, binding in bindings.items():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == roles[ns]["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rolloutctl",
                                        "namespace": RELEASE_NAMESPACE}]
    # and the controller watches just those
    assert "--namespace=shop" in container(docs)["args"]
    assert "--namespace=web" in container(docs)["args"]


def test_secrets_are_readable_only_by_the_names_in_the_values(tmp_path: Path) -> None:
    docs = render(tmp_path, {"notifications": {"secretNames": ["slack-bot", "pagerduty"]}})
    secrets = [r for r in flatten(one(docs, "ClusterRole")["rules"]) if r[1] == "secrets"]
    assert secrets == [("", "secrets", ("get",), ("slack-bot", "pagerduty"))]


def test_no_secret_names_means_no_secret_at_all(tmp_path: Path) -> None:
    # an empty resourceNames list would grant every Secret: the rule must go entirely
    docs = render(tmp_path, {"notifications": {"secretNames": []}})
    rules = one(docs, "ClusterRole")["rules"]
    assert not [r for r in rules if "secrets" in r["resources"]]
    assert all(r.get("resourceNames", None) != [] for r in rules)


@pytest.mark.parametrize(("router", "resource"), [
    ("gatewayAPI", "httproutes"), ("istio", "virtualservices"), ("nginx", "ingresses")])
def test_a_router_switched_off_grants_nothing_on_its_objects(router: str, resource: str,
                                                             tmp_path: Path) -> None:
    docs = render(tmp_path, {"trafficRouters": {router: False}})
    granted = {r[1] for r in flatten(one(docs, "ClusterRole")["rules"])}
    assert resource not in granted
    assert granted == {r[1] for r in EXPECTED} - {resource}
    assert flatten(one(docs, "ClusterRole")["rules"]) == expected(
        [k for k in RouterKind if k.value != router])


def test_the_lease_is_granted_by_name_in_the_release_namespace_only(tmp_path: Path) -> None:
    docs = render(tmp_path, {"leaderElection": {"leaseName": "ctl-lease"}})
    (role,) = [r for r in by_kind(docs, "Role")
               if r["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert flatten(role["rules"]) == {
        ("coordination.k8s.io", "leases", ("create",), ()),  # create cannot be limited by name
        ("coordination.k8s.io", "leases", ("get", "watch", "patch"), ("ctl-lease",)),
    }
    assert flatten(role["rules"]) == {
        (rbac.LEASE_CREATE.group, rbac.LEASE_CREATE.resource, rbac.LEASE_CREATE.verbs, ()),
        (rbac.LEASE_BY_NAME.group, rbac.LEASE_BY_NAME.resource, rbac.LEASE_BY_NAME.verbs,
         ("ctl-lease",)),
    }
    (binding,) = [b for b in by_kind(docs, "RoleBinding")
                  if b["roleRef"]["name"] == role["metadata"]["name"]]
    assert binding["metadata"]["namespace"] == RELEASE_NAMESPACE
    # the controller uses that Lease, in its own namespace
    assert env(docs)["ROLLOUTCTL_LEASE_NAME"] == "ctl-lease"
    assert env(docs)["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "--leader-elect" in container(docs)["args"]


def test_without_leader_election_there_is_no_lease_role(tmp_path: Path) -> None:
    docs = render(tmp_path, {"replicaCount": 1, "leaderElection": {"enabled": False}})
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    assert "--no-leader-elect" in container(docs)["args"]
