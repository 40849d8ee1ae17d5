"""The chart's ValidatingAdmissionPolicies as rendered. The release freeze: off by default,
bound to the SLOPolicy named in the values, in the Deployment's own namespace, exempting only
the chart's own controller, its break-glass behind a permission. The plan/policy author
checks and the platform-policy guard: on by default, with the identities from the values.
(Their behaviour on a real API server: tests/e2e/test_admission_*.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from test_chart_harness import RELEASE_NAMESPACE, by_kind, one, render

FREEZE = "rolloutctl-release-freeze"


def policies(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in by_kind(docs, "ValidatingAdmissionPolicy")}


def bindings(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in by_kind(docs, "ValidatingAdmissionPolicyBinding")}


def freeze_policy(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (policy,) = [p for name, p in policies(docs).items() if name.endswith(FREEZE)]
    return policy


def test_the_freeze_is_off_by_default_the_author_checks_and_platform_guard_on(
        tmp_path: Path) -> None:
    docs = render(tmp_path)
    on = {"rolloutctl-plan-author", "rolloutctl-policy-author", "rolloutctl-platform-policies"}
    assert set(policies(docs)) == on
    assert set(bindings(docs)) == on
    for name, binding in bindings(docs).items():
        assert binding["spec"]["policyName"] == name
        assert binding["spec"]["validationActions"] == ["Deny"]
        assert policies(docs)[name]["spec"]["failurePolicy"] == "Fail"
    off = render(tmp_path, {"admission": {"authorChecks": {"enabled": False},
                                          "platformPolicies": {"enabled": False}}})
    assert not by_kind(off, "ValidatingAdmissionPolicy")
    assert not by_kind(off, "ValidatingAdmissionPolicyBinding")


def test_every_namespace_unless_a_selector_is_given(tmp_path: Path) -> None:
    docs = render(tmp_path, {"admission": {"freezeEnforcement": {"enabled": True}}})
    constraints = freeze_policy(docs)["spec"]["matchConstraints"]
    assert "namespaceSelector" not in constraints  # the API server's default: everything


def test_bound_to_the_named_slo_policy_of_the_deployments_namespace(tmp_path: Path) -> None:
    docs = render(tmp_path, {"admission": {"freezeEnforcement": {
        "enabled": True, "policyName": "payments", "validationActions": ["Warn", "Audit"],
        "failurePolicy": "Ignore", "namespaceSelector": {"matchLabels": {"env": "prod"}}}}})
    policy = freeze_policy(docs)
    binding = bindings(docs)[FREEZE]
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    spec = policy["spec"]
    assert spec["paramKind"] == {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "SLOPolicy"}
    assert spec["failurePolicy"] == "Ignore"
    (rule,) = spec["matchConstraints"]["resourceRules"]
    # CREATE: delete and recreate is a release too
    assert rule == {"apiGroups": ["apps"], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}
    assert spec["matchConstraints"]["objectSelector"] == {
        "matchLabels": {"rolloutctl.dev/target": "true"}}
    assert spec["matchConstraints"]["namespaceSelector"] == {"matchLabels": {"env": "prod"}}
    # the freeze state is read in one place: the variable "frozen"
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    assert "params.status.frozen" in variables["frozen"]
    assert [v for v in variables.values() if "params.status.frozen" in v] == [variables["frozen"]]
    rules = [v["messageExpression"].split(":", 1)[0].strip("'") for v in spec["validations"]]
    assert rules == ["rule OverrideNeedsPermission", "rule FrozenTemplateChange",
                     "rule FrozenTargetLabelRemoved", "rule FrozenTargetCreate"]
    assert "params.status.frozenServices" in variables["frozen"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    # no namespace: the SLOPolicy is looked up in the namespace of the Deployment
    assert binding["spec"]["paramRef"] == {"name": "payments",
                                           "parameterNotFoundAction": "Allow"}


def test_only_the_charts_own_controller_is_exempt(tmp_path: Path) -> None:
    docs = render(tmp_path, {"admission": {"freezeEnforcement": {"enabled": True}},
                             "serviceAccount": {"name": "ctl"}}, release="prod")
    conditions = {c["name"]: c["expression"]
                  for c in freeze_policy(docs)["spec"]["matchConditions"]}
    assert conditions["not-the-controller"] == (
        f"request.userInfo.username != 'system:serviceaccount:{RELEASE_NAMESPACE}:ctl'")
    assert one(docs, "ServiceAccount")["metadata"]["name"] == "ctl"


def test_the_break_glass_needs_a_permission_the_chart_can_grant(tmp_path: Path) -> None:
    docs = render(tmp_path, {"admission": {"freezeEnforcement": {"enabled": True}}})
    variables = {v["name"]: v["expression"] for v in freeze_policy(docs)["spec"]["variables"]}
    assert "subresource('override-freeze')" in variables["mayOverride"]
    assert "check('update')" in variables["mayOverride"]
    (role,) = [r for r in by_kind(docs, "ClusterRole")
               if r["metadata"]["name"] == "rolloutctl-freeze-override"]
    assert role["rules"] == [{"apiGroups": ["rolloutctl.dev"],
                              "resources": ["slopolicies/override-freeze"], "verbs": ["update"]}]


def test_the_author_checks_cover_every_object_and_secret_a_plan_names(tmp_path: Path) -> None:
    docs = render(tmp_path, {"admission": {"authorChecks": {
        "namespaceSelector": {"matchLabels": {"tenant": "yes"}},
        "validationActions": ["Warn"], "failurePolicy": "Ignore"}}})
    plan = policies(docs)["rolloutctl-plan-author"]["spec"]
    (rule,) = plan["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["rolloutplans"]
    assert rule["operations"] == ["CREATE", "UPDATE"]
    assert plan["matchConstraints"]["namespaceSelector"] == {"matchLabels": {"tenant": "yes"}}
    assert plan["failurePolicy"] == "Ignore"
    assert bindings(docs)["rolloutctl-plan-author"]["spec"]["validationActions"] == ["Warn"]
    variables = {v["name"]: v["expression"] for v in plan["variables"]}
    assert "spec.target.stable.name" in variables["deployments"]
    assert "spec.target.canary.name" in variables["deployments"]
    for resource in ("httproutes", "virtualservices", "ingresses"):
        assert f"'resource': '{resource}'" in variables["route"]
    secrets = " ".join(v for k, v in variables.items() if re.fullmatch(r"secret\d", k))
    for ref in ("slack.tokenSecretRef", "slack.webhookSecretRef",
                "email.smtp.passwordSecretRef", "incident.routingKeySecretRef"):
        assert f"'field': 'spec.notifications.{ref}.name'" in secrets
    # one authorizer check per variable: a few checks exceed one expression's cost limit
    checks = {k: v.count("authorizer.") for k, v in variables.items() if "authorizer." in v}
    assert set(checks.values()) == {1}
    assert {k for k, v in variables.items() if "check('patch')" in v} == {
        "stablePatchable", "canaryPatchable", "routePatchable"}
    assert len([v for v in variables.values() if "check('get')" in v]) == 4
    policy = policies(docs)["rolloutctl-policy-author"]["spec"]
    assert policy["matchConstraints"]["resourceRules"][0]["resources"] == ["slopolicies"]
    policy_variables = {v["name"]: v["expression"] for v in policy["variables"]}
    assert policy_variables == {k: v for k, v in variables.items() if k.startswith("secret")}
    # one validation per check: a message may not use the authorizer, so each names its own
    assert [v["expression"] for v in plan["validations"]] == [
        "variables.stablePatchable", "variables.canaryPatchable", "variables.routePatchable",
        *(f"variables.secret{i}Readable" for i in range(4))]
    assert [v["expression"] for v in policy["validations"]] == [
        f"variables.secret{i}Readable" for i in range(4)]
    for validation in plan["validations"] + policy["validations"]:
        assert "variables.secret" not in validation["messageExpression"] or \
            "Readable" not in validation["messageExpression"]
        assert "Patchable" not in validation["messageExpression"]


def test_platform_policies_are_editable_only_by_the_named_identities(tmp_path: Path) -> None:
    docs = render(tmp_path, {"admission": {"platformPolicies": {"editors": {
        "users": ["alice", "system:serviceaccount:argocd:argocd"], "groups": ["platform"]}}}})
    spec = policies(docs)["rolloutctl-platform-policies"]["spec"]
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["operations"] == ["CREATE", "UPDATE", "DELETE"]
    assert rule["resources"] == ["slopolicies"]  # not slopolicies/status: the controller's
    assert spec["matchConstraints"]["objectSelector"] == {
        "matchLabels": {"rolloutctl.dev/platform": "true"}}
    editor = one([{"kind": "v", **v} for v in spec["variables"]], "v")["expression"]
    assert "['alice','system:serviceaccount:argocd:argocd']" in editor
    assert "['platform']" in editor
    default = policies(render(tmp_path))["rolloutctl-platform-policies"]["spec"]
    assert "['system:masters']" in default["variables"][0]["expression"]
