"""Issue #9 end to end: a break-glass override (`rolloutctl freeze override --allow PLAN`)
lets that one plan start a run during a freeze while another plan stays Frozen; it expires
by itself on time, after which new runs wait again. `rolloutctl freeze status` and
`rolloutctl budget` show the figures.

Real servers: kube-apiserver, the `rolloutctl run` process, the `rolloutctl` CLI as a
subprocess, the local Slack stand-in, and Prometheus holding a backfilled 30-day history
that leaves 8 % of the budget (frozen below 10 %). The policy is evaluated every 30 s, so an
expiry seen within a few seconds of its time was not found by a periodic evaluation.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.freeze_world import (
    BUDGET_SLO,
    FreezeWorld,
    canary_replicas,
    condition,
    create_target,
    decisions,
    freeze_policy,
    release,
    rolloutctl,
    route_weight,
    watch,
    world_with_history,
)
from tests.harness.slack_stub import SlackStub
from tests.harness.stack import Stack, rollout_plan

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

ALLOWED, OTHER = "checkout", "orders"
OVERRIDE_SECONDS = 40
# The allowed plan's run sits at its first step (10 %) for the whole test.
STEPS = [{"weight": 10, "hold": "1h"}, {"weight": 100, "hold": "1h"}]


@pytest.fixture
def world(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[FreezeWorld]:
    with world_with_history(Path(cluster.kubeconfig), cluster.api_client(), namespace,
                            tmp_path / "stack", 8.0) as w:
        yield w


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def phase(stack: Stack, plan: str) -> str:
    return str(stack.status(plan).get("phase"))


def test_an_override_lets_one_plan_through_and_expires_on_time(world: FreezeWorld) -> None:
    stack = world.stack
    assert stack.prometheus is not None
    create_target(stack, OTHER)
    with SlackStub() as slack:
        stack.create_secret("slack", {"token": slack.token})
        stack.apply(freeze_policy(
            "platform", stack.prometheus.url, evaluation_interval="30s",
            notifications={"slack": {"channel": "#deploys",
                                     "tokenSecretRef": {"name": "slack", "key": "token"}}}))
        for name in (ALLOWED, OTHER):
            stack.apply(rollout_plan(name, "platform", steps=STEPS))
        stack.start_controller(extra=["--slack-base-url", slack.api_url])
        stack.wait_for(lambda: stack.policy_status().get("frozen"), 90, "the freeze")
        release(stack, ALLOWED, "v2")
        release(stack, OTHER, "v2")
        stack.wait_for(lambda: phase(stack, ALLOWED) == phase(stack, OTHER) == "Frozen", 60,
                       "both plans frozen")

        done = rolloutctl(stack, "freeze", "override", "platform", "--reason", "hotfix INC-42",
                          "--expires", f"{OVERRIDE_SECONDS}s", "--allow", ALLOWED)
        assert done.returncode == 0, done.stderr
        assert f"for {ALLOWED}: hotfix INC-42" in done.stdout

        # The allowed plan starts its run: traffic moves to the canary. The other does not.
        stack.wait_for(lambda: route_weight(stack, ALLOWED) == 10, 60, "checkout at 10 %")
        allowed = stack.status(ALLOWED)
        assert allowed["run"] == 1 and allowed["phase"] == "Progressing"
        unfrozen = decisions(allowed, "Unfrozen")
        assert len(unfrozen) == 1 and "(override)" in unfrozen[0]["message"]
        assert condition(allowed, "Frozen")["reason"] == "OverrideActive"
        assert condition(allowed, "Frozen")["status"] == "False"
        assert canary_replicas(stack, ALLOWED) == 1
        seen = watch(stack, 6, lambda: (phase(stack, OTHER), route_weight(stack, OTHER),
                                        canary_replicas(stack, OTHER)))
        assert set(seen) == {("Frozen", 0, 0)}, seen
        assert condition(stack.status(OTHER), "Frozen")["status"] == "True"

        policy = stack.policy_status()
        [override] = policy["overrides"]
        assert override["active"] is True and override["allow"] == [ALLOWED]
        assert override["by"] == "admin" and override["reason"] == "hotfix INC-42"
        until = parse_time(override["until"])
        assert policy["frozen"] is True  # the override does not lift the freeze itself
        assert slack.wait_for(lambda s: sum(m.text.startswith("break-glass override")
                                            for m in s.messages()) == 1, 30)

        # What an operator sees meanwhile.
        status_out = rolloutctl(stack, "freeze", "status", "platform")
        assert status_out.returncode == 0, status_out.stderr
        text = status_out.stdout
        assert "FROZEN" in text and "reason BudgetBelowThreshold" in text
        assert re.search(r"8\.0\d% of the error budget left \(freezes below 10%, releases above "
                         r"15%, SLO budget_availability\)", text), text
        assert "hotfix INC-42" in text and ALLOWED in text and "admin" in text
        budget_out = rolloutctl(stack, "budget", "platform")
        assert budget_out.returncode == 0, budget_out.stderr
        row = next(line for line in budget_out.stdout.splitlines() if BUDGET_SLO in line)
        assert re.search(r"99\.9%\s+30d\s+8\.0\d%", row), budget_out.stdout
        gate_row = next(line for line in budget_out.stdout.splitlines()
                        if "api_availability" in line)
        assert "critical 14.4x (5m/30s)" in gate_row

        # Expiry: recorded by the policy within seconds of its time, not at the next
        # 30 s evaluation, and announced once (Slack, and an Event on the policy).
        flipped = stack.wait_for(
            lambda: (st := stack.policy_status())["overrides"][0]["active"] is False and st,
            OVERRIDE_SECONDS + 40, "the override to expire", interval=0.1)
        lag = (parse_time(flipped["evaluatedAt"]) - until).total_seconds()
        assert 0 <= lag < 5, f"the expiry was evaluated {lag:.2f}s after {until}"
        print(f"\noverride expired {lag:.3f}s after its time")
        assert slack.wait_for(lambda s: sum(m.text.startswith("override expired")
                                            for m in s.messages()) == 1, 30)
        events = [e for e in stack.events() if e["involvedObject"]["kind"] == "SLOPolicy"]
        reasons = [e["reason"] for e in events]
        assert reasons.count("OverrideActivated") == 1 and reasons.count("OverrideExpired") == 1
        [expired] = [e for e in events if e["reason"] == "OverrideExpired"]
        assert "hotfix INC-42" in expired["message"]
        assert abs((parse_time(expired["firstTimestamp"]) - until).total_seconds()) < 6

        # The run that got through is in flight: it holds at its step under the freeze.
        stack.wait_for(lambda: phase(stack, ALLOWED) == "Frozen", 30, "checkout to hold")
        assert route_weight(stack, ALLOWED) == 10
        assert stack.status(ALLOWED)["message"].startswith("holding at this step")
        # A new run after the expiry waits: neither a new revision of the plan that got
        # through, nor the other plan, starts.
        release(stack, ALLOWED, "v3")
        release(stack, OTHER, "v3")
        stack.wait_for(lambda: decisions(stack.status(ALLOWED), "Superseded"), 30,
                       "checkout's run superseded by v3")
        seen = watch(stack, 8, lambda: (phase(stack, ALLOWED), route_weight(stack, ALLOWED),
                                        phase(stack, OTHER), route_weight(stack, OTHER)))
        assert set(seen) == {("Frozen", 0, "Frozen", 0)}, seen
        assert stack.status(ALLOWED)["run"] == 1
        assert stack.status(OTHER).get("run", 0) == 0
        assert decisions(stack.status(OTHER), "RunStarted") == []
        time.sleep(1)
        texts = [m.text for m in slack.messages()]
        assert sum(t.startswith("break-glass override") for t in texts) == 1, texts
        assert sum(t.startswith("override expired") for t in texts) == 1, texts
