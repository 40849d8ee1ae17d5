"""The release-freeze ValidatingAdmissionPolicy as rendered: off by default, bound to the
SLOPolicy named in the values, in the Deployment's own namespace, and exempting only the
chart's own controller. (Its behaviour on a real API server: tests/e2e/test_admission_*.)"""

from __future__ import annotations

from pathlib import Path

from test_chart_harness import RELEASE_NAMESPACE, by_kind, one, render


def test_off_by_default(tmp_path: Path) -> None:
    docs = render(tmp_path)
    assert not by_kind(docs, "ValidatingAdmissionPolicy")
    assert not by_kind(docs, "ValidatingAdmissionPolicyBinding")


def test_every_namespace_unless_a_selector_is_given(tmp_path: Path) -> None:
    docs = render(tmp_path, {"admission": {"freezeEnforcement": {"enabled": True}}})
    constraints = one(docs, "ValidatingAdmissionPolicy")["spec"]["matchConstraints"]
    assert "namespaceSelector" not in constraints  # the API server's default: everything


def test_bound_to_the_named_slo_policy_of_the_deployments_namespace(tmp_path: Path) -> None:
    docs = render(tmp_path, {"admission": {"freezeEnforcement": {
        "enabled": True, "policyName": "payments", "validationActions": ["Warn", "Audit"],
        "failurePolicy": "Ignore", "namespaceSelector": {"matchLabels": {"env": "prod"}}}}})
    policy = one(docs, "ValidatingAdmissionPolicy")
    binding = one(docs, "ValidatingAdmissionPolicyBinding")
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    spec = policy["spec"]
    assert spec["paramKind"] == {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "SLOPolicy"}
    assert spec["failurePolicy"] == "Ignore"
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule == {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
                    "resources": ["deployments"]}
    assert spec["matchConstraints"]["objectSelector"] == {
        "matchLabels": {"rolloutctl.dev/target": "true"}}
    assert spec["matchConstraints"]["namespaceSelector"] == {"matchLabels": {"env": "prod"}}
    (validation,) = spec["validations"]
    assert validation["expression"] == "!variables.frozenHere"
    (variable,) = spec["variables"]
    assert "params.status.frozen" in variable["expression"]
    assert "params.status.frozenServices" in variable["expression"]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    # no namespace: the SLOPolicy is looked up in the namespace of the Deployment
    assert binding["spec"]["paramRef"] == {"name": "payments",
                                           "parameterNotFoundAction": "Allow"}


def test_only_the_charts_own_controller_is_exempt(tmp_path: Path) -> None:
    docs = render(tmp_path, {"admission": {"freezeEnforcement": {"enabled": True}},
                             "serviceAccount": {"name": "ctl"}}, release="prod")
    conditions = {c["name"]: c["expression"]
                  for c in one(docs, "ValidatingAdmissionPolicy")["spec"]["matchConditions"]}
    assert conditions["not-the-controller"] == (
        f"request.userInfo.username != 'system:serviceaccount:{RELEASE_NAMESPACE}:ctl'")
    assert one(docs, "ServiceAccount")["metadata"]["name"] == "ctl"
