"""The Grafana dashboards the chart ships (the controller's internals, and the SLO overview):
valid JSON Grafana can import, checked against a JSON Schema of the dashboard model of the
``schemaVersion`` they declare, and every query asks for metrics the controller really serves
(the collectors its code registers). tests/e2e/test_grafana_panels_return_data.py runs every
query against a real Prometheus scraping a real controller."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry, generate_latest
from test_chart_harness import CHART, one, render

from controller.adapters.metrics.prometheus import PrometheusSource
from controller.adapters.notify import NotifyMetrics
from controller.runtime.manager import Manager
from controller.telemetry import Telemetry

DASHBOARD = CHART / "files" / "dashboards" / "rolloutctl.json"
SLO_DASHBOARD = CHART / "files" / "dashboards" / "rolloutctl-slo.json"
DASHBOARDS = sorted((CHART / "files" / "dashboards").glob("*.json"))
SCHEMAS = Path(__file__).parent / "schemas"
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


def validator_for(dashboard: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """The JSON Schema of the dashboard model of the schemaVersion the dashboard declares."""
    path = SCHEMAS / f"grafana-dashboard-v{dashboard['schemaVersion']}.schema.json"
    assert path.exists(), f"no schema for Grafana dashboard schemaVersion " \
                          f"{dashboard['schemaVersion']}: write {path.name}"
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_each_dashboard_matches_the_schema_of_its_declared_schema_version(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator_for(dashboard).iter_errors(dashboard)]
    assert not errors, errors


def test_the_schema_refuses_what_grafana_would_not_import() -> None:
    dashboard = json.loads(SLO_DASHBOARD.read_text())
    validator = validator_for(dashboard)
    cases = {
        "a panel wider than the 24-column grid": ("panels", 1, "gridPos", "w", 25),
        "a target without refId": ("panels", 1, "targets", 0, "refId", None),
        "another schemaVersion": ("schemaVersion", 38),
        "an unknown variable type": ("templating", "list", 1, "type", "dropdown"),
    }
    for what, (*where, key, value) in cases.items():
        broken = copy.deepcopy(dashboard)
        node: Any = broken
        for part in where:
            node = node[part]
        if value is None:
            del node[key]
        else:
            node[key] = value
        assert not validator.is_valid(broken), what


def test_the_slo_dashboard_has_the_overview_panels() -> None:
    dashboard = json.loads(SLO_DASHBOARD.read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"SLO compliance rate", "Error budget remaining per SLO", "Burn rate per alert",
            "Freeze state and reason", "Active incidents", "Rollouts by phase",
            "Rollbacks over time", "Time to restore"} <= titles
    assert dashboard["uid"] != json.loads(DASHBOARD.read_text())["uid"]
    unknown = queried_metrics(dashboard) - served_metrics()
    assert not unknown, f"the SLO dashboard queries metrics nobody serves: {sorted(unknown)}"
    assert {"rolloutctl_slo_objective_met", "rolloutctl_slo_burn_rate",
            "rolloutctl_policy_freeze_reason", "rolloutctl_incident_active",
            "rolloutctl_runs_total", "rolloutctl_time_to_restore_seconds"} <= queried_metrics(
        dashboard)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_dashboard_is_importable(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"].startswith("rolloutctl") and dashboard["title"]
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
    assert json.loads(config_map["data"]["rolloutctl-slo.json"]) == json.loads(
        SLO_DASHBOARD.read_text())
    assert set(config_map["data"]) == {p.name for p in DASHBOARDS}
