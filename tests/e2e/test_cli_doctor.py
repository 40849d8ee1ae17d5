"""`rolloutctl doctor` against a real stack: the CRDs on the API server, the controller's
leader Lease, a live Prometheus and its SLO queries, a Slack bot token checked with
auth.test (the real slack_sdk against a local stand-in) and RBAC through access reviews.
Healthy exits 0; a warning (an SLO query without data) exits 1; a failure exits 2."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.slack_stub import SlackStub
from tests.harness.stack import Stack, rollout_plan, slo_policy

from .test_chart_harness import (
    CONTROLLER_NAMESPACE,
    RBAC_KINDS,
    apply,
    chart,
    delete,
    documents,
    ensure_namespace,
    eventually,
)
from .test_cli_harness import explain, rolloutctl, running_stack

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

SECRET = "rolloutctl-slack"  # the chart's default notifications.secretNames
SLACK = {"slack": {"channel": "#deploys", "tokenSecretRef": {"name": SECRET, "key": "token"}}}


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path,
          slack: SlackStub) -> Iterator[Stack]:
    with running_stack(cluster, namespace, tmp_path / "stack") as s:
        s.create_secret(SECRET, {"token": slack.token})
        s.apply(rollout_plan(s.service, "platform", notifications=SLACK))
        ensure_namespace(s.api, CONTROLLER_NAMESPACE)
        s.start_controller(leader_elect=True, extra=[
            "--lease-namespace", CONTROLLER_NAMESPACE, "--lease-name", release(s),
            "--slack-base-url", slack.api_url])
        s.wait_for(lambda: s.status().get("reason") == "NoNewRevision", 90,
                   "the controller to act on the plan")
        yield s


def release(stack: Stack) -> str:
    """A release name (and Lease name) of this test's own: nothing shared with other tests."""
    return f"doc-{stack.namespace[-6:]}"


@pytest.fixture
def chart_roles(cluster: TestCluster, stack: Stack, tmp_path: Path) -> Iterator[str]:
    """The Helm chart's ServiceAccount, roles and bindings, rendered by `helm template` for a
    release watching only the test's namespace, applied for real; the controller's user."""
    name = release(stack)
    values = {"watchNamespaces": [stack.namespace],
              "leaderElection": {"enabled": True, "leaseName": name}}
    docs = documents(chart(tmp_path, values, release=name), RBAC_KINDS)
    apply(cluster, docs)
    try:
        yield f"system:serviceaccount:{CONTROLLER_NAMESPACE}:{name}-rolloutctl"
    finally:
        delete(cluster, docs)


def doctor(stack: Stack, slack: SlackStub, user: str, *extra: str
           ) -> tuple[int, dict[str, list[str]]]:
    done = rolloutctl(stack, "doctor", "--controller-namespace", CONTROLLER_NAMESPACE,
                      "--lease", release(stack), "--controller-user", user,
                      "--slack-base-url", slack.api_url, *extra)
    lines: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        m = re.match(r"^(OK|WARN|FAIL)\s+(.+?): (.*)$", line)
        if m:
            lines.setdefault(m.group(2), []).append(f"{m.group(1)} {m.group(3)}")
    assert lines, explain(stack, done)
    assert slack.token not in done.stdout + done.stderr
    return done.returncode, lines


def healthy(result: tuple[int, dict[str, list[str]]]) -> tuple[int, dict[str, list[str]]]:
    """RESULT, once doctor found it healthy (RBAC reaches the authorizer a moment late)."""
    assert result[0] == 0, result[1]
    return result


