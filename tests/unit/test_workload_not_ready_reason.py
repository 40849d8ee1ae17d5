"""Why a Deployment is not ready, read from its pods and conditions as the kubelet, the
scheduler and the Deployment controller report it."""

from __future__ import annotations

from typing import Any

from controller.adapters.kube.workloads import not_ready_reason


def pod(*statuses: dict[str, Any], conditions: list[dict[str, Any]] | None = None
        ) -> dict[str, Any]:
    return {"status": {"containerStatuses": list(statuses), "conditions": conditions or []}}


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"name": "app", "ready": False, "state": {"waiting": {"reason": reason,
                                                                 "message": message}}}


def test_a_container_waiting_to_pull_names_the_reason_and_the_image() -> None:
    reason, message = not_ready_reason({}, [pod(waiting("ContainerCreating")), pod(
        waiting("ImagePullBackOff", 'Back-off pulling image "checkout:v9"'))])
    assert (reason, message) == ("ImagePullBackOff", 'Back-off pulling image "checkout:v9"')


def test_a_crash_loop_wins_over_an_unschedulable_pod() -> None:
    unschedulable = pod(conditions=[{"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable", "message": "0/2 nodes"}])
    crashing = pod({"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}})
    assert not_ready_reason({}, [unschedulable, crashing])[0] == "CrashLoopBackOff"
    assert not_ready_reason({}, [unschedulable]) == ("Unschedulable", "0/2 nodes")


def test_without_pods_the_deployments_conditions_explain() -> None:
    deployment = {"status": {"conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": "ReplicaSet has timed out progressing."},
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": "exceeded quota"}]}}
    assert not_ready_reason(deployment, []) == ("FailedCreate", "exceeded quota")


def test_pods_still_starting_explain_nothing() -> None:
    assert not_ready_reason({}, [pod(waiting("ContainerCreating"))]) == ("", "")
