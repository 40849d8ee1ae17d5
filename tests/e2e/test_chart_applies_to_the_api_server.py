"""The chart's output is accepted by a real API server (server-side apply, dry run): every
object validates against the server's schemas (the CRDs' for the SLOPolicy, the built-in
ones for the rest, CEL compiled for the admission policy), and the pod passes the
"restricted" Pod Security Standard without a warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.fixtures import TestCluster

from .test_chart_harness import (
    CHART,
    REPO_DIR,
    chart,
    documents,
    ensure_namespace,
    kubectl,
    run,
    tool,
)

pytestmark = pytest.mark.cluster

EVERY_OPTION: dict[str, Any] = {
    "prometheusUrl": "http://prometheus.monitoring:9090",
    "maxConcurrentRollouts": 3,
    "clusterName": "prod-eu1",
    "grafanaDashboard": {"enabled": True},
    "sloReport": {"enabled": True, "namespaces": ["shop"], "mailTo": ["sre@example.com"]},
    "admission": {"freezeEnforcement": {"enabled": True}},
    "imagePullSecrets": [{"name": "regcred"}],
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops",
                     "effect": "NoSchedule"}],
}


@pytest.fixture
def restricted(cluster: TestCluster, namespace: str) -> str:
    """The test namespace, enforcing and warning on the "restricted" Pod Security level."""
    api = cluster.api_client()
    try:
        client.CoreV1Api(api).patch_namespace(namespace, {"metadata": {"labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted"}}},
            _content_type="application/merge-patch+json", _request_timeout=30)
    finally:
        api.close()  # type: ignore[no-untyped-call]
    return namespace


def dry_run(cluster: TestCluster, text: str) -> tuple[str, str]:
    result = kubectl(cluster.kubeconfig, "apply", "--server-side", "--dry-run=server",
                     "--field-manager", "helm", "-f", "-", stdin=text)
    assert result.returncode == 0, f"the API server refused the chart:\n{result.stderr}"
    return result.stdout, result.stderr


def test_the_crds_apply_for_real(cluster: TestCluster) -> None:
    result = kubectl(cluster.kubeconfig, "apply", "--server-side", "--field-manager",
                     "rolloutctl-tests", "-f", str(CHART / "crds"))
    assert result.returncode == 0, result.stderr
    for name in ("rolloutplans.rolloutctl.dev", "slopolicies.rolloutctl.dev"):
        waited = kubectl(cluster.kubeconfig, "wait", "--for=condition=Established",
                         f"crd/{name}", "--timeout=60s")
        assert waited.returncode == 0, waited.stderr


@pytest.mark.parametrize("values", [None, EVERY_OPTION], ids=["defaults", "every-option"])
def test_helm_template_passes_a_server_side_dry_run(
    values: dict[str, Any] | None, cluster: TestCluster, restricted: str, tmp_path: Path,
) -> None:
    test_the_crds_apply_for_real(cluster)
    if values:  # the platform SLOPolicy goes into the namespace, validated by its CRD
        values = {**values, "defaultPolicies": {"enabled": True, "namespaces": [restricted]}}
    text = chart(tmp_path, values, namespace=restricted)
    out, err = dry_run(cluster, text)
    expected = documents(text)
    applied = [line for line in out.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(expected), out
    for doc in expected:
        assert any(f"/{doc['metadata']['name']} serverside-applied" in line
                   and line.split("/")[0].split(".")[0] == doc["kind"].lower()
                   for line in applied), (doc["kind"], doc["metadata"]["name"], out)
    assert "Warning" not in err, err  # no PodSecurity "would violate", no deprecation


def test_the_restricted_check_would_catch_a_weaker_pod(
    cluster: TestCluster, restricted: str, tmp_path: Path,
) -> None:
    # the same dry run reports a pod that may keep its capabilities: the test above can fail
    text = chart(tmp_path, {"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
                 namespace=restricted)
    result = kubectl(cluster.kubeconfig, "apply", "--server-side", "--dry-run=server",
                     "-f", "-", stdin=text)
    assert 'would violate PodSecurity "restricted:latest"' in result.stderr
    assert 'capabilities.drop=["ALL"]' in result.stderr


def test_the_plain_manifests_pass_a_server_side_dry_run(cluster: TestCluster) -> None:
    test_the_crds_apply_for_real(cluster)
    text = (REPO_DIR / "manifests" / "rolloutctl.yaml").read_text()
    # the Namespace does not exist yet, so a dry run of what goes into it cannot pass: create
    # the Namespace for real (as a user would, first), then dry-run everything
    docs = documents(text)
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    api = cluster.api_client()
    try:
        ensure_namespace(api, namespace["metadata"]["name"])
    finally:
        api.close()  # type: ignore[no-untyped-call]
    out, err = dry_run(cluster, text)
    assert len([line for line in out.splitlines() if "(server dry run)" in line]) == len(docs)
    assert "Warning" not in err, err


def test_helm_itself_accepts_the_cluster(cluster: TestCluster, namespace: str) -> None:
    # helm's own checks against the live server: kubeVersion, the API versions of every
    # template, and the CRDs it would install
    result = run([tool("helm"), "install", "rolloutctl", str(CHART), "--namespace", namespace,
                  "--kubeconfig", str(cluster.kubeconfig), "--dry-run=server",
                  "--set", "admission.freezeEnforcement.enabled=true"])
    assert result.returncode == 0, result.stderr
    assert "STATUS: pending-install" in result.stdout
    assert "kind: ValidatingAdmissionPolicy" in result.stdout
    # NOTES.txt, as `helm install` shows it
    assert f"rolloutctl 0.1.0 is installed in namespace {namespace}: 2 replica(s), leader " \
           f"elected on Lease {namespace}/rolloutctl-controller." in result.stdout
    assert "Watching: every namespace." in result.stdout
    assert "NOT SET (set prometheusUrl)" in result.stdout
    assert "Release-freeze admission is on (Deny)" in result.stdout
