"""`rolloutctl dashboard` in headless Debian chromium, against the local control plane and a
real Prometheus: what a user sees, and that it changes by itself.

* a plan mid-run shows its step (2/4) and weight (25 %) on the overview and its page, whose
  weight and gate charts come from Prometheus scraping the controller's exporter;
* a rollback written to the plan's status shows up within seconds, without a reload;
* a release freeze shows its reason, and the headline turns UNHEALTHY with one incident;
* a user whose RBAC hides a namespace does not see its plans (token user ``rbac-user``).

The statuses are those the reconciler writes (``tests.harness.midrun``), stored through
the ``/status`` subresource as the controller does. Screenshots: the test's tmp_path
(``pytest --basetemp=DIR`` keeps them somewhere known).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry, start_http_server

from controller.adapters.kube.objects import ObjectStore
from controller.api.plan import RolloutPlanStatus
from controller.telemetry import Telemetry
from tests.harness import builders as b
from tests.harness.browser import BrowserUnavailable, chromium, start_dashboard
from tests.harness.fixtures import TestCluster, unavailable
from tests.harness.midrun import create_mid_run_plan, mid_run_status

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]

SEEN_WITHIN_MS = 15_000  # generous under load; the benchmark measures the real latency


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    manager = chromium(tmp_path / "profile")
    try:
        context = manager.__enter__()
    except BrowserUnavailable as exc:
        unavailable(str(exc))
    try:
        yield context
    finally:
        manager.__exit__(None, None, None)


def _recent(value: Any, delta: timedelta) -> Any:
    """VALUE (a status document) with every timestamp moved by DELTA."""
    if isinstance(value, dict):
        return {k: _recent(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [_recent(v, delta) for v in value]
    if isinstance(value, str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", value):
        moved = datetime.fromisoformat(value.replace("Z", "+00:00")) + delta
        return moved.isoformat().replace("+00:00", "Z")
    return value


def create_recent_mid_run_plan(api: Any, namespace: str) -> dict[str, Any]:
    """The mid-run plan and its policy, the run started 90 s ago; returns its status."""
    create_mid_run_plan(api, namespace)
    _, _, status = mid_run_status(namespace)
    status = _recent(status, datetime.now(UTC) - b.T0 - timedelta(seconds=90))
    store = ObjectStore(api)
    raw = store.get("RolloutPlan", namespace, "checkout")
    assert raw is not None
    store.write_status(raw, status)
    return status


@pytest.fixture
def controller_metrics() -> Iterator[tuple[str, Telemetry]]:
    """The controller's /metrics exporter (its Telemetry) on a free loopback port."""
    registry = CollectorRegistry()
    telemetry = Telemetry(registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_port}", telemetry
    finally:
        server.shutdown()
        thread.join(10)


