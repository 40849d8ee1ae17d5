"""`rolloutctl doctor` against a real stack: the CRDs on the API server, the controller's
leader Lease, a live Prometheus and its SLO queries, a Slack bot token checked with
auth.test (the real slack_sdk against a local stand-in) and RBAC through access reviews.
Healthy exits 0; a warning (an SLO query without data) exits 1; a failure exits 2."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from controller.testing.fixtures import TestCluster
from controller.testing.slack_stub import SlackStub
from controller.testing.stack import Stack, rollout_plan, slo_policy

from .test_cli_harness import explain, rolloutctl, running_stack

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

SLACK = {"slack": {"channel": "#deploys", "tokenSecretRef": {"name": "slack", "key": "token"}}}
# What the controller's ClusterRole grants (as the Helm chart will).
CONTROLLER_RULES = [
    {"apiGroups": ["rolloutctl.dev"], "resources": ["rolloutplans", "slopolicies"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["rolloutctl.dev"], "resources": ["rolloutplans/status",
                                                     "slopolicies/status"],
     "verbs": ["get", "update", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]},
    {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"],
     "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "verbs": ["get", "create", "update", "patch"]},
]


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path,
          slack: SlackStub) -> Iterator[Stack]:
    with running_stack(cluster, namespace, tmp_path / "stack") as s:
        s.create_secret("slack", {"token": slack.token})
        s.apply(rollout_plan(s.service, "platform", notifications=SLACK))
        s.start_controller(leader_elect=True, extra=[
            "--lease-name", "rolloutctl-controller", "--slack-base-url", slack.api_url])
        s.wait_for(lambda: s.status().get("reason") == "NoNewRevision", 90,
                   "the controller to act on the plan")
        yield s


@pytest.fixture
def controller_rbac(stack: Stack) -> Iterator[str]:
    """A ClusterRole for the controller bound to its ServiceAccount (by name) in the test's
    namespace; removed afterwards."""
    rbac = client.RbacAuthorizationV1Api(stack.api)
    name = f"rolloutctl-{stack.namespace}"
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": CONTROLLER_RULES})
    rbac.create_cluster_role_binding({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "rolloutctl",
                      "namespace": stack.namespace}]})
    try:
        yield name
    finally:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)


def doctor(stack: Stack, slack: SlackStub, *extra: str) -> tuple[int, dict[str, list[str]]]:
    done = rolloutctl(stack, "doctor", "--controller-namespace", stack.namespace,
                      "--slack-base-url", slack.api_url, *extra)
    lines: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        m = re.match(r"^(OK|WARN|FAIL)\s+(.+?): (.*)$", line)
        if m:
            lines.setdefault(m.group(2), []).append(f"{m.group(1)} {m.group(3)}")
    assert lines, explain(stack, done)
    assert slack.token not in done.stdout + done.stderr
    return done.returncode, lines


def test_doctor_healthy_then_degraded_then_unhealthy(stack: Stack, slack: SlackStub,
                                                    controller_rbac: str) -> None:
    ns = stack.namespace
    code, lines = doctor(stack, slack)
    assert code == 0, lines
    assert lines["crds"] == ["OK rolloutplans.rolloutctl.dev installed and current",
                             "OK slopolicies.rolloutctl.dev installed and current"]
    [controller] = lines["controller"]
    assert re.fullmatch(rf"OK controller-0 leads \(Lease {ns}/rolloutctl-controller renewed "
                        r"\d+(\.\d+)?s ago\)", controller), controller
    assert stack.prometheus is not None
    assert lines["prometheus"] == [f"OK {stack.prometheus.url} is ready"]
    for slo in ("api_availability", "request_latency"):
        [check] = lines[f"slo platform/{slo}"]
        assert check.startswith("OK returns data for track=stable over 5m (value "), check
    assert lines["slack"] == [f"OK auth.test passes with Secret {ns}/slack key token (used by "
                              "RolloutPlan checkout)"]
    assert lines["rbac (you)"] == [f"OK admin may do what rolloutctl does in {ns}"]
    assert lines["rbac (controller)"] == [
        f"OK system:serviceaccount:{ns}:rolloutctl may do what the controller does in {ns}"]

    # a policy whose SLO has no data: degraded (exit 1)
    assert stack.prometheus is not None
    policy = slo_policy("empty", "nothing-here", stack.prometheus.url)
    policy["spec"]["slos"] = policy["spec"]["slos"][:1]
    stack.apply(policy)
    code, lines = doctor(stack, slack)
    assert code == 1, lines
    [check] = lines["slo empty/api_availability"]
    assert check.startswith("WARN no data for track=stable over 5m")
    assert check.endswith("check the metric names and labels (service, track) of the query")

    # a bad Slack token, a Prometheus that is down, no leader Lease: unhealthy (exit 2)
    stack.core.patch_namespaced_secret("slack", ns, {"stringData": {"token": "xoxb-wrong"}})
    code, lines = doctor(stack, slack, "--prometheus-url", "http://127.0.0.1:9",
                         "--lease", "nobody-leads")
    assert code == 2, lines
    [check] = lines["slack"]
    assert check.startswith(f"FAIL auth.test with Secret {ns}/slack key token (used by "
                            "RolloutPlan checkout) failed: AuthFailed")
    assert "xoxb-wrong" not in check
    assert lines["prometheus"] == ["FAIL http://127.0.0.1:9 unreachable (ConnectionRefusedError);"
                                   " check the URL and that Prometheus runs"]
    assert lines["controller"][0].startswith(f"FAIL no Lease {ns}/nobody-leads")


def test_doctor_names_what_the_controller_may_not_do(stack: Stack, slack: SlackStub) -> None:
    code, lines = doctor(stack, slack)
    assert code == 2
    [check] = lines["rbac (controller)"]
    assert check.startswith(f"FAIL system:serviceaccount:{stack.namespace}:rolloutctl may not "
                            "get/list/watch rolloutplans.rolloutctl.dev;")
    assert "apply the controller's ClusterRole and bindings" in check
    assert all(v[0].startswith("OK") for k, v in lines.items() if k != "rbac (controller)")
