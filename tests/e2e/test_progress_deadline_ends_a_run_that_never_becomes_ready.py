"""analysis.progressDeadline end to end: the real `rolloutctl run` on the local control plane
(kube-controller-manager, scheduler, kwok). Pods annotated ``kwok.x-k8s.io/status: custom``
are left alone by kwok; the test plays their kubelet and writes their status through the
``pods/status`` subresource, as a kubelet would: ImagePullBackOff for a canary that cannot be
pulled, CrashLoopBackOff for a stable that crashes once it takes the canary's template.

What a user sees is asserted: the phase and reason in status, the Events, the
``rolloutctl_runs_failed_total`` metric and the Slack alarm in the critical channel.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.harness.fixtures import TestCluster
from tests.harness.slack_stub import SlackStub
from tests.harness.stack import ControllerProcess, Stack, rollout_plan

pytestmark = [pytest.mark.cluster]

CUSTOM = {"kwok.x-k8s.io/status": "custom"}
MERGE = "application/merge-patch+json"


class Kubelet:
    """Writes the status of the pods kwok disregards, once per pod, as STATUS_FOR says."""

    def __init__(self, stack: Stack, status_for: Callable[[dict[str, Any]], dict[str, Any]]):
        self.stack = stack
        self.status_for = status_for
        self.done: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self) -> Kubelet:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def run(self) -> None:
        while not self.stop.wait(0.3):
            try:
                pods = self.stack.core.list_namespaced_pod(self.stack.namespace).items
            except ApiException:
                continue
            for pod in pods:
                meta, spec = pod.metadata, pod.spec
                if (meta.uid in self.done or not spec.node_name
                        or (meta.annotations or {}).get("kwok.x-k8s.io/status") != "custom"):
                    continue
                body = {"status": self.status_for(self.stack.raw.sanitize_for_serialization(
                    pod))}
                try:
                    self.stack.core.patch_namespaced_pod_status(
                        meta.name, self.stack.namespace, body, _content_type=MERGE)
                    self.done.add(meta.uid)
                except ApiException:
                    pass


def conditions(ready: bool) -> list[dict[str, str]]:
    value = "True" if ready else "False"
    return [{"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": value},
            {"type": "Ready", "status": value}]


def image_pull_back_off(pod: dict[str, Any]) -> dict[str, Any]:
    image = pod["spec"]["containers"][0]["image"]
    return {"phase": "Pending", "conditions": conditions(False), "containerStatuses": [{
        "name": "app", "image": image, "imageID": "", "ready": False, "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff",
                              "message": f'Back-off pulling image "{image}"'}}}]}


def ready_on_canary_crashing_on_stable(pod: dict[str, Any]) -> dict[str, Any]:
    image = pod["spec"]["containers"][0]["image"]
    if pod["metadata"]["labels"].get("track") == "canary":
        return {"phase": "Running", "podIP": "10.244.200.1", "conditions": conditions(True),
                "containerStatuses": [{
                    "name": "app", "image": image, "imageID": "", "ready": True,
                    "restartCount": 0, "started": True,
                    "state": {"running": {"startedAt": "2026-12-01T00:00:00Z"}}}]}
    return {"phase": "Running", "podIP": "10.244.200.2", "conditions": conditions(False),
            "containerStatuses": [{
                "name": "app", "image": image, "imageID": "", "ready": False,
                "restartCount": 4, "started": False,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 40s restarting failed container"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(Path(cluster.kubeconfig), cluster.api_client(), namespace, tmp_path / "stack")
    try:
        s.create_workloads()
        yield s
    finally:
        s.stop()


@pytest.fixture
def slack(stack: Stack) -> Iterator[SlackStub]:
    with SlackStub() as stub:
        stack.create_secret("slack", {"token": stub.token})
        yield stub


def start(stack: Stack, slack: SlackStub, steps: list[int]) -> ControllerProcess:
    plan = rollout_plan(stack.service, "unused", hold="2s", interval="1s", notifications={
        "slack": {"channel": "#deploys", "criticalChannel": "#oncall",
                  "tokenSecretRef": {"name": "slack", "key": "token"}}})
    spec = plan["spec"]
    del spec["sloPolicyRef"]
    spec["gates"] = []
    spec["steps"] = [{"weight": w, "hold": "2s"} for w in steps]
    spec["analysis"] = {"interval": "1s", "progressDeadline": "10s"}
    stack.apply(plan)
    controller = stack.start_controller(extra=["--slack-base-url", slack.api_url])
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 60,
                   "the plan to see nothing to roll out")
    return controller


def release(stack: Stack, version: str) -> None:
    """A new canary template that kwok leaves to the test's kubelet."""
    patch = {"spec": {"template": {"metadata": {"annotations": CUSTOM}, "spec": {"containers": [
        {"name": "app", "image": f"registry.local/checkout:{version}"}]}}}}
    stack.apps.patch_namespaced_deployment(
        f"{stack.service}-canary", stack.namespace, patch,
        _content_type="application/strategic-merge-patch+json")


