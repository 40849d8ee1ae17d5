"""`helm lint` is clean, and values.schema.json turns bad values away with a message that
names the value, before anything reaches a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_chart_harness import CHART, KUBE_VERSION, helm, render, render_error, values_file

ALL_OPTIONS: dict[str, Any] = {
    "watchNamespaces": ["shop", "web"],
    "prometheusUrl": "http://prometheus.monitoring:9090",
    "maxConcurrentRollouts": 3,
    "clusterName": "prod-eu1",
    "notifications": {"slackBaseUrl": "http://slack.internal/api/"},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "grafanaDashboard": {"enabled": True, "namespace": "monitoring"},
    "defaultPolicies": {"enabled": True, "namespaces": ["shop"]},
    "sloReport": {"enabled": True, "namespaces": ["shop"], "timeZone": "Europe/Paris"},
    "admission": {"freezeEnforcement": {"enabled": True}},
}


def lint(*args: str) -> str:
    result = helm("lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, *args,
                  check=False)
    return result.stdout + result.stderr


@pytest.mark.parametrize("values", [None, ALL_OPTIONS], ids=["defaults", "every-option"])
def test_helm_lint_is_clean(values: dict[str, Any] | None, tmp_path: Path) -> None:
    extra = ["--values", str(values_file(values, tmp_path))] if values else []
    out = lint(*extra)
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out
    # not even an INFO (icon, ...) or a WARNING
    assert not [line for line in out.splitlines() if line.startswith("[")], out


@pytest.mark.parametrize(("values", "complaint"), [
    ({"replicaCount": 0}, "/replicaCount"),
    ({"watchNamespaces": "shop"}, "/watchNamespaces"),
    ({"watchNamespaces": ["Shop_1"]}, "/watchNamespaces/0"),
    ({"notifications": {"secretNames": ["a secret"]}}, "/notifications/secretNames/0"),
    ({"securityContext": {"readOnlyRootFilesystem": False}},
     "/securityContext/readOnlyRootFilesystem"),
    ({"securityContext": {"allowPrivilegeEscalation": True}},
     "/securityContext/allowPrivilegeEscalation"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    ({"logging": {"format": "yaml"}}, "/logging/format"),
    ({"prometheusUrl": "prometheus:9090"}, "/prometheusUrl"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"admission": {"freezeEnforcement": {"validationActions": ["Block"]}}},
     "/admission/freezeEnforcement/validationActions/0"),
    ({"leaderElection": {"leaseName": "Not A Name"}}, "/leaderElection/leaseName"),
    ({"admission": {"authorChecks": {"validationActions": []}}},
     "/admission/authorChecks/validationActions"),
    ({"admission": {"platformPolicies": {"editors": {"users": ["o'brien"]}}}},
     "/admission/platformPolicies/editors/users/0"),
    ({"admission": {"platformPolicies": {"editors": {"group": ["x"]}}}},
     "additional properties 'group' not allowed"),
    ({"replicas": 2}, "additional properties 'replicas' not allowed"),
])
def test_the_schema_rejects_bad_values(values: dict[str, Any], complaint: str,
                                       tmp_path: Path) -> None:
    assert complaint in render_error(tmp_path, values)


def test_several_replicas_need_leader_election(tmp_path: Path) -> None:
    error = render_error(tmp_path, {"replicaCount": 2, "leaderElection": {"enabled": False}})
    assert "replicaCount > 1 needs leaderElection.enabled=true" in error
    docs = render(tmp_path, {"replicaCount": 1, "leaderElection": {"enabled": False}})
    assert [d["kind"] for d in docs if d["kind"] == "Deployment"] == ["Deployment"]


NO_POLICY = {"authorChecks": {"enabled": False}, "platformPolicies": {"enabled": False},
             "freezeEnforcement": {"enabled": False}}


@pytest.mark.parametrize("policy", ["freezeEnforcement", "authorChecks", "platformPolicies"])
def test_each_admission_policy_needs_kubernetes_1_30(policy: str, tmp_path: Path) -> None:
    values = {"admission": {**NO_POLICY, policy: {"enabled": True}}}
    error = render_error(tmp_path, values, kube_version="1.29.9")
    assert f"admission.{policy} needs Kubernetes >= 1.30" in error
    if policy != "freezeEnforcement":  # on by default: the way out is in the message
        assert f"set admission.{policy}.enabled=false" in error
    assert render(tmp_path, values, kube_version="1.30.0")
    assert render(tmp_path, {"admission": NO_POLICY}, kube_version="1.29.9")


def test_the_chart_refuses_kubernetes_older_than_1_29(tmp_path: Path) -> None:
    result = helm("template", "x", str(CHART), "--kube-version", "1.28.9", check=False)
    assert result.returncode != 0
    assert "chart requires kubeVersion: >=1.29.0-0" in result.stderr
