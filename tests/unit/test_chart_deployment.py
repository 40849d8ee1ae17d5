"""The controller's Deployment: what `rolloutctl run` ends up configured with, and the pod's
security settings, probes and neighbours (PodDisruptionBudget, Service, ServiceMonitor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from test_chart_harness import CHART, by_kind, container, one, render

from controller.cli.main import app


def run_params(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The options `rolloutctl run` parses from the container's args and environment (the
    downward API filled in as the kubelet would), without running it."""
    c = container(docs)
    downward = {"metadata.name": "rolloutctl-5d9c-x2x7q", "metadata.namespace": "ops"}
    for var in c["env"]:
        value = var.get("value")
        if value is None:
            value = downward[var["valueFrom"]["fieldRef"]["fieldPath"]]
        monkeypatch.setenv(var["name"], value)
    for name in ("KUBECONFIG", "ROLLOUTCTL_NAMESPACES", "ROLLOUTCTL_LEADER_ELECT"):
        if name not in {v["name"] for v in c["env"]}:
            monkeypatch.delenv(name, raising=False)
    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    assert c.get("command") is None  # the image's ENTRYPOINT: rolloutctl run
    with run.make_context("run", list(c["args"])) as ctx:
        # repeated options arrive as a tuple or a list depending on the typer version
        return {k: list(v) if isinstance(v, tuple) else v for k, v in ctx.params.items()}


def test_rolloutctl_run_gets_every_setting_of_the_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = render(tmp_path, {
        "watchNamespaces": ["shop", "web"],
        "prometheusUrl": "http://prometheus.monitoring:9090",
        "workers": 6,
        "maxConcurrentRollouts": 3,
        "clusterName": "prod-eu1",
        "resyncSeconds": 300,
        "fastIntervalSeconds": 15,
        "logging": {"format": "text", "level": "debug"},
        "leaderElection": {"leaseName": "ctl"},
        "notifications": {"slackBaseUrl": "http://slack.internal/api/"},
    })
    params = run_params(docs, monkeypatch)
    assert params == {**params,
                      "namespace": ["shop", "web"],
                      "prometheus_url": "http://prometheus.monitoring:9090",
                      "workers": 6,
                      "max_concurrent_rollouts": 3,
                      "cluster_name": "prod-eu1",
                      "resync": 300.0,
                      "fast_interval": 15.0,
                      "log_format": "text",
                      "log_level": "debug",
                      "leader_elect": True,
                      "lease_name": "ctl",
                      "lease_namespace": "ops",          # the pod's own namespace
                      "identity": "rolloutctl-5d9c-x2x7q",  # the pod's name
                      "metrics_address": "0.0.0.0:8080",  # reachable by probes and Prometheus
                      "slack_base_url": "http://slack.internal/api/",
                      "kubeconfig": None}                # in-cluster service account


def test_by_default_it_watches_every_namespace_with_leader_election(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = render(tmp_path)
    params = run_params(docs, monkeypatch)
    assert params["namespace"] in (None, [], ())
    assert params["leader_elect"] is True and params["lease_name"] == "rolloutctl-controller"
    assert params["prometheus_url"] is None and params["max_concurrent_rollouts"] is None
    assert params["fast_interval"] is None  # learned from Prometheus's scrape interval
    assert one(docs, "Deployment")["spec"]["replicas"] == 2


def test_the_pod_is_restricted_and_writes_only_to_tmp(tmp_path: Path) -> None:
    deployment = one(render(tmp_path), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532,
                                      "runAsGroup": 65532,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    values = {e["name"]: e.get("value") for e in c["env"]}
    assert values["HOME"] == values["TMPDIR"] == "/tmp"
    assert values["PYTHONDONTWRITEBYTECODE"] == "1"
    assert pod["serviceAccountName"] == "rolloutctl"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_probes_ask_the_controller_on_its_metrics_port(tmp_path: Path) -> None:
    c = container(render(tmp_path))
    assert c["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_the_pdb_service_and_service_monitor_select_the_controller_pods(
    tmp_path: Path,
) -> None:
    docs = render(tmp_path, {"metrics": {"serviceMonitor": {
        "enabled": True, "labels": {"release": "prometheus"}}}})
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    service = one(docs, "Service")
    assert selects(service["spec"]["selector"], pod_labels)
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080,
                                         "targetPort": "metrics", "protocol": "TCP"}]
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["honorLabels"]) == (
        "metrics", "/metrics", True)


def test_optional_objects_are_off_by_default(tmp_path: Path) -> None:
    kinds = {d["kind"] for d in render(tmp_path)}
    # the admission policies on by default: plan/policy author checks, platform policies
    assert kinds == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                     "RoleBinding", "Deployment", "Service", "PodDisruptionBudget",
                     "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def test_the_image_is_the_charts_app_version_unless_pinned(tmp_path: Path) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container(render(tmp_path))["image"] == f"ghcr.io/rolloutctl/rolloutctl:{app_version}"
    digest = "sha256:" + "a" * 64
    pinned = render(tmp_path, {"image": {"repository": "registry.local/rc", "tag": "dev",
                                         "digest": digest}})
    assert container(pinned)["image"] == f"registry.local/rc@{digest}"
    assert not by_kind(pinned, "ServiceMonitor")


def test_a_fast_interval_of_0_turns_the_fast_path_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    params = run_params(render(tmp_path, {"fastIntervalSeconds": 0}), monkeypatch)
    assert params["fast_interval"] == 0.0
