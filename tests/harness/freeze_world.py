"""The world of the error-budget freeze's end-to-end tests (issue #9).

One real Prometheus holds two kinds of data:

* a **backfilled 30-day history** of a service (``promtool tsdb create-blocks-from
  openmetrics`` into the data directory before Prometheus starts), whose error ratio sets
  the error budget left, and
* the **live** series of the Stack's demo services (Prometheus scrapes them every second
  once started on that data directory), which the gates of a running plan judge.

The history ends a minute before Prometheus starts: on start-up Prometheus refuses live
samples older than the newest block, so history and live data must not overlap in time.

The SLOPolicy built here has two SLOs: ``api_availability`` (the gate SLO, on the live
series through ``{{service}}``/``{{track}}``) and ``budget_availability`` (the freeze SLO,
99.9 % over 30 days, naming the history's series literally: ``service="checkout-history"``).
The budget is then ``1 - (bad/total over 30d) / (1 - 0.999)`` of the history, and it moves
only when the test wants it to: by patching the freeze thresholds, never the data.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kubernetes.client import ApiClient, AppsV1Api, CustomObjectsApi

from tests.harness.demo_app import DemoApp
from tests.harness.prometheus import PrometheusServer, Series, backfill
from tests.harness.routes import canary_weight
from tests.harness.stack import (
    BAD,
    TOTAL,
    Stack,
    deployment,
    http_route,
    rolloutctl_binary,
)
from tests.harness.traces import Trace, TrackShape

HISTORY_SERVICE = "checkout-history"
GATE_SLO = "api_availability"
BUDGET_SLO = "budget_availability"
BUDGET_OBJECTIVE = 99.9
DAY = 86400.0
WINDOW_DAYS = 30
REQUEST_TIMEOUT = 30

BUDGET_BAD = ('sum(rate(http_requests_total{service="' + HISTORY_SERVICE
              + '",code=~"5.."}[{{window}}]))')
BUDGET_TOTAL = 'sum(rate(http_requests_total{service="' + HISTORY_SERVICE + '"}[{{window}}]))'


def budget_trace(remaining_percent: float, *, end: float | None = None,
                 days: int = WINDOW_DAYS, step: float = 300.0, rate: float = 10.0,
                 objective: float = BUDGET_OBJECTIVE) -> Trace:
    """A steady ``days``-long history ending at ``end`` (default: a minute ago) whose error
    ratio leaves ``remaining_percent`` of the budget: ratio = (1 - r) * (1 - objective)."""
    finish = time.time() - 60.0 if end is None else end
    ratio = (1.0 - remaining_percent / 100.0) * (1.0 - objective / 100.0)
    duration = days * DAY
    return Trace(service=HISTORY_SERVICE, start=finish - duration, duration=duration,
                 step=step, tracks={"stable": TrackShape(rate=rate, error_ratio=ratio)})


def expected_remaining(trace: Trace, objective: float = BUDGET_OBJECTIVE) -> float:
    """The budget left in percent, from the trace's ground truth (every event it holds)."""
    counts = trace.truth("stable", trace.start - 1, trace.end)
    return 100.0 * (1.0 - (counts.errors / counts.requests) / (1.0 - objective / 100.0))


def history_series(trace: Trace) -> list[Series]:
    """The request counters of the trace (the budget SLO reads nothing else)."""
    return [s for s in trace.series() if s.name == "http_requests_total"]


def start_services_with_history(stack: Stack, history: Sequence[Series],
                                scrape_interval: str = "1s") -> None:
    """``Stack.start_services`` on a Prometheus data directory that already holds HISTORY."""
    stack.stable_app = DemoApp(stack.service, "stable", seed=1).start()
    stack.canary_app = DemoApp(stack.service, "canary", seed=2).start()
    server = PrometheusServer(
        stack.workdir / "prometheus",
        targets=[f"127.0.0.1:{stack.stable_app.port}", f"127.0.0.1:{stack.canary_app.port}"],
        scrape_interval=scrape_interval,
    )
    # One block per ~month: a 30-day history in 2 h blocks takes promtool a minute.
    backfill(history, server.data_dir, server.dir / "history.om.txt",
             max_block_duration="744h")
    stack.prometheus = server.start()
    server.wait_for_targets_up()


def restart_prometheus(stack: Stack) -> str:
    """Start the Stack's Prometheus again on its data directory; returns its new URL."""
    assert stack.prometheus is not None
    stack.prometheus.start()
    stack.prometheus.wait_for_targets_up()
    return stack.prometheus.url


