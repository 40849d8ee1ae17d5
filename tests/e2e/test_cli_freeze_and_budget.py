"""`rolloutctl budget`, `freeze status` and `freeze override` against the real controller
evaluating an SLOPolicy on a live Prometheus: the budget and burn rates it measured, the
freeze when stable starts failing, and a break-glass override recorded with who, why and
until when — written with a resourceVersion-guarded merge patch, so overrides written at
the same time are all kept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from controller.cli.main import app
from tests.harness.fixtures import TestCluster
from tests.harness.stack import Stack

from .test_cli_harness import explain, rolloutctl, running_stack, start_controller

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

FREEZE = {"errorBudgetPolicy": {"freezeReleases": {"slo": "api_availability",
                                                   "whenRemainingBelow": 10,
                                                   "releaseAbove": 15}}}


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(cluster, namespace, tmp_path / "stack", policy_extra=FREEZE) as s:
        start_controller(s)
        yield s


def row(stdout: str, first: str) -> list[str]:
    return next(line.split() for line in stdout.splitlines() if line.startswith(first))


def test_budget_and_freeze_follow_the_policy_evaluation(stack: Stack) -> None:
    stack.wait_for(lambda: stack.policy_status().get("evaluatedAt")
                   and stack.policy_status().get("budgetRemaining") is not None, 60,
                   "the policy's first evaluation")
    done = rolloutctl(stack, "budget", "platform")
    assert done.returncode == 0, explain(stack, done)
    availability = row(done.stdout, "api_availability")
    assert availability[:3] == ["api_availability", "99%", "1h"]
    measured = stack.policy_status()["slos"][0]
    assert availability[3] == f"{measured['budgetRemaining']:.2f}%"
    assert availability[-1] == "no"  # the 14.4x alert does not fire on healthy traffic
    assert "critical 14.4x (5m/30s)" in done.stdout
    done = rolloutctl(stack, "freeze", "status")
    assert done.returncode == 0 and "SLOPolicy" in done.stdout
    assert f"{stack.namespace}/platform: not frozen" in done.stdout

    # stable fails half of its requests: the fast burn freezes releases
    assert stack.stable_app is not None
    stack.stable_app.configure(error_rate=0.5)
    stack.wait_for(lambda: stack.policy_status().get("frozen") is True, 90, "the freeze")
    done = rolloutctl(stack, "freeze", "status", "platform")
    assert done.returncode == 0, explain(stack, done)
    frozen = stack.policy_status()
    assert frozen["reason"] == "FastBurn"  # 50x on both windows of the 14.4x alert
    assert f"{stack.namespace}/platform: FROZEN" in done.stdout
    assert "reason FastBurn: api_availability burns" in done.stdout
    assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", done.stdout)
    assert "no active override" in done.stdout
    done = rolloutctl(stack, "budget", "platform")
    assert row(done.stdout, "api_availability")[-1] == "yes"

    before = datetime.now(UTC)
    done = rolloutctl(stack, "freeze", "override", "platform", "--reason", "hotfix INC-42",
                      "--expires", "2h", "--allow", "checkout")
    assert done.returncode == 0, explain(stack, done)
    [override] = policy_spec(stack)["overrides"]  # type: ignore[misc]
    assert override["reason"] == "hotfix INC-42" and override["by"] == "admin"
    assert override["allow"] == ["checkout"]
    expires = datetime.fromisoformat(override["expires"])
    assert override["expires"].endswith("Z")
    assert before + timedelta(hours=2) - timedelta(seconds=2) <= expires <= datetime.now(
        UTC) + timedelta(hours=2)
    assert f"override {override['id']} on SLOPolicy {stack.namespace}/platform by admin" \
        in done.stdout
    # the controller records it; `freeze status` shows who, why, until when, for which plans
    stack.wait_for(lambda: any(o["id"] == override["id"] and o["active"]
                               for o in stack.policy_status().get("overrides", [])), 60,
                   "the override in the policy's status")
    done = rolloutctl(stack, "freeze", "status", "platform")
    line = row(done.stdout, override["id"])
    assert line[1] == "admin" and "hotfix" in line and "checkout" in line
    assert "(not yet seen)" not in done.stdout


def policy_spec(stack: Stack) -> dict[str, Any]:
    obj = stack.store.get("SLOPolicy", stack.namespace, "platform")
    assert obj is not None
    return dict(obj["spec"])


def test_an_override_written_meanwhile_by_someone_else_is_kept(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the CLI's read of the policy and its patch, another writer adds an override:
    the CLI's patch (guarded by the resourceVersion it read) gets a 409, reads again and
    keeps both."""
    from controller.cli import session as session_mod

    original = session_mod.Session.raw
    writes = []

    def raw_then_someone_writes(self: Any, kind: str, name: str) -> dict[str, Any]:
        obj = original(self, kind, name)
        if kind == "SLOPolicy" and not writes:
            until = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            stack.store.patch_spec("SLOPolicy", stack.namespace, "platform", {"overrides": [
                {"id": "theirs", "reason": "someone else", "expires": until, "by": "bob"}]})
            writes.append(1)
        return obj

    monkeypatch.setattr(session_mod.Session, "raw", raw_then_someone_writes)
    result = CliRunner().invoke(app, ["freeze", "override", "platform", "--reason", "mine",
                                      "--expires", "1h", "--kubeconfig",
                                      str(stack.kubeconfig), "-n", stack.namespace])
    assert result.exit_code == 0, result.output
    assert writes == [1]
    overrides = policy_spec(stack)["overrides"]
    assert sorted(o["reason"] for o in overrides) == ["mine", "someone else"]
