"""`rolloutctl report`: what the Markdown and HTML reports hold for a plan driven by the
real reconciler (fakes around it): the weight timeline, the gate values, the decisions,
the runs with their evidence, the budget used and the drills; the HTML chart is an inline
SVG whose step line follows the weights."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from controller.adapters.traffic.registry import NullRouter
from controller.api.plan import RolloutPlan
from controller.api.policy import SLOPolicy
from controller.cli import runreport
from controller.reconciler import PlanReconciler
from controller.telemetry import Telemetry
from tests.harness import builders as b
from tests.harness.fakes import FakeClock, FakeWorkloads, MemoryStore

STEPS = [(10, "1m"), (25, "1m"), (50, "1m"), (100, "1m")]


class Drive:
    def __init__(self, bad: float = 0.0) -> None:
        self.clock = FakeClock(b.T0)
        self.store = MemoryStore()
        self.store.put(b.plan_doc(steps=STEPS))
        policy = b.policy_doc()
        policy["status"] = {
            "evaluatedAt": "2026-11-27T11:59:00Z", "frozen": False, "budgetRemaining": 62.5,
            "slos": [{"name": "api_availability", "state": "Ok", "budgetRemaining": 62.5,
                      "errorRatio": 0.000375}]}
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

    def request_drill(self, restore: bool) -> None:
        self.store.update_spec("RolloutPlan", "shop", "checkout", requests={"drill": {
            "id": "drill-1", "by": "alice", "at": self.clock.now().isoformat(),
            "restore": restore, "maxDuration": "60s"}})

    def plan(self) -> RolloutPlan:
        raw = self.store.get("RolloutPlan", "shop", "checkout")
        assert raw is not None
        return RolloutPlan.model_validate(raw)

    def policy(self) -> SLOPolicy:
        raw = self.store.get("SLOPolicy", "shop", "platform")
        assert raw is not None
        return SLOPolicy.model_validate(raw)


def mid_run_with_a_drill() -> Drive:
    d = Drive().run(70)  # at step 2 (25 %)
    d.request_drill(restore=True)
    return d.run(20)


def test_markdown_has_the_timeline_decisions_budget_and_the_drill() -> None:
    d = mid_run_with_a_drill()
    plan = d.plan()
    assert plan.status.drills[-1].outcome.value == "Succeeded"
    text = runreport.markdown(plan, d.policy(), d.clock.now())
    assert text.startswith("# Rollout report: shop/checkout\n")
    timeline = text.split("## Timeline of the canary weight")[1].split("##")[0]
    weights = re.findall(r"\| (\d+)% \|", timeline)
    # run start 0, 10, 25, the drill to 0, restored to 25, and now 25
    assert weights[:3] == ["0", "10", "25"] and "0" in weights[3:] and weights[-1] == "25"
    decisions = text.split("## Decisions")[1].split("##")[0]
    for kind in ("RunStarted", "StepAdvanced", "DrillStarted", "RollbackStarted",
                 "DrillCompleted"):
        assert f"| {kind} |" in decisions
    gates = text.split("## Timeline of the gate values")[1].split("##")[0]
    assert "| api_availability |" in gates and "| 100 | 99.9 | Pass |" in gates
    budget = text.split("## Error budget used")[1].split("##")[0]
    assert "| api_availability | 99.9% | 30d | 62.50% | 37.50% |" in budget
    drills = text.split("## Drills")[1]
    row = next(line for line in drills.splitlines() if line.startswith("| drill-1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["drill-1", "alice", cells[2], "mid-run", "Succeeded"]
    assert all(re.fullmatch(r"\d+\.\d\ds|\d+s", c) for c in cells[5:9]), cells


def test_markdown_shows_the_evidence_of_a_rolled_back_run() -> None:
    d = Drive(bad=0.05).run(200)
    plan = d.plan()
    assert plan.status.phase.value == "RolledBack"
    text = runreport.markdown(plan, d.policy(), d.clock.now())
    assert "### Run 1: RolledBack (SustainedViolation) — evidence" in text
    evidence = text.split("### Run 1")[1]
    assert "| api_availability | Fail | 95 | 99.9 | 50.00x | 1000 | ObjectiveMissed |" in evidence


def svg_of(html_text: str) -> ET.Element:
    match = re.search(r"<svg .*?</svg>", html_text, re.S)
    assert match, "no inline SVG"
    return ET.fromstring(match.group(0))


def test_html_has_an_inline_svg_chart_following_the_weights() -> None:
    d = mid_run_with_a_drill()
    plan = d.plan()
    html_text = runreport.html_report(plan, d.policy(), d.clock.now())
    assert html_text.startswith("<!DOCTYPE html>") and "<script" not in html_text
    assert "http://" not in html_text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    svg = svg_of(html_text)
    ns = {"s": "http://www.w3.org/2000/svg"}
    path = svg.find("s:path", ns)
    assert path is not None
    # the step line's vertical moves are the weights (left axis: y = 20 + 200 * (1 - w/100))
    ys = [float(v) for v in re.findall(r"V([\d.]+)", path.attrib["d"])]
    weights = [round(100 * (1 - (y - 20) / 200)) for y in ys]
    series = [w for _, w in runreport.weight_series(plan, d.clock.now())][1:]
    assert weights == series
    circles = svg.findall("s:circle", ns)
    assert circles and all("api_availability" in (c.findtext("s:title", "", ns)) for c in circles)


def test_html_escapes_what_it_quotes() -> None:
    d = Drive().run(70)
    plan = d.plan()
    evil = plan.status.decisions[-1].model_copy(update={"message": "<script>alert(1)</script>"})
    plan = plan.model_copy(update={"status": plan.status.model_copy(update={
        "decisions": [*plan.status.decisions[:-1], evil]})})
    html_text = runreport.html_report(plan, None, d.clock.now())
    assert "<script>" not in html_text and "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    md: Any = runreport.markdown(plan, None, d.clock.now())
    assert "_none recorded_" in md.split("## Error budget used")[1]
