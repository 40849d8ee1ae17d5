"""The operator's requests against the real controller process: `promote`, `pause`,
`resume`, `promote --full`, `abort`, `retry`, each written into the plan with a fresh id
and who asked, and (with --wait) followed until the controller has handled that id. What
they did is read back from the plan's status and the HTTPRoute, not from the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.stack import Stack, rollout_plan

from .test_cli_harness import explain, rolloutctl, running_stack, start_controller

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

LONG_HOLDS = [{"weight": w, "hold": "1h"} for w in (10, 25, 50, 100)]


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(cluster, namespace, tmp_path / "stack") as s:
        yield s


def at_first_step(stack: Stack) -> None:
    stack.apply(rollout_plan(stack.service, "platform", steps=LONG_HOLDS))
    start_controller(stack)
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 90,
                   "the plan to see nothing to roll out")
    stack.release("v2")
    stack.wait_for(lambda: stack.status().get("stepStartedAt") is not None
                   and stack.status().get("currentStep") == 0, 90, "step 1 (10 %)")


def request_id(stdout: str, kind: str) -> str:
    m = re.search(rf"{kind} requested for \S+ \(request ([0-9a-f]{{8}}) by admin\)", stdout)
    assert m, stdout
    return m.group(1)


def test_promote_pause_resume_and_promote_full(stack: Stack) -> None:
    at_first_step(stack)
    assert stack.route_weight() == 10

    done = rolloutctl(stack, "promote", "checkout", "--reason", "looks good", "--wait")
    assert done.returncode == 0, explain(stack, done)
    rid = request_id(done.stdout, "promotion")
    assert f"handled: promote request {rid}; phase Progressing, step 2/4, canary weight 25%" \
        in done.stdout
    assert "StepAdvanced" in done.stdout
    plan = stack.plan()
    assert plan["spec"]["requests"]["promote"] == {
        "id": rid, "by": "admin", "at": plan["spec"]["requests"]["promote"]["at"],
        "reason": "looks good", "full": False}
    assert plan["status"]["handled"]["promote"] == rid
    assert stack.route_weight() == 25

    done = rolloutctl(stack, "pause", "checkout", "--wait")
    assert done.returncode == 0, explain(stack, done)
    assert stack.plan()["spec"]["paused"] is True
    stack.wait_for(lambda: stack.status()["phase"] == "Paused", 30, "Paused")
    assert stack.status()["reason"] == "PausedByOperator"

    done = rolloutctl(stack, "resume", "checkout", "--wait")
    assert done.returncode == 0, explain(stack, done)
    rid = request_id(done.stdout, "resume")
    plan = stack.plan()
    assert plan["spec"]["paused"] is False and plan["status"]["handled"]["resume"] == rid
    stack.wait_for(lambda: stack.status()["phase"] in ("Progressing", "Holding"), 30,
                   "running again")
    assert stack.route_weight() == 25

    done = rolloutctl(stack, "promote", "checkout", "--full", "--wait")
    assert done.returncode == 0, explain(stack, done)
    assert "PromotedFull" in done.stdout
    stack.wait_for(lambda: stack.status()["phase"] == "Succeeded", 90, "Succeeded")
    assert stack.route_weight() == 0  # stable took the canary's template and all traffic
    image = stack.deployment("checkout")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":v2")

    # no run in progress: the controller handles the request but ignores it (exit 1)
    done = rolloutctl(stack, "promote", "checkout", "--wait")
    assert done.returncode == 1, explain(stack, done)
    assert "RequestIgnored" in done.stdout and "NoRunInProgress" in done.stdout


def test_abort_rolls_back_and_retry_starts_a_new_run(stack: Stack) -> None:
    at_first_step(stack)
    done = rolloutctl(stack, "abort", "checkout", "--reason", "wrong config", "--wait")
    assert done.returncode == 0, explain(stack, done)
    assert "RollbackStarted" in done.stdout
    stack.wait_for(lambda: stack.status()["phase"] == "RolledBack", 60, "RolledBack")
    status = stack.status()
    assert status["reason"] == "Aborted" and "aborted by admin: wrong config" in status["message"]
    assert stack.route_weight() == 0
    assert rolloutctl(stack, "status", "checkout").returncode == 1

    done = rolloutctl(stack, "retry", "checkout", "--wait")
    assert done.returncode == 0, explain(stack, done)
    assert "RunStarted" in done.stdout
    stack.wait_for(lambda: stack.status().get("run") == 2
                   and stack.status().get("stepStartedAt") is not None, 60, "run 2 at 10 %")
    assert stack.route_weight() == 10
    assert rolloutctl(stack, "status", "checkout").returncode == 0