def metric(controller: ControllerProcess, outcome: str, reason: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{controller.metrics_port}/metrics",
                                timeout=5) as response:
        text = response.read().decode()
    want = f'rolloutctl_runs_failed_total{{outcome="{outcome}",reason="{reason}"}} '
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(want))


def plan_events(stack: Stack) -> dict[str, str]:
    return {e["reason"]: e["message"] for e in stack.events()
            if e["involvedObject"]["kind"] == "RolloutPlan"}


def alarm_in(slack: SlackStub, channel: str, *words: str) -> bool:
    return any(all(w in (m.text + str(m.blocks)) for w in words)
               for m in slack.messages(channel))


def test_a_canary_that_cannot_be_pulled_is_rolled_back_at_the_deadline_with_the_reason(
    stack: Stack, slack: SlackStub,
) -> None:
    controller = start(stack, slack, [10, 50, 100])
    with Kubelet(stack, image_pull_back_off):
        release(stack, "v9")
        waiting = stack.wait_for(lambda: "ImagePullBackOff" in stack.status().get(
            "message", "") and stack.status(), 30, "the wait to name ImagePullBackOff")
        assert waiting["phase"] == "Progressing" and waiting["reason"] == "WaitingForCanary"
        status = stack.wait_for(lambda: stack.status().get("phase") == "RolledBack"
                                and stack.status(), 60, "RolledBack")
    assert status["reason"] == "ProgressDeadlineExceeded"
    assert "ImagePullBackOff" in status["message"], status["message"]
    assert status["history"][-1]["outcome"] == "RolledBack"
    # traffic never left stable, the canary is scaled down, stable kept its template
    assert stack.route_weight() == 0
    assert stack.deployment(f"{stack.service}-canary")["spec"]["replicas"] == 0
    stable = stack.deployment(stack.service)
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v1")
    assert not [d for d in status["decisions"] if d["type"] == "StepAdvanced"]
    # the alarm everywhere a user looks: Event, metric, Slack's critical channel
    events = stack.wait_for(lambda: "RolledBack" in plan_events(stack) and plan_events(stack),
                            30, "a RolledBack Event")
    assert "ImagePullBackOff" in events["RollbackStarted"]
    assert "ImagePullBackOff" in events["RolledBack"]
    stack.wait_for(lambda: metric(controller, "RolledBack", "ProgressDeadlineExceeded") == 1,
                   30, "rolloutctl_runs_failed_total for the deadline")
    stack.wait_for(lambda: alarm_in(slack, "oncall", "ImagePullBackOff", "rolling back"), 30,
                   "the Slack alarm in #oncall")


def test_a_stable_that_crashes_after_taking_the_template_fails_the_run_at_the_deadline(
    stack: Stack, slack: SlackStub,
) -> None:
    controller = start(stack, slack, [100])
    with Kubelet(stack, ready_on_canary_crashing_on_stable):
        release(stack, "v2")
        stack.wait_for(lambda: stack.status().get("reason") == "WaitingForStable"
                       and "CrashLoopBackOff" in stack.status().get("message", ""), 60,
                       "promotion waiting on a crash-looping stable")
        status = stack.wait_for(lambda: stack.status().get("phase") == "Failed"
                                and stack.status(), 60, "Failed")
    assert status["reason"] == "ProgressDeadlineExceeded"
    assert "CrashLoopBackOff" in status["message"] and "stable" in status["message"]
    assert status["history"][-1]["outcome"] == "Failed"
    # the canary passed every step: it keeps serving rather than a stable that cannot
    assert stack.route_weight() == 100 and status["canaryWeight"] == 100
    assert stack.ready_replicas(f"{stack.service}-canary") >= 1
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "ProgressDeadlineExceeded"
    events = stack.wait_for(lambda: "Failed" in plan_events(stack) and plan_events(stack),
                            30, "a Failed Event")
    assert "CrashLoopBackOff" in events["Failed"]
    warnings = {e["reason"]: e["type"] for e in stack.events()}
    assert warnings["Failed"] == "Warning"
    stack.wait_for(lambda: metric(controller, "Failed", "ProgressDeadlineExceeded") == 1,
                   30, "rolloutctl_runs_failed_total for the failed promotion")
    stack.wait_for(lambda: alarm_in(slack, "oncall", "CrashLoopBackOff", "failed"), 30,
                   "the Slack alarm in #oncall")
