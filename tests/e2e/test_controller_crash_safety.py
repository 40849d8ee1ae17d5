"""Crash safety and high availability of the real controller process.

- SIGKILL at random points, at least 20 times over several runs: every run still ends as
  expected, with no skipped or repeated step, no step advanced without its gates passing,
  and no repeated promotion.
- Two replicas with leader election: killing the leader hands over within the lease
  duration (plus one retry period), and the run shows no double action.
"""

from __future__ import annotations

import random
import signal
import time
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client

from tests.harness.stack import ControllerProcess, Stack, rollout_plan

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

LEASE = "rolloutctl-controller"


def check_run(decisions: list[dict[str, Any]], outcome: str) -> None:
    """What one run's decisions must show, whatever crashed in between."""
    seqs = [d["seq"] for d in decisions]
    assert seqs == sorted(set(seqs)), f"decision sequence repeated or out of order: {seqs}"
    types = [d["type"] for d in decisions]
    steps = [d["weight"] for d in decisions if d["type"] == "StepAdvanced"]
    assert types.count("RunStarted") == 1, types
    if outcome == "Succeeded":
        assert steps == [10, 25, 50, 100], f"skipped or repeated step: {types} {steps}"
        assert types.count("Promoting") == 1 and types.count("Succeeded") == 1, types
    else:
        assert steps == [10, 25, 50, 100][:len(steps)], f"skipped or repeated step: {steps}"
        assert "Succeeded" not in types and types.count("RolledBack") == 1, types
    for d in decisions:
        if d["type"] == "StepAdvanced" and d["weight"] > 10:
            assert "api_availability Pass" in d["message"], f"advanced without a gate: {d}"


def test_sigkill_at_random_points_skips_and_repeats_nothing(stack: Stack) -> None:
    rng = random.Random(20261127)
    stack.apply(rollout_plan(stack.service, "platform", hold="4s", interval="1s",
                             window="8s", rollback_after="4s", min_samples=15))
    controller = stack.start_controller("c0")
    stack.wait_for(lambda: stack.status().get("reason") == "NoNewRevision", 60, "idle plan")
    kills = 0
    seq = stack.status().get("seq", 0)
    outcomes = []
    plan = ["ok", "ok", "bad", "ok", "ok", "bad", "ok", "ok"]
    for n, kind in enumerate(plan, start=2):
        if kills >= 20 and n > 4:
            break
        assert stack.canary_app is not None
        stack.canary_app.configure(error_rate=0.4 if kind == "bad" else 0.0)
        run_before = stack.status().get("run", 0)
        stack.release(f"v{n}")
        expected = "RolledBack" if kind == "bad" else "Succeeded"
        deadline = time.monotonic() + 240
        while True:
            st = stack.status()
            if st.get("run") == run_before + 1 and st.get("phase") == expected:
                break
            assert time.monotonic() < deadline, (
                f"run {run_before + 1} did not reach {expected}: {st.get('phase')} "
                f"{st.get('reason')} {st.get('message')}\n{controller.log_tail()}")
            # a random point in the controller's work: after it is up, anywhere in 0-2.5 s
            controller.wait_ready()
            time.sleep(rng.uniform(0.0, 2.5))
            controller.kill(signal.SIGKILL)
            kills += 1
            controller = stack.start_controller(f"c{kills}")
        st = stack.status()
        decisions = [d for d in st["decisions"] if d["seq"] > seq]
        check_run(decisions, expected)
        assert st["history"][-1]["outcome"] == expected
        assert st["history"][-1]["run"] == run_before + 1
        seq = st["seq"]
        outcomes.append(expected)
        assert stack.route_weight() == 0
    assert kills >= 20, f"only {kills} kills"
    assert "RolledBack" in outcomes and "Succeeded" in outcomes
    print(f"\n{kills} SIGKILLs over {len(outcomes)} runs: {outcomes}")


def lease_holder(api: client.ApiClient, namespace: str) -> str:
    lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE, namespace)
    return lease.spec.holder_identity or ""


def test_killing_the_leader_hands_over_within_the_lease_duration(stack: Stack) -> None:
    stack.apply(rollout_plan(stack.service, "platform", hold="8s", interval="1s",
                             window="8s", rollback_after="4s", min_samples=15))
    replicas = {c.identity: c for c in (
        stack.start_controller("replica-a", leader_elect=True),
        stack.start_controller("replica-b", leader_elect=True),
    )}
    holder = stack.wait_for(lambda: lease_holder(stack.api, stack.namespace), 60, "a leader")
    stack.release("v2")
    stack.wait_for(lambda: (stack.status().get("currentStep") or 0) >= 1, 120, "step 2")
    leader: ControllerProcess = replicas[holder]
    killed_at = time.monotonic()
    leader.kill(signal.SIGKILL)
    new = stack.wait_for(lambda: (h := lease_holder(stack.api, stack.namespace)) != holder
                         and h, 40, "a new leader")
    takeover = time.monotonic() - killed_at
    assert new in replicas and new != holder
    # lease duration 15 s, retry period 2 s: the standby takes over once the lease expires
    assert takeover <= 15 + 2 + 1, f"takeover took {takeover:.1f}s"
    stack.wait_for(lambda: stack.status().get("phase") == "Succeeded", 180, "Succeeded")
    status = stack.status()
    check_run([d for d in status["decisions"]], "Succeeded")
    print(f"\nleader {holder} killed; {new} took over after {takeover:.1f}s")


def test_two_replicas_never_both_act(stack: Stack) -> None:
    """Both replicas run through a whole rollout; only the Lease holder writes."""
    stack.apply(rollout_plan(stack.service, "platform", hold="3s", interval="1s",
                             window="6s", rollback_after="4s", min_samples=15))
    a = stack.start_controller("replica-a", leader_elect=True)
    b = stack.start_controller("replica-b", leader_elect=True)
    holder = stack.wait_for(lambda: lease_holder(stack.api, stack.namespace), 60, "a leader")
    stack.release("v2")
    stack.wait_for(lambda: stack.status().get("phase") == "Succeeded", 180, "Succeeded")
    check_run(stack.status()["decisions"], "Succeeded")
    standby = b if holder == a.identity else a
    events = [e for e in stack.events() if e["involvedObject"]["kind"] == "RolloutPlan"]
    instances = {e.get("reportingInstance") for e in events}
    assert instances == {holder}, f"Events from {instances}; the standby is {standby.identity}"
    stamps = sorted(datetime.fromisoformat(e["firstTimestamp"].replace("Z", "+00:00"))
                    for e in events)
    assert stamps
