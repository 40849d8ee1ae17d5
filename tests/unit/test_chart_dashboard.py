"""The Grafana dashboard the chart ships: valid JSON Grafana can import, and every query
asks for metrics the controller really serves (the collectors its code registers)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry, generate_latest
from test_chart_harness import CHART, one, render

from controller.adapters.metrics.prometheus import PrometheusSource
from controller.adapters.notify import NotifyMetrics
from controller.runtime.manager import Manager
from controller.telemetry import Telemetry

DASHBOARD = CHART / "files" / "dashboards" / "rolloutctl.json"
SUFFIXES = ("_bucket", "_count", "_sum")


def served_metrics() -> set[str]:
    """Names on /metrics of a controller (as `rolloutctl run` wires its collectors)."""
    registry = CollectorRegistry()
    Telemetry(registry)
    NotifyMetrics(registry)
    api = ApiClient()
    try:
        manager = Manager(api, registry, bind=None, leader_election=True)
        manager.add_controller("plans", reconciler=None)  # type: ignore[arg-type]
    finally:
        api.close()  # type: ignore[no-untyped-call]
    PrometheusSource("http://127.0.0.1:9", registry=registry).close()
    text = generate_latest(registry).decode()
    return set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))


def queried_metrics(dashboard: dict[str, Any]) -> set[str]:
    names = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for name in re.findall(r"\brolloutctl_[a-z_]+", target["expr"]):
                names.add(next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)),
                               name))
    for variable in dashboard["templating"]["list"]:
        names.update(re.findall(r"\brolloutctl_[a-z_]+", variable.get("definition", "")))
    return names


def test_every_query_asks_for_a_metric_the_controller_serves() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = queried_metrics(dashboard)
    unknown = queried - served_metrics()
    assert not unknown, f"the dashboard queries metrics nobody serves: {sorted(unknown)}"
    assert {
        "rolloutctl_plan_phase", "rolloutctl_plan_canary_weight_percent",
        "rolloutctl_gate_verdict", "rolloutctl_policy_budget_remaining_percent",
        "rolloutctl_reconcile_seconds", "rolloutctl_workqueue_queue_duration_seconds",
        "rolloutctl_notifications_failed_total", "rolloutctl_rollbacks_total",
        "rolloutctl_policy_frozen", "rolloutctl_leader",
    } <= queried


def test_the_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "rolloutctl" and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_the_config_map_carries_the_dashboard_for_grafanas_sidecar(tmp_path: Path) -> None:
    docs = render(tmp_path, {"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}})
    config_map = one(docs, "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["rolloutctl.json"]) == json.loads(
        DASHBOARD.read_text())
