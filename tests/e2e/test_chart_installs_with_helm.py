"""`helm install` for real, then `helm uninstall`: the release installs (CRDs first, then the
SLOPolicy that needs them), its Deployment becomes available with two replicas (kwok plays
the kubelet, so the pods do not run the image: nothing is pulled here), and uninstalling
removes what it created."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.fixtures import TestCluster

from .test_chart_harness import CHART, kubectl, run, tool

pytestmark = pytest.mark.cluster


def test_helm_install_then_uninstall(cluster: TestCluster, namespace: str, tmp_path: Path
                                     ) -> None:
    release = f"t{uuid.uuid4().hex[:8]}"
    values = tmp_path / "values.json"
    values.write_text(json.dumps({
        "watchNamespaces": [namespace],
        "defaultPolicies": {"enabled": True, "namespaces": [namespace]},
        "admission": {  # every policy judges this test's namespace only
            policy: {"enabled": True, "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": namespace}}}
            for policy in ("freezeEnforcement", "authorChecks", "platformPolicies")},
        "grafanaDashboard": {"enabled": True},
    }))
    helm = [tool("helm"), "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace]
    installed = run([*helm, "install", release, str(CHART), "--values", str(values),
                     "--wait", "--timeout", "180s"], timeout=240)
    admin = cluster.api_client()
    try:
        assert installed.returncode == 0, installed.stderr
        assert "STATUS: deployed" in installed.stdout
        name = f"{release}-rolloutctl"
        deployment: Any = client.AppsV1Api(admin).read_namespaced_deployment(
            name, namespace, _request_timeout=30)
        assert deployment.status.available_replicas == 2
        policy: Any = client.CustomObjectsApi(admin).get_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", namespace, "slopolicies", "platform",
            _request_timeout=30)
        assert policy["spec"]["errorBudgetPolicy"]["freezeReleases"]["slo"] == "api_availability"
        for policy in ("release-freeze", "plan-author", "policy-author", "platform-policies"):
            got = kubectl(cluster.kubeconfig, "get", "validatingadmissionpolicy",
                          f"{name}-{policy}", "-o", "name")
            assert got.returncode == 0, got.stderr
    finally:
        removed = run([*helm, "uninstall", release, "--wait", "--timeout", "120s"])
        admin.close()  # type: ignore[no-untyped-call]
    assert removed.returncode == 0, removed.stderr
    for kind, ns in (("deployment", namespace), ("slopolicy", namespace),
                     ("validatingadmissionpolicy", None), ("role", namespace)):
        args = ["get", kind, "-o", "name", "-l", f"app.kubernetes.io/instance={release}"]
        left = kubectl(cluster.kubeconfig, *args, *(["-n", ns] if ns else []))
        assert left.returncode == 0 and left.stdout.strip() == "", (kind, left.stdout)
