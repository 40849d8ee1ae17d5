"""The scale benchmark's world, small: 20 plans mid-run on one controller replica.

Each plan has its own stable and canary Deployments (ready on kwok), its own HTTPRoute and
the default plan's three gates on its namespace's SLOPolicy; a live Prometheus scrapes one
synthetic exporter serving every service. After every canary got a new template, each plan
sits at its first step (10 % on its HTTPRoute) and is analysed every interval on real data
(every gate Pass). The figures ``bench.scale`` prints are measured over a window and agree
with independent sources: the controller's query counter with Prometheus's own request
counter, its reconcile counter with the API server's count of plan GETs.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.prometheus import PrometheusServer
from tests.harness.scale_world import (
    ProcessSampler,
    ScaleWorld,
    SyntheticExporter,
    TrafficShape,
    Window,
    start_controller,
)

PLANS = 20
INTERVAL = 5.0


@pytest.mark.cluster
@pytest.mark.prometheus
@pytest.mark.slow
def test_twenty_plans_mid_run_are_each_analysed_every_interval_with_figures_measured(
    cluster: TestCluster, tmp_path: Path
) -> None:
    assert cluster.local is not None, "needs a cluster started by tests.harness"
    api = cluster.api_client()
    prefix = f"scale-{uuid.uuid4().hex[:5]}"
    namespaces = ScaleWorld.namespaces_for(PLANS, per_namespace=10, prefix=prefix)
    # 50 canary requests a second: a 30 s window holds more than the plans' minSamples (500)
    exporter = SyntheticExporter(ScaleWorld.service_names(PLANS),
                                 TrafficShape(canary_rps=50.0)).start()
    prometheus = PrometheusServer(tmp_path / "prometheus", targets=[exporter.address],
                                  scrape_interval="2s").start()
    controller = None
    sampler = None
    world = ScaleWorld(api, PLANS, prometheus.url, namespaces, per_namespace=10,
                       interval=f"{INTERVAL:g}s", window="30s", hold="1h")
    try:
        prometheus.wait_for_targets_up()
        world.create()
        world.wait_stable_ready(timeout=300)
        controller = start_controller(cluster.kubeconfig, tmp_path / "controller",
                                      namespaces=namespaces, lease_namespace=namespaces[0])
        controller.wait_ready(timeout=120)
        world.release("v2", spread_seconds=INTERVAL)
        world.wait_all_analysed(timeout=300)

        # What a user sees: every plan at step 1/4 with 10 % on its own HTTPRoute, every
        # gate Pass on real data once the step's window holds enough requests.
        weights = world.route_weights()
        assert len(weights) == PLANS and set(weights.values()) == {10}, weights
        world.wait_for(lambda: world.summary().verdicts == {"Pass": 3 * PLANS}, 120,
                       "every gate Pass", report=lambda: world.summary().describe())
        assert world.summary().phases == {"Progressing": PLANS}

        sampler = ProcessSampler({"controller": controller.pid,
                                  "kube-apiserver": cluster.local.pids["kube-apiserver"]})
        window = Window(controller, cluster.local, prometheus.url, sampler)
        window.start()
        window_started = time.time()
        time.sleep(30)
        figures = window.finish()
        plans = world.list_plans()
    finally:
        if sampler is not None:
            sampler.stop()
        if controller is not None:
            controller.kill()
        prometheus.stop()
        exporter.stop()
        for ns in namespaces:
            with contextlib.suppress(Exception):  # the session's cluster outlives the test
                world.core.delete_namespace(ns, _request_timeout=30)
        api.close()  # type: ignore[no-untyped-call]

    # Every plan was analysed within the window, on its interval, and still passes.
    for plan in plans:
        status: dict[str, Any] = plan["status"]
        last = datetime.fromisoformat(status["lastAnalysisAt"].replace("Z", "+00:00"))
        assert last.timestamp() > window_started + 30 - 3 * INTERVAL, (
            plan["metadata"]["name"], status["lastAnalysisAt"])
        assert all(g["verdict"] == "Pass" for g in status["gates"]), status["gates"]
        assert status["canaryWeight"] == 10 and status["currentStep"] == 0

    # The figures: a work queue that keeps up, the process's CPU and memory.
    passes_per_min = PLANS * 60 / INTERVAL
    assert figures.reconciles_per_min >= 0.7 * passes_per_min, figures
    assert figures.queue_keys > 0 and not math.isnan(figures.queue_p99)
    assert figures.queue_p99 < INTERVAL, figures
    assert 0 < figures.cpu_cores < 2.0, figures
    assert 30 < figures.rss_max_mib < 1024 and 30 < figures.rss_end_mib < 1024, figures
    # Prometheus served exactly the queries the controller counted (nothing else queries
    # it), give or take a pass in flight at either end of the window.
    assert figures.prometheus_queries_by_status.get("ok", 0) > 0.95 * (
        figures.prometheus_queries_per_min), figures.prometheus_queries_by_status
    assert figures.prometheus_served_per_min == pytest.approx(
        figures.prometheus_queries_per_min, rel=0.1)
    # Each reconcile reads its plan once: the API server counted as many plan GETs.
    plan_gets = figures.api_breakdown.get("GET rolloutplans", 0.0)
    assert plan_gets == pytest.approx(figures.reconciles_per_min, rel=0.15), (
        figures.api_breakdown, figures.reconciles_per_min)
    assert figures.api_requests_per_min >= plan_gets
