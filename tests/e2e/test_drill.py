"""`rolloutctl drill` against the real controller process on the local control plane: a
drill on a plan at 25 % takes the HTTPRoute's canary weight to 0 and prints the timings;
with --restore the plan returns to 25 %; --dry-run prints the engine's actions and changes
nothing; a plan that is not mid-run gets the synthetic drill."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.stack import Stack, rollout_plan

from .test_cli_harness import (
    AT_25,
    explain,
    plan_at_25,
    rolloutctl,
    route_watch,
    running_stack,
    start_controller,
)

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

TIMING = re.compile(r"^(requested|rollback started|canary weight 0|stable ready|restored)"
                    r"\s+(\d\d:\d\d:\d\d\.\d{3}Z)\s+(\d+(\.\d+)?s|\d+m\d*s?)\s+(\S+)\s*$")


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(cluster, namespace, tmp_path / "stack") as s:
        yield s


def timings(stdout: str) -> dict[str, str]:
    """Stage -> time since the request, from the printed table."""
    out = {}
    for line in stdout.splitlines():
        m = TIMING.match(line.strip())
        if m:
            out[m.group(1)] = m.group(3)
    return out


def seconds(text: str) -> float:
    return float(text.rstrip("s"))


def test_drill_at_25_takes_the_route_to_0_and_prints_the_timings(stack: Stack) -> None:
    plan_at_25(stack)
    done = rolloutctl(stack, "drill", "checkout", "--max-duration", "60s")
    assert done.returncode == 0, explain(stack, done)
    out = done.stdout
    assert re.search(r"drill [0-9a-f]{8} on .*/checkout: Succeeded\s+mid-run", out), out
    stages = timings(out)
    assert list(stages) == ["requested", "rollback started", "canary weight 0", "stable ready"]
    took = [seconds(stages[s]) for s in stages]
    assert took == sorted(took) and 0 <= took[-1] < 60, stages
    assert re.search(r"total \d+\.\d\ds \(max 60s\)", out)
    # read back independently: the route sends nothing to the canary, which is scaled down
    assert stack.route_weight() == 0
    assert stack.deployment("checkout-canary")["spec"]["replicas"] == 0
    status = stack.status()
    assert status["phase"] == "RolledBack" and status["reason"] == "Drill"
    report = status["drills"][-1]
    assert report["outcome"] == "Succeeded" and report["by"] == "admin"
    assert report["canaryWeightZeroAt"] and report["stableReadyAt"]
    # `status` now reports the rolled-back run with exit code 1
    shown = rolloutctl(stack, "status", "checkout")
    assert shown.returncode == 1 and "phase RolledBack  Drill" in shown.stdout


def test_drill_restore_returns_to_25_and_dry_run_changes_nothing(stack: Stack) -> None:
    plan_at_25(stack)
    before = stack.plan()
    dry = rolloutctl(stack, "drill", "checkout", "--restore", "--dry-run")
    assert dry.returncode == 0, explain(stack, dry)
    assert [line.strip() for line in dry.stdout.splitlines() if re.match(r"\s+\d\.", line)] == [
        "1. set canary weight to 0%", "2. scale canary to 0 replica(s)",
        "3. scale canary to 1 replica(s)", "4. set canary weight to 25%"]
    assert "restored (phase Progressing at step 2, canary weight 25%)" in dry.stdout
    after = stack.plan()
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert "drill" not in (after["spec"].get("requests") or {})
    assert stack.route_weight() == 25

    with route_watch(stack) as route:
        done = rolloutctl(stack, "drill", "checkout", "--restore", "--max-duration", "60s")
    assert done.returncode == 0, explain(stack, done)
    assert list(timings(done.stdout)) == ["requested", "rollback started", "canary weight 0",
                                          "stable ready", "restored"]
    # the route went to 0 and came back to 25, read back from the HTTPRoute
    assert route.seen[0] == 25 and 0 in route.seen and route.seen[-1] == 25, route.seen
    status = stack.status()
    assert status["phase"] == "Progressing"  # reason DrillRestored, then HoldingStep
    assert [d["type"] for d in status["decisions"]][-3:] == [
        "DrillStarted", "RollbackStarted", "DrillCompleted"]
    assert status["currentStep"] == 1 and status["canaryWeight"] == 25
    assert status["drills"][-1]["restoredAt"] and status["drills"][-1]["restore"] is True
    assert stack.deployment("checkout-canary")["spec"]["replicas"] == 1


def test_a_plan_not_mid_run_gets_the_synthetic_drill(stack: Stack) -> None:
    stack.apply(rollout_plan(stack.service, "platform", steps=AT_25))
    start_controller(stack)
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 90,
                   "the plan to see nothing to roll out")
    with route_watch(stack) as route:
        done = rolloutctl(stack, "drill", "checkout", "--max-duration", "60s")
    assert done.returncode == 0, explain(stack, done)
    assert "synthetic (no run in progress)" in done.stdout
    assert route.seen == [0, 10, 0], route.seen
    status = stack.status()
    assert status["phase"] == "Pending"  # as before the drill
    assert status["drills"][-1]["outcome"] == "Succeeded"
    assert status["drills"][-1]["synthetic"] is True


def test_a_drill_running_past_max_duration_exits_1(stack: Stack) -> None:
    plan_at_25(stack)
    done = rolloutctl(stack, "drill", "checkout", "--restore", "--max-duration", "1ms",
                      "--grace", "60s")
    assert done.returncode == 1, explain(stack, done)
    assert "TimedOut" in done.stdout
    assert stack.status()["drills"][-1]["outcome"] == "TimedOut"
