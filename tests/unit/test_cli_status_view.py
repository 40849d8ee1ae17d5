"""`rolloutctl status` and `get` as an operator reads them: the bars per step and for the
hold, the weight, each gate's value against its objective, the last decisions, and the
exit code for each kind of state. Plans are driven by the real reconciler with fakes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from rich.console import Console

from controller.adapters.traffic.registry import NullRouter
from controller.api.plan import Phase, RolloutPlan
from controller.api.policy import SLOPolicy
from controller.cli import render, summary
from controller.reconciler import PlanReconciler
from controller.telemetry import Telemetry
from tests.harness import builders as b
from tests.harness.fakes import FakeClock, FakeWorkloads, MemoryStore


class Drive:
    """A plan driven by the real reconciler (fakes around it) for a while."""

    def __init__(self, bad: float = 0.0, **plan_kwargs: Any) -> None:
        self.clock = FakeClock(b.T0)
        self.store = MemoryStore()
        doc = b.plan_doc(**plan_kwargs)
        doc["metadata"]["creationTimestamp"] = "2026-11-27T11:00:00Z"
        self.store.put(doc)
        policy = b.policy_doc()
        policy["status"] = {"evaluatedAt": "2026-11-27T11:59:00Z", "frozen": False}
        self.store.put(policy)
        self.workloads = FakeWorkloads()
        self.workloads.set("shop", "checkout", b.workload("rev-stable"))
        self.workloads.set("shop", "checkout-canary", b.workload("rev-new", replicas=0))
        self.router = NullRouter()
        self.bad = bad
        self.rec = PlanReconciler(
            store=self.store, workloads=self.workloads, router_for=lambda p: self.router,
            measure_gates=lambda plan, *_: [
                b.gate_measurement(g.name, b.ratio(self.bad, 1000)) for g in plan.spec.gates],
            policy_lookup=lambda ns, n: self.store.get("SLOPolicy", ns, n),
            clock=self.clock, telemetry=Telemetry(CollectorRegistry()))

    def run(self, seconds: float) -> Drive:
        end = self.clock.now() + timedelta(seconds=seconds)
        while self.clock.now() < end:
            requeue = self.rec.reconcile("shop/checkout")
            self.clock.advance(min(max(requeue or 5.0, 0.1), 5.0))
        return self

    def plan(self) -> RolloutPlan:
        raw = self.store.get("RolloutPlan", "shop", "checkout")
        assert raw is not None
        return RolloutPlan.model_validate(raw)

    def policy(self) -> SLOPolicy:
        raw = self.store.get("SLOPolicy", "shop", "platform")
        assert raw is not None
        return SLOPolicy.model_validate(raw)


def text_of(renderable: Any, width: int = 120) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


STEPS = [(10, "1m"), (25, "10m"), (50, "10m"), (100, "10m")]


def test_mid_run_view_shows_step_bars_the_hold_the_weight_and_the_gates() -> None:
    d = Drive(steps=STEPS).run(90)  # step 1 held 1m, now 30 s into step 2 (10m hold)
    plan = d.plan()
    assert plan.status.current_step == 1 and plan.status.canary_weight == 25
    now = d.clock.now()
    text = text_of(render.status_view(plan, now, d.policy()))
    lines = text.splitlines()

    def line(prefix: str) -> str:
        return next(x for x in lines if x.startswith(prefix))

    # step 1 done (a full bar), step 2 current, 3 and 4 to come (empty bars)
    assert "━" * render.BAR_WIDTH in line("step 1") and line("step 1").endswith("done")
    assert line("step 2").endswith("current") and "hold 10m" in line("step 2")
    assert "━" not in line("step 3") and line("step 3").endswith("to come")
    assert "━" not in line("step 4") and " 100%" in line("step 4")
    # the hold: elapsed / hold from stepStartedAt, and the bar is that fraction full
    elapsed = summary.hold_elapsed(plan, now)
    assert 0 < elapsed < 600
    hold = line("hold")
    assert f"{summary.duration(elapsed)}/10m" in hold and "left)" in hold
    filled = hold.count("━")
    assert filled == pytest.approx(render.BAR_WIDTH * elapsed / 600, abs=1)
    # the weight: canary and stable shares
    assert "canary 25%" in line("weight") and "stable 75%" in line("weight")
    # the gate with its value against the objective, burn rate, samples and reason
    gate = line("api_availability")
    assert "Pass" in gate and "100%" in gate and ">= 99.9%" in gate
    assert "0.00x" in gate and "1000" in gate and "ObjectiveMet" in gate
    assert "phase Progressing  HoldingStep: step 2/4 at 25%" in text
    assert "last 3 decisions" in text and "StepAdvanced" in text


def test_a_mirror_step_shows_its_mirror_share_not_zero() -> None:
    d = Drive(steps=[(10, "10m"), (100, "10m")])
    raw = d.store.get("RolloutPlan", "shop", "checkout")
    assert raw is not None
    raw["spec"]["steps"].insert(0, {"mirror": 50, "hold": "10m"})
    d.store.put(raw)
    plan = d.run(30).plan()
    assert plan.status.current_step == 0 and plan.status.canary_mirror == 50
    lines = text_of(render.status_view(plan, d.clock.now(), d.policy())).splitlines()
    step1 = next(x for x in lines if x.startswith("step 1"))
    assert "mirror 50%" in step1 and step1.endswith("current")
    assert " 10%" in next(x for x in lines if x.startswith("step 2"))
    assert "canary 0%" in next(x for x in lines if x.startswith("weight"))
    assert "copies 50%" in next(x for x in lines if x.startswith("mirror"))


def test_a_failing_gate_shows_its_value_below_the_objective() -> None:
    d = Drive(bad=0.02, steps=STEPS).run(15)  # 98 % good against 99.9 %, not yet rolled back
    plan = d.plan()
    text = text_of(render.status_view(plan, d.clock.now(), d.policy()))
    gate = next(x for x in text.splitlines() if x.startswith("api_availability"))
    assert "Fail" in gate and "98%" in gate and ">= 99.9%" in gate and "20.00x" in gate
    assert "ObjectiveMissed" in gate


@pytest.mark.parametrize(("bad", "seconds", "phase", "code"), [
    (0.0, 90, "Progressing", 0),
    (0.0, 400, "Succeeded", 0),
    (0.05, 200, "RolledBack", 1),
])
def test_exit_code_follows_the_outcome(bad: float, seconds: float, phase: str,
                                       code: int) -> None:
    plan = Drive(bad=bad, steps=[(10, "1m"), (25, "1m"), (50, "1m"), (100, "1m")]).run(
        seconds).plan()
    assert plan.status.phase.value == phase
    assert summary.exit_code(plan) == code
    assert summary.is_final(plan) == (phase != "Progressing")


def test_degraded_invalid_and_frozen_states_have_documented_exit_codes() -> None:
    plan = Drive(steps=STEPS).run(90).plan()
    degraded = plan.model_copy(update={"status": plan.status.model_copy(update={
        "conditions": [c.model_copy(update={"status": "True"}) if c.type == "Degraded" else c
                       for c in plan.status.conditions]})})
    assert summary.exit_code(degraded) == 1 and summary.health(degraded) == "degraded"
    invalid = Drive(gates=[{"slo": "nope"}]).run(1).plan()
    assert invalid.status.phase.value == "Invalid" and summary.exit_code(invalid) == 1
    frozen = plan.model_copy(update={"status": plan.status.model_copy(update={
        "phase": Phase.FROZEN})})
    assert summary.exit_code(frozen) == 0 and summary.health(frozen) == "healthy"


def test_get_table_like_kubectl() -> None:
    d = Drive(steps=STEPS).run(90)
    plan = d.plan()
    now = d.clock.now()
    text = text_of(render.plans_table([plan], now), width=200)
    head, row = text.splitlines()[:2]
    assert head.split() == ["NAME", "PHASE", "STEP", "WEIGHT", "GATES", "AGE"]
    assert row.split() == ["checkout", "Progressing", "2/4", "25%", "1/1", "Pass", "61m"]
    wide = text_of(render.plans_table([plan], now, wide=True, all_namespaces=True), width=300)
    head, row = wide.splitlines()[:2]
    assert head.split()[:2] == ["NAMESPACE", "NAME"]
    assert head.split()[-3:] == ["REVISION", "REASON", "MESSAGE"]
    assert row.split()[:2] == ["shop", "checkout"] and "rev-new" in row and "HoldingStep" in row


@pytest.mark.parametrize(("seconds", "text"), [
    (5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600, "3h"),
    (5 * 3600 + 120, "5h2m"), (30 * 3600, "30h"), (3 * 86400 + 3600, "3d1h"),
    (30 * 86400, "30d"), (800 * 86400, "2y"),
])
def test_age_like_kubectl(seconds: float, text: str) -> None:
    assert summary.age(b.T0, b.T0 + timedelta(seconds=seconds)) == text