def freeze_policy(name: str, prometheus_url: str, *, service: str = "checkout",
                  when_below: float = 10, release_above: float = 15, in_flight: str = "hold",
                  evaluation_interval: str = "5s", notify: Sequence[str] = ("slack",),
                  open_incident: bool = True, notifications: dict[str, Any] | None = None,
                  overrides: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An SLOPolicy: the gate SLO on live data and the freeze SLO on the history."""
    spec: dict[str, Any] = {
        "service": service,
        "prometheus": {"url": prometheus_url, "timeout": "5s"},
        "evaluationInterval": evaluation_interval,
        "slos": [
            {"name": GATE_SLO, "objective": 99, "window": "1h",
             "sli": {"ratio": {"bad": BAD, "total": TOTAL}},
             "burnRateAlerts": [
                 {"severity": "critical", "factor": 14.4, "long": "5m", "short": "30s"}]},
            {"name": BUDGET_SLO, "objective": BUDGET_OBJECTIVE, "window": f"{WINDOW_DAYS}d",
             "sli": {"ratio": {"bad": BUDGET_BAD, "total": BUDGET_TOTAL}}},
        ],
        "errorBudgetPolicy": {"freezeReleases": {
            "slo": BUDGET_SLO, "whenRemainingBelow": when_below,
            "releaseAbove": release_above, "inFlight": in_flight, "notify": list(notify),
            "openIncident": open_incident}},
    }
    if notifications is not None:
        spec["notifications"] = notifications
    if overrides is not None:
        spec["overrides"] = overrides
    return {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "SLOPolicy",
            "metadata": {"name": name}, "spec": spec}


def patch_policy_spec(api: ApiClient, namespace: str, name: str,
                      patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch of the SLOPolicy's spec, as `kubectl patch --type merge` does."""
    obj = CustomObjectsApi(api).patch_namespaced_custom_object(
        "rolloutctl.dev", "v1alpha1", namespace, "slopolicies", name, {"spec": patch},
        _content_type="application/merge-patch+json", _request_timeout=REQUEST_TIMEOUT)
    return cast(dict[str, Any], obj)


def set_thresholds(stack: Stack, policy: str, when_below: float, release_above: float) -> None:
    """Move the freeze thresholds (releaseAbove must stay at or above whenRemainingBelow)."""
    patch_policy_spec(stack.api, stack.namespace, policy, {"errorBudgetPolicy": {
        "freezeReleases": {"whenRemainingBelow": when_below, "releaseAbove": release_above}}})


def create_target(stack: Stack, name: str, stable_replicas: int = 1) -> None:
    """Another plan's Deployments (stable ``name``, canary ``name-canary``) and HTTPRoute."""
    apps = AppsV1Api(stack.api)
    for doc in (deployment(name, "stable", f"registry.local/{name}:v1", stable_replicas),
                deployment(f"{name}-canary", "canary", f"registry.local/{name}:v1", 0)):
        apps.create_namespaced_deployment(stack.namespace, cast(Any, doc),
                                          _request_timeout=REQUEST_TIMEOUT)
    CustomObjectsApi(stack.api).create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", stack.namespace, "httproutes", http_route(name),
        _request_timeout=REQUEST_TIMEOUT)
    stack.wait_for(lambda: stack.ready_replicas(name) == stable_replicas, 120,
                   f"Deployment {name} ready")


def release(stack: Stack, target: str, version: str) -> None:
    """A new canary pod template for TARGET (``Stack.release`` does it for the service)."""
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": f"registry.local/{target}:{version}"}]}}}}
    AppsV1Api(stack.api).patch_namespaced_deployment(
        f"{target}-canary", stack.namespace, patch,
        _content_type="application/strategic-merge-patch+json",
        _request_timeout=REQUEST_TIMEOUT)


def route_weight(stack: Stack, target: str) -> int:
    """The canary backend's weight in TARGET's HTTPRoute."""
    route = cast(dict[str, Any], CustomObjectsApi(stack.api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", stack.namespace, "httproutes", target,
        _request_timeout=REQUEST_TIMEOUT))
    return canary_weight(route, f"{target}-canary")


def canary_replicas(stack: Stack, target: str) -> int:
    """``spec.replicas`` of TARGET's canary Deployment."""
    return int(stack.deployment(f"{target}-canary")["spec"].get("replicas") or 0)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition TYPE_ of a status (an empty dict when absent)."""
    found: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == type_), {})
    return found


def decisions(status: dict[str, Any], *types: str) -> list[dict[str, Any]]:
    """The plan's recorded decisions, of TYPES when given."""
    return [d for d in status.get("decisions") or [] if not types or d["type"] in types]


def watch(stack: Stack, seconds: float, sample: Any, interval: float = 0.5) -> list[Any]:
    """SAMPLE() every INTERVAL for SECONDS: what a user polling the cluster would have seen."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(sample())
        time.sleep(interval)
    return seen



@dataclass
class FreezeWorld:
    """A running Stack and the history its Prometheus holds."""

    stack: Stack
    history: Trace

    @property
    def remaining(self) -> float:
        """The budget left by the history, in percent (its ground truth)."""
        return expected_remaining(self.history)


@contextmanager
def world_with_history(kubeconfig: Path, api: ApiClient, namespace: str, workdir: Path,
                       remaining_percent: float, *, traffic: bool = True
                       ) -> Iterator[FreezeWorld]:
    """A Stack (demo services, workloads, HTTPRoute, traffic) whose Prometheus also holds a
    30-day history leaving ``remaining_percent`` of the budget. Stopped on exit."""
    stack = Stack(kubeconfig, api, namespace, workdir)
    world = FreezeWorld(stack, budget_trace(remaining_percent))
    try:
        start_services_with_history(stack, history_series(world.history))
        stack.create_workloads()
        if traffic:
            stack.start_traffic()
        yield world
    finally:
        stack.stop()


def rolloutctl(stack: Stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``rolloutctl ARGS --kubeconfig K -n NS`` as a user runs it; stdout and stderr as text."""
    argv = [rolloutctl_binary(), *args, "--kubeconfig", str(stack.kubeconfig),
            "-n", stack.namespace]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "COLUMNS": "200"})