def test_doctor_healthy_then_degraded_then_unhealthy(stack: Stack, slack: SlackStub,
                                                    chart_roles: str) -> None:
    """With exactly the chart's RBAC for the controller, everything checks out."""
    ns, lease = stack.namespace, release(stack)
    code, lines = eventually(lambda: healthy(doctor(stack, slack, chart_roles)), timeout=30)
    assert code == 0, lines
    assert lines["crds"] == ["OK rolloutplans.rolloutctl.dev installed and current",
                             "OK slopolicies.rolloutctl.dev installed and current"]
    [controller] = lines["controller"]
    assert re.fullmatch(rf"OK controller-0 leads \(Lease {CONTROLLER_NAMESPACE}/{lease} renewed "
                        r"\d+(\.\d+)?s ago\)", controller), controller
    assert stack.prometheus is not None
    assert lines["prometheus"] == [f"OK {stack.prometheus.url} is ready"]
    for slo in ("api_availability", "request_latency"):
        [check] = lines[f"slo platform/{slo}"]
        assert check.startswith("OK returns data for track=stable over 5m (value "), check
    assert lines["slack"] == [f"OK auth.test passes with Secret {ns}/{SECRET} key token (used "
                              "by RolloutPlan checkout)"]
    assert lines["rbac (you)"] == [f"OK admin may do what rolloutctl does in {ns}"]
    assert lines["rbac (controller)"] == [
        f"OK {chart_roles} may do what the controller does in {ns}"]

    # a policy whose SLO has no data: degraded (exit 1)
    assert stack.prometheus is not None
    policy = slo_policy("empty", "nothing-here", stack.prometheus.url)
    policy["spec"]["slos"] = policy["spec"]["slos"][:1]
    stack.apply(policy)
    code, lines = doctor(stack, slack, chart_roles)
    assert code == 1, lines
    [check] = lines["slo empty/api_availability"]
    assert check.startswith("WARN no data for track=stable over 5m")
    assert check.endswith("check the metric names and labels (service, track) of the query")

    # a bad Slack token, a Prometheus that is down, no leader Lease: unhealthy (exit 2)
    stack.core.patch_namespaced_secret(SECRET, ns, {"stringData": {"token": "xoxb-wrong"}})
    code, lines = doctor(stack, slack, chart_roles, "--prometheus-url", "http://127.0.0.1:9",
                         "--lease", "nobody-leads")
    assert code == 2, lines
    [check] = lines["slack"]
    assert check.startswith(f"FAIL auth.test with Secret {ns}/{SECRET} key token (used by "
                            "RolloutPlan checkout) failed: AuthFailed")
    assert "xoxb-wrong" not in check
    assert lines["prometheus"] == ["FAIL http://127.0.0.1:9 unreachable (ConnectionRefusedError);"
                                   " check the URL and that Prometheus runs"]
    assert lines["controller"][0].startswith(f"FAIL no Lease {CONTROLLER_NAMESPACE}/nobody-leads")


def test_doctor_names_what_the_controller_may_not_do(stack: Stack, slack: SlackStub) -> None:
    """No role bound to the controller's ServiceAccount: each missing right is named."""
    ns = stack.namespace
    user = f"system:serviceaccount:{CONTROLLER_NAMESPACE}:{release(stack)}-rolloutctl"
    code, lines = doctor(stack, slack, user)
    assert code == 2
    [check] = lines["rbac (controller)"]
    assert check == (
        f"FAIL {user} may not get/list/watch rolloutplans.rolloutctl.dev in {ns}; "
        f"get/list/watch slopolicies.rolloutctl.dev in {ns}; "
        f"update/patch rolloutplans/status.rolloutctl.dev in {ns}; "
        f"update/patch slopolicies/status.rolloutctl.dev in {ns}; "
        f"get/list/watch/patch deployments.apps in {ns}; "
        f"patch deployments/scale.apps in {ns}; list pods in {ns}; "
        f"list horizontalpodautoscalers.autoscaling in {ns}; create events in {ns}; "
        f"get/patch httproutes.gateway.networking.k8s.io in {ns}; "
        f"get secrets {SECRET} in {ns}; create leases.coordination.k8s.io in "
        f"{CONTROLLER_NAMESPACE}; get/watch/patch leases.coordination.k8s.io {release(stack)} "
        f"in {CONTROLLER_NAMESPACE}; install the chart's roles and bindings (helm/rolloutctl: "
        "watchNamespaces, notifications.secretNames, leaderElection.leaseName)")
    assert all(v[0].startswith("OK") for k, v in lines.items() if k != "rbac (controller)")
