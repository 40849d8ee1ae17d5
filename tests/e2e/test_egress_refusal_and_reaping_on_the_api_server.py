"""Egress control and clean-up with the real controller on the real API server.

- A policy whose ``spec.prometheus.url`` is a link-local (metadata) address and a probe gate
  pointing there: nothing is sent; the plan's gates say which field was refused and by
  which rule, without any answer of the remote side.
- Deleting a plan stops its prober (the probed server sees no more requests) and removes
  its series from ``/metrics``.
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.harness.fixtures import TestCluster
from tests.harness.stack import Stack, rollout_plan, slo_policy

pytestmark = [pytest.mark.cluster]


def eventually(predicate: Callable[[], Any], timeout: float, what: str,
               seen: Callable[[], Any] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {seen()}"
        time.sleep(0.2)


class CountingServer:
    """Answers 200 to every GET on loopback and counts them."""

    def __init__(self) -> None:
        self.count = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(Path(cluster.kubeconfig), cluster.api_client(), namespace, tmp_path / "stack")
    try:
        s.create_workloads(stable_replicas=1)
        yield s
    finally:
        s.stop()


def gates(stack: Stack) -> dict[str, dict[str, Any]]:
    """The plan's gates by kind (slo, probe)."""
    return {g["kind"]: g for g in stack.safe_status().get("gates") or []}


def test_a_link_local_prometheus_and_probe_are_refused_naming_the_field(stack: Stack) -> None:
    metadata = "http://169.254.169.254"
    stack.apply(slo_policy("platform", stack.service, f"{metadata}/latest"))
    stack.apply(rollout_plan(stack.service, "platform", hold="1h", interval="1s", gates=[
        {"slo": "api_availability"},
        {"probe": {"url": f"{metadata}/latest/meta-data", "interval": "1s"}}]))
    stack.start_controller("egress").wait_ready()
    stack.release("v2")

    def refused() -> dict[str, dict[str, Any]] | None:
        g = gates(stack)
        slo, probe = g.get("slo", {}), g.get("probe", {})
        both = "refused" in slo.get("message", "") and "refused" in probe.get("message", "")
        return g if both else None

    g = eventually(refused, 60, "both gates to report the refusal", stack.safe_status)
    slo_message, probe_message = g["slo"]["message"], g["probe"]["message"]
    assert "spec.prometheus.url" in slo_message and "link-local" in slo_message
    assert "spec.gates[].probe.url" in probe_message and "link-local" in probe_message
    assert g["slo"]["verdict"] == "Inconclusive" and g["probe"]["verdict"] == "Inconclusive"
    assert stack.status().get("canaryWeight", 0) <= 10  # nothing promoted on it


def test_deleting_a_plan_stops_its_prober_and_removes_its_series(stack: Stack) -> None:
    target = CountingServer()
    try:
        stack.apply(slo_policy("platform", stack.service, "http://127.0.0.1:9"))
        stack.apply(rollout_plan(stack.service, "platform", hold="1h", interval="1s", gates=[
            {"probe": {"url": f"{target.url}/health", "interval": "1s"}}]))
        ctl = stack.start_controller("reaper")
        ctl.wait_ready()
        stack.release("v2")
        eventually(lambda: target.count >= 2, 60, "the prober to probe")

        def metrics() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{ctl.metrics_port}/metrics",
                                        timeout=5) as r:
                return str(r.read().decode())

        eventually(lambda: f'plan="{stack.service}"' in metrics()
                   and 'gate="probe:' in metrics(), 30, "the plan's series", metrics)

        client.CustomObjectsApi(stack.api).delete_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", stack.namespace, "rolloutplans", stack.service)
        eventually(lambda: f'plan="{stack.service}"' not in metrics(), 30,
                   "the plan's series to go")

        def quiet() -> bool:
            before = target.count
            time.sleep(3)  # three probe intervals without a probe
            return target.count == before

        eventually(quiet, 30, "the prober to stop")
    finally:
        target.stop()
