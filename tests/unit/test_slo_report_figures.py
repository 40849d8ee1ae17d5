"""The SLO compliance report's figures (``cli/sloreport.py``) from fixed data: compliance
per SLO as a ratio of the period's sums, the budget spent, the worst burn periods, the
freezes with their overrides, and the release figures from the plans' histories — and the
numbers a reader finds in the Markdown, HTML and JSON forms."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any

import pytest

from controller.api.plan import RolloutPlan
from controller.api.policy import SLOPolicy
from controller.cli import sloreport
from controller.cli.sloreport import Counts
from tests.harness import builders as b

T0 = datetime.fromisoformat("2026-11-20T00:00:00+00:00")
UNTIL = T0 + timedelta(days=7)
HOUR = timedelta(hours=1)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def buckets(*pairs: tuple[float, float]) -> list[Counts]:
    """Hourly buckets from T0: (bad, total) each."""
    return [Counts(at(i + 1), bad, total) for i, (bad, total) in enumerate(pairs)]


def test_bucket_sizes() -> None:
    assert sloreport.bucket_seconds(7 * 86400) == 3600
    assert sloreport.bucket_seconds(30 * 86400) == 6 * 3600
    assert sloreport.bucket_seconds(3600) == 60


def test_compliance_is_the_ratio_of_the_periods_sums() -> None:
    # 11 bad of 3,000: not the average of the hourly ratios (0, 1 %, 0.1 %) but 0.3667 %
    s = sloreport.slo_figures("api", 99.9, "30d", buckets((0, 1000), (10, 1000), (1, 1000)),
                              3600, budget_left_now=41.5)
    assert s.bad == 11 and s.total == 3000
    assert s.compliance == pytest.approx(100 * (1 - 11 / 3000))
    assert s.met is False
    assert s.budget_spent == pytest.approx(100 * (11 / 3000) / 0.001)  # 366.7 %
    assert [round(p.burn_rate, 6) for p in s.worst] == [10.0]  # 1x spends just the budget
    assert s.worst[0].start == at(1) and s.worst[0].end == at(2)


def test_an_slo_at_its_objective_meets_it_and_spends_its_whole_budget() -> None:
    s = sloreport.slo_figures("api", 99.0, "30d", buckets((10, 1000)), 3600)
    assert s.met is True and s.budget_spent == pytest.approx(100.0)


def test_no_traffic_is_no_compliance_figure_not_a_perfect_one() -> None:
    s = sloreport.slo_figures("api", 99.9, "30d", [], 3600)
    assert s.compliance is None and s.met is None and s.note == "no events in the period"


def test_worst_periods_are_the_three_highest_burns_above_1x() -> None:
    s = sloreport.slo_figures("api", 99.0, "30d", buckets(
        (1, 100), (5, 100), (0, 100), (3, 100), (2, 100), (4, 100)), 3600)
    assert [p.burn_rate for p in s.worst] == pytest.approx([5.0, 4.0, 3.0])
    calm = sloreport.slo_figures("api", 99.0, "30d", buckets((1, 100), (0, 100)), 3600)
    assert calm.worst == ()


def policy_with_freezes() -> SLOPolicy:
    doc = b.policy_doc()
    doc["spec"]["service"] = "checkout"  # one service, guarded for every plan naming it
    doc["status"] = {
        "frozen": True,
        "overrides": [{"id": "hotfix-1", "by": "alice", "reason": "INC-42 fix",
                       "until": at(30).isoformat(), "active": False}],
        "freezes": [
            {"since": (T0 - 2 * HOUR).isoformat(), "until": at(-1).isoformat(),  # before
             "reason": "FastBurn", "reasons": ["FastBurn"]},
            {"since": at(20).isoformat(), "until": at(26).isoformat(),
             "reason": "BudgetBelowThreshold", "reasons": ["BudgetBelowThreshold"],
             "message": "8.0% of the api_availability budget left", "budgetRemaining": 7.5,
             "overrides": ["hotfix-1"]},
            {"since": at(160).isoformat(), "reason": "BudgetUnknown",
             "reasons": ["BudgetUnknown", "BudgetBelowThreshold"]},
        ]}
    return SLOPolicy.model_validate(doc)


def plan_doc(name: str, history: list[dict[str, Any]], drills: list[dict[str, Any]],
             policy: str | None = "platform") -> RolloutPlan:
    doc = b.plan_doc(name=name)
    if policy is None:
        del doc["spec"]["sloPolicyRef"]
    doc["status"] = {"history": history, "drills": drills}
    return RolloutPlan.model_validate(doc)


def run(n: int, outcome: str, ended: float, reason: str = "Promoted",
        fault: float | None = None, zero: float | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"run": n, "outcome": outcome, "reason": reason,
                              "endedAt": at(ended).isoformat()}
    if fault is not None and zero is not None:
        record["weightZeroAt"] = at(zero).isoformat()
        record["evidence"] = [{"name": "api_availability", "kind": "slo", "verdict": "Fail",
                               "failingSince": at(fault).isoformat()},
                              {"name": "auth_latency", "kind": "slo", "verdict": "Pass",
                               "failingSince": None}]
    return record


def plans() -> list[RolloutPlan]:
    sec = 1 / 3600
    checkout = plan_doc("checkout", [
        run(1, "Succeeded", -5),                                   # before the period
        run(2, "Succeeded", 10),
        run(3, "RolledBack", 30, "SustainedViolation", fault=29.9, zero=29.9 + 12 * sec),
        run(4, "RolledBack", 50, "FastBurn", fault=49.99, zero=49.99 + 30 * sec),
        run(5, "RolledBack", 60, "Drill"),                         # a drill, not a failure
        run(6, "Superseded", 70, "NewRevision"),
        run(7, "Succeeded", 100),
    ], [{"id": "d-1", "requestedAt": at(60).isoformat(), "outcome": "Succeeded",
         "canaryWeightZeroAt": (at(60) + timedelta(seconds=0.8)).isoformat()}])
    orders = plan_doc("orders", [run(1, "RolledBack", 90, "SustainedViolation",
                                     fault=89.9, zero=89.9 + 20 * sec)], [])
    other = plan_doc("search", [run(1, "RolledBack", 90, "FastBurn")], [], policy=None)
    return [checkout, orders, other]


def test_release_figures_from_the_plans_histories() -> None:
    policy = policy_with_freezes()
    rel = sloreport.release_figures(sloreport.plans_of(policy, plans()), T0, UNTIL)
    assert rel.plans == ("checkout", "orders")
    assert (rel.succeeded, rel.rolled_back, rel.superseded) == (2, 3, 1)
    assert rel.change_failure_rate == pytest.approx(60.0)
    assert sorted(rel.restore_seconds) == pytest.approx([12.0, 20.0, 30.0], abs=0.01)
    assert rel.median_restore == pytest.approx(20.0, abs=0.01)
    [drill] = rel.drills
    assert drill.id == "d-1" and drill.seconds_to_restore == pytest.approx(0.8)


def test_a_platform_policy_guards_every_plan_of_its_namespace() -> None:
    doc = policy_with_freezes().to_wire()
    doc["metadata"]["labels"] = {"rolloutctl.dev/platform": "true"}
    policy = SLOPolicy.model_validate(doc)
    assert [p.metadata.name for p in sloreport.plans_of(policy, plans())] == [
        "checkout", "orders", "search"]


def test_freezes_in_the_period_with_their_overrides() -> None:
    rows = sloreport.freeze_rows(policy_with_freezes(), T0, UNTIL)
    assert [r.since for r in rows] == [at(20), at(160)]
    first, ongoing = rows
    assert first.seconds == 6 * 3600 and first.reasons == ("BudgetBelowThreshold",)
    assert first.overrides == ("hotfix-1 by alice: INC-42 fix",)
    assert first.lowest_budget == 7.5
    assert ongoing.until is None and ongoing.seconds == 8 * 3600  # to the end of the period
    assert ongoing.reasons == ("BudgetUnknown", "BudgetBelowThreshold")


def report() -> sloreport.PolicyReport:
    slos = [
        sloreport.slo_figures("api_availability", 99.9, "30d",
                              buckets((0, 1000), (10, 1000), (1, 1000)), 3600, 41.5),
        sloreport.slo_figures("auth_latency", 95.0, "7d", buckets((10, 1000), (20, 1000)),
                              3600, 80.0),
        sloreport.slo_figures("task_throughput", None, "1h", [], 3600,
                              note="threshold SLI: no error budget"),
    ]
    return sloreport.policy_report(policy_with_freezes(), plans(), T0, UNTIL, 3600, slos)


def test_markdown_states_the_figures() -> None:
    text = sloreport.markdown([report()])
    assert text.startswith("# SLO compliance report: shop/platform\n")
    assert "- **service**: checkout" in text
    assert "- **SLO compliance rate**: 50% of the SLOs met their objective" in text
    rows = text.split("## Compliance per SLO")[1].split("##")[0]
    assert "| api_availability | 99.9% | 99.633% | NO | 11 / 3,000 | 366.7% | 41.5% |" in rows
    assert "| auth_latency | 95% | 98.500% | yes | 30 / 2,000 | 30.0% | 80.0% |" in rows
    assert "| task_throughput | - |" in rows and "threshold SLI" in rows
    worst = text.split("## Worst burn periods (60m00s buckets)")[1].split("##")[0]
    assert "| api_availability | 2026-11-20 01:00Z | 2026-11-20 02:00Z | 10.00x | 10 / 1,000 |" \
        in worst
    freezes = text.split("## Freezes")[1].split("##")[0]
    assert "| 2026-11-20 20:00Z | 2026-11-21 02:00Z | 6h00m | BudgetBelowThreshold: 8.0% of " \
           "the api_availability budget left | 7.5% | hotfix-1 by alice: INC-42 fix |" in freezes
    assert "still frozen" in freezes
    releases = text.split("## Releases")[1]
    assert "- **releases**: 5 (2 succeeded, 3 rolled back; 1 superseded)" in releases
    assert "- **change-failure rate**: 60.0%" in releases
    assert "- **median time from fault to canary weight 0**: 20.0s over 3 rollbacks" in releases
    assert "| checkout | d-1 | 2026-11-22 12:00Z | Succeeded | 0.8s |" in releases


def test_json_is_the_same_figures() -> None:
    out = json.loads(sloreport.as_json([report()]))
    [p] = out["policies"]
    assert p["complianceRate"] == 50.0 and p["since"] == "2026-11-20T00:00:00Z"
    api = p["slos"][0]
    assert api["met"] is False and api["compliance"] == pytest.approx(99.63333, abs=1e-4)
    assert api["budgetSpent"] == pytest.approx(366.667, abs=1e-3)
    assert api["worstBurnPeriods"][0]["burnRate"] == pytest.approx(10.0)
    assert p["releases"]["changeFailureRate"] == pytest.approx(60.0)
    assert p["releases"]["medianRestoreSeconds"] == pytest.approx(20.0, abs=0.01)
    assert [f["reasons"] for f in p["freezes"]] == [
        ["BudgetBelowThreshold"], ["BudgetUnknown", "BudgetBelowThreshold"]]


def test_html_has_charts_inline_and_nothing_to_fetch() -> None:
    text = sloreport.html_report([report()])
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    svgs = [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", text, re.S)]
    # the compliance bars, then one burn chart per SLO with a budget and data
    assert len(svgs) == 3
    ns = {"s": "http://www.w3.org/2000/svg"}
    bars = [r.findtext("s:title", "", ns) for r in svgs[0].findall("s:rect", ns)]
    assert bars == ["api_availability 99.633% (objective 99.9%)",
                    "auth_latency 98.500% (objective 95%)"]
    burn = [r.findtext("s:title", "", ns) for r in svgs[1].findall("s:rect", ns)]
    assert "2026-11-20 02:00Z: 10.00x" in burn
    assert any(t.startswith("frozen BudgetBelowThreshold") for t in burn)
    assert '<td class=miss>NO</td>' in text


def test_a_policy_guarding_several_services_reports_each_with_its_own_plans() -> None:
    doc = policy_with_freezes().to_wire()
    del doc["spec"]["service"]  # each plan's own service: checkout and orders
    policy = SLOPolicy.model_validate(doc)
    orders = sloreport.policy_report(policy, plans(), T0, UNTIL, 3600, [], service="orders")
    assert orders.service == "orders" and orders.releases.plans == ("orders",)
    assert orders.releases.rolled_back == 1 and orders.releases.median_restore == \
        pytest.approx(20.0, abs=0.01)
    checkout = sloreport.policy_report(policy, plans(), T0, UNTIL, 3600, [],
                                       service="checkout")
    assert checkout.releases.plans == ("checkout",) and checkout.releases.rolled_back == 2