def until(page: Any, predicate: str, timeout: float) -> None:
    """Poll PREDICATE (a JavaScript function) in PAGE until true. (Playwright's
    wait_for_function evaluates strings, which the dashboard's CSP forbids, rightly.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        assert time.monotonic() < deadline, f"not true after {timeout:g}s: {predicate}"
        time.sleep(0.1)


def _write_status(api: Any, kind: str, namespace: str, name: str, **changes: Any) -> None:
    store = ObjectStore(api)
    raw = store.get(kind, namespace, name)
    assert raw is not None
    store.write_status(raw, {**raw.get("status", {}), **changes})


def test_plan_mid_run_then_rollback_and_freeze_show_live(
        cluster: TestCluster, namespace: str, prometheus_live: Any,
        controller_metrics: tuple[str, Telemetry], browser: Any, tmp_path: Path) -> None:
    api = cluster.api_client()
    status = create_recent_mid_run_plan(api, namespace)
    target, telemetry = controller_metrics
    telemetry.plan(namespace, "checkout", RolloutPlanStatus.model_validate(status))
    prometheus = prometheus_live([target])
    dashboard = start_dashboard(cluster.kubeconfig, "-n", namespace,
                                "--prometheus-url", prometheus.url)
    try:
        page = browser.new_page()
        page.goto(dashboard.url)
        row = page.locator(f'tr[data-plan="{namespace}/checkout"]')
        row.wait_for(timeout=SEEN_WITHIN_MS)
        assert row.get_attribute("data-phase") == "Progressing"
        assert row.locator(".steps em").inner_text() == "2/4"
        assert row.locator("td.weight").inner_text().strip() == "25%"
        assert "api_availability Pass" in row.inner_text()
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

        page.goto(f"{dashboard.url}plan/{namespace}/checkout")
        assert page.locator("#weight").inner_text() == "25%"
        # the weight and the gate's values come from Prometheus once it has scraped the
        # controller's gauges (until then the weight is drawn from the decisions)
        until(page, "() => { const t = document.querySelector('svg.chart.weight text.ct');"
                    " const g = document.querySelector('svg.chart.gate');"
                    " return !!t && !t.textContent.includes('from the plan') && !!g &&"
                    " g.querySelector('polyline.series') !== null; }", 30)
        assert page.locator("svg.chart.weight polyline.series").count() == 1
        assert page.locator("svg.chart.gate line.objective").count() == 1
        assert page.locator("svg.chart.weight line.marker").count() >= 3  # decisions
        assert "StepAdvanced" in page.locator("table.decisions").inner_text()
        page.screenshot(path=str(tmp_path / "plan.png"), full_page=True)

        page.goto(dashboard.url)
        row.wait_for(timeout=SEEN_WITHIN_MS)
        page.evaluate("window.__notReloaded = true")
        _write_status(api, "RolloutPlan", namespace, "checkout", phase="RolledBack",
                      canaryWeight=0, reason="GateFailed", rollbackReason="GateFailed",
                      message="api_availability failed for 15s: 70.0% good < 99.9%")
        page.wait_for_selector(f'tr[data-plan="{namespace}/checkout"][data-phase="RolledBack"]',
                               timeout=SEEN_WITHIN_MS)
        assert page.evaluate("window.__notReloaded") is True
        assert row.locator("td.weight").inner_text().strip() == "0%"

        reason = "api_availability: 4.0% of the error budget left, below 10%"
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        _write_status(api, "SLOPolicy", namespace, "platform", frozen=True, frozenSince=now,
                      evaluatedAt=now, reason="BudgetExhausted", message=reason,
                      budgetRemaining=4.0,
                      slos=[{"name": "api_availability", "state": "Ok",
                             "budgetRemaining": 4.0, "objective": 99.9, "window": "30d"}])
        policy = page.locator(f'section.policy[data-policy="{namespace}/platform"]')
        policy.locator(".freeze.frozen").wait_for(timeout=SEEN_WITHIN_MS)
        assert reason in policy.locator(".freeze-reason").inner_text()
        until(page, "() => document.getElementById('health').textContent === 'UNHEALTHY'",
              SEEN_WITHIN_MS / 1000)
        assert page.locator("#incidents").inner_text() == "1"
        assert page.evaluate("window.__notReloaded") is True
        page.screenshot(path=str(tmp_path / "rollback-and-freeze.png"), full_page=True)

        page.goto(f"{dashboard.url}policy/{namespace}/platform")
        assert reason in page.locator(".freeze-reason").inner_text()
        assert page.locator("svg.chart.budget").count() >= 1  # one per SLO with a budget
        assert page.locator("table.burns th").all_inner_texts()[1:] == ["1h", "6h", "24h",
                                                                         "7d"]
        page.screenshot(path=str(tmp_path / "policy.png"), full_page=True)
    finally:
        dashboard.stop()
        api.close()


@pytest.fixture
def hidden_namespace(cluster: TestCluster) -> Iterator[str]:
    name = f"t-hidden-{uuid.uuid4().hex[:6]}"
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)),
                          _request_timeout=30)
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background", _request_timeout=30)
        api.close()


def test_a_namespace_rbac_hides_is_not_shown(cluster: TestCluster, namespace: str,
                                              hidden_namespace: str, browser: Any,
                                              tmp_path: Path) -> None:
    admin = cluster.api_client()
    create_mid_run_plan(admin, namespace)
    create_mid_run_plan(admin, hidden_namespace)
    rbac = client.RbacAuthorizationV1Api(admin)
    user = {"kind": "User", "name": "rbac-user", "apiGroup": "rbac.authorization.k8s.io"}
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "dashboard-reader"},
        "rules": [{"apiGroups": ["rolloutctl.dev"], "resources": ["rolloutplans",
                                                                  "slopolicies"],
                   "verbs": ["get", "list", "watch"]}]}, _request_timeout=30)
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "dashboard-reader"}, "subjects": [user],
        "roleRef": {"kind": "Role", "name": "dashboard-reader",
                    "apiGroup": "rbac.authorization.k8s.io"}}, _request_timeout=30)
    lister = f"t-dashboard-ns-list-{uuid.uuid4().hex[:6]}"
    rbac.create_cluster_role({"metadata": {"name": lister}, "rules": [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}]},
        _request_timeout=30)
    rbac.create_cluster_role_binding({
        "metadata": {"name": lister}, "subjects": [user],
        "roleRef": {"kind": "ClusterRole", "name": lister,
                    "apiGroup": "rbac.authorization.k8s.io"}}, _request_timeout=30)
    dashboard = start_dashboard(cluster.kubeconfig_for("rbac-user"))
    try:
        page = browser.new_page()
        page.goto(dashboard.url)
        page.locator(f'tr[data-plan="{namespace}/checkout"]').wait_for(timeout=SEEN_WITHIN_MS)
        denied = page.locator("p.denied")
        deadline = time.monotonic() + 15
        while hidden_namespace not in denied.inner_text() and time.monotonic() < deadline:
            time.sleep(0.5)  # a namespace created a moment ago reaches the list shortly
        assert hidden_namespace in denied.inner_text()
        assert page.locator(f'tr[data-plan^="{hidden_namespace}/"]').count() == 0
        assert page.locator(f'section.policy[data-policy^="{hidden_namespace}/"]').count() == 0
        assert "read as rbac-user" in page.locator("nav").inner_text()
        page.screenshot(path=str(tmp_path / "rbac-user.png"), full_page=True)
    finally:
        dashboard.stop()
        rbac.delete_cluster_role_binding(lister, _request_timeout=30)
        rbac.delete_cluster_role(lister, _request_timeout=30)
        admin.close()
