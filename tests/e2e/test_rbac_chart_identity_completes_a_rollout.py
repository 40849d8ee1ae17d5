"""The chart's RBAC is enough: the real `rolloutctl run`, authenticated as the chart's
service account (token user ``system:serviceaccount:rolloutctl-system:rolloutctl``) and bound
only by the chart's roles, takes a release 10 -> 25 -> 50 -> 100 % to Succeeded, with two
replicas electing a leader on the chart's Lease and a Slack token read from the one Secret
the chart names. Without one of those rights the run would stall (and these tests fail).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.cluster import CONTROLLER_USER, free_port
from tests.harness.fixtures import TestCluster
from tests.harness.slack_stub import SlackStub
from tests.harness.stack import (
    ControllerProcess,
    Stack,
    rollout_plan,
    rolloutctl_binary,
    slo_policy,
)

from .test_chart_harness import CHART, CONTROLLER_NAMESPACE, chart_rbac, eventually, http_get

DASHBOARD = CHART / "files" / "dashboards" / "rolloutctl.json"


#: what the controller logs when the API server or a Secret says no
REFUSED = re.compile(r"forbidden|not allowed", re.IGNORECASE)
# What the chart means to refuse: a Secret it was not told about (notifications.secretNames)
UNLISTED_SECRET = re.compile(r"not allowed to read Secret \S+/\S+$")


def refusals(log: str) -> list[str]:
    """The lines where the API server refused the controller something the chart should
    grant (a plan of another test naming a Secret outside secretNames is refused by design)."""
    return [line for line in log.splitlines()
            if REFUSED.search(line) and not UNLISTED_SECRET.search(line)]


def readyz(controller: ControllerProcess) -> str:
    status, body = http_get(f"http://127.0.0.1:{controller.metrics_port}/readyz")
    assert status == 200, body
    return body


def _equal(got: object, want: object) -> None:
    assert got == want, f"{got!r} != {want!r}"


def lease_name(namespace: str) -> str:
    return f"rolloutctl-{namespace}"[:63].rstrip("-")


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(Path(cluster.kubeconfig), cluster.api_client(), namespace, tmp_path / "stack")
    try:
        s.start_services()
        s.create_workloads()
        s.start_traffic()
        yield s
    finally:
        s.stop()


@pytest.mark.cluster
@pytest.mark.prometheus
@pytest.mark.slow
def test_the_charts_service_account_completes_a_rollout(
    cluster: TestCluster, stack: Stack, tmp_path: Path,
) -> None:
    namespace = stack.namespace
    lease = lease_name(namespace)
    values = {"watchNamespaces": [namespace], "leaderElection": {"leaseName": lease},
              "notifications": {"secretNames": ["deploy-bot"]}}
    with SlackStub() as slack, chart_rbac(cluster, tmp_path, values):
        assert stack.prometheus is not None
        stack.create_secret("deploy-bot", {"token": slack.token})
        stack.create_secret("unrelated", {"token": "never-read"})
        stack.apply(slo_policy("platform", stack.service, stack.prometheus.url))
        stack.apply(rollout_plan(stack.service, "platform", notifications={"slack": {
            "channel": "#deploys", "tokenSecretRef": {"name": "deploy-bot", "key": "token"}}}))

        identity = cluster.kubeconfig_for(CONTROLLER_USER)
        args = ["--lease-name", lease, "--slack-base-url", slack.api_url]
        leader = stack.start_controller("replica-0", leader_elect=True, kubeconfig=identity,
                                        lease_namespace=CONTROLLER_NAMESPACE, extra=args)
        leader.wait_ready(60)
        eventually(lambda: _equal(readyz(leader), "ok (leader replica-0)"))
        standby = stack.start_controller("replica-1", leader_elect=True, kubeconfig=identity,
                                         lease_namespace=CONTROLLER_NAMESPACE, extra=args)
        standby.wait_ready(60)  # it reads and watches the Lease by name
        eventually(lambda: _equal(readyz(standby), "ok (standby; leader replica-0)"))

        stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 60,
                       "the plan to see nothing to roll out")
        stack.release("v2")
        stack.wait_for(lambda: stack.status().get("phase") == "Succeeded", 240, "Succeeded")

        status = stack.status()
        assert [d["weight"] for d in status["decisions"] if d["type"] == "StepAdvanced"] == [
            10, 25, 50, 100]
        stable = stack.deployment(stack.service)
        assert stable["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")
        assert stack.deployment(f"{stack.service}-canary")["spec"]["replicas"] == 0
        assert stack.route_weight() == 0
        reasons = {e["reason"] for e in stack.events()
                   if e["involvedObject"]["kind"] == "RolloutPlan"}
        assert "StepAdvanced" in reasons, reasons  # Events were created

        # Slack was told, with the token from the Secret the chart lets it read
        def announced() -> None:
            assert slack.roots("deploys"), "no Slack message"
            state = stack.status().get("notifications") or {}
            assert not state.get("outbox"), state
            assert state.get("slack", {}).get("threadTs") == slack.roots("deploys")[0].ts
        eventually(announced, timeout=60)
        assert slack.calls() and all(c.authorized for c in slack.calls())

        logs = leader.log.read_text() + standby.log.read_text()
        assert not REFUSED.search(logs), [
            line for line in logs.splitlines() if REFUSED.search(line)][:5]
        assert leader.alive() and standby.alive()

        # the dashboard's metrics are on the leader's /metrics
        _, text = http_get(f"http://127.0.0.1:{leader.metrics_port}/metrics")
        served = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))
        dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
        queried = {re.sub(r"_(bucket|sum|count)$", "", name)
                   for panel in dashboard["panels"] for t in panel.get("targets", [])
                   for name in re.findall(r"\brolloutctl_[a-z_]+", t["expr"])}
        assert queried <= served, sorted(queried - served)


@pytest.mark.cluster
def test_with_the_default_cluster_role_it_watches_every_namespace(
    cluster: TestCluster, tmp_path: Path,
) -> None:
    # the default install: a ClusterRole, and `rolloutctl run` without --namespace lists
    # and watches plans, policies and Deployments cluster-wide and takes the Lease
    lease = lease_name(f"cluster-wide-{os.getpid()}")
    with chart_rbac(cluster, tmp_path, {"leaderElection": {"leaseName": lease}}):
        port = free_port()
        log = tmp_path / "controller.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [rolloutctl_binary(), "run",
                 "--kubeconfig", str(cluster.kubeconfig_for(CONTROLLER_USER)),
                 "--identity", "cluster-wide", "--lease-name", lease,
                 "--lease-namespace", CONTROLLER_NAMESPACE,
                 "--metrics-address", f"127.0.0.1:{port}", "--log-format", "text"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            def ready() -> None:
                assert process.poll() is None, log.read_text()
                status, body = http_get(f"http://127.0.0.1:{port}/readyz")
                assert (status, body) == (200, "ok (leader cluster-wide)"), body

            eventually(ready, timeout=60, interval=0.25)
            assert "namespaces: all" in log.read_text()
            # every namespace's plans are listed and watched; a plan of another namespace
            # naming a Secret the chart does not list is refused that Secret, as documented
            assert not refusals(log.read_text()), log.read_text()
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)
