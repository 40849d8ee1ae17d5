"""The fast path: one query per SLO template and window for every plan, and the loop that
hands a measurement to a plan's reconcile only when the engine needs it (FakeClock)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from controller.adapters.metrics.fastpath import FastTarget, group_query, measure_fast
from controller.api.plan import Phase, RolloutPlan, RolloutPlanStatus
from controller.api.policy import SLO
from controller.engine.decide import steps_hash
from controller.engine.measurements import Measurement, MeasurementStatus, Track
from controller.ports import QueryContext
from controller.runtime.fastpath import FastBoard, FastLoop
from tests.harness import builders as b
from tests.harness.fakes import FakeClock

BAD = ('sum(rate(http_requests_total{service="{{service}}",track="{{track}}",code=~"5.."}'
       '[{{window}}]))')
TOTAL = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'


def test_a_template_becomes_one_query_grouped_by_the_labels_that_tell_plans_apart() -> None:
    g = group_query(BAD, 30)
    assert g is not None
    assert g.expr == ('(sum by (service, track) (rate(http_requests_total{track="canary",'
                      'code=~"5.."}[30s]))) * 30')
    assert g.labels == (("service", "service"), ("track", "track"))
    ns = group_query('sum(rate(x_total{namespace="{{namespace}}",job="api",'
                     'svc="{{service}}"}[{{window}}]))', 300)
    assert ns is not None and ns.expr == (
        '(sum by (namespace, svc) (rate(x_total{job="api"}[300s]))) * 300')


def test_templates_of_another_shape_are_not_grouped() -> None:
    assert group_query('rate(x_total{service="{{service}}"}[{{window}}])', 30) is None
    assert group_query('sum(rate(x{s="{{service}}"}[{{window}}])) / sum(rate(y[{{window}}]))',
                       30) is None
    assert group_query('sum(rate(x{s=~"{{service}}.*"}[{{window}}]))', 30) is None


class VectorSource:
    """Answers grouped queries from a table of (service -> (bad rate, total rate))."""

    def __init__(self, rates: dict[str, tuple[float, float]]) -> None:
        self.rates = rates
        self.requests: list[list[str]] = []
        self.per_plan: list[Any] = []

    def query_vectors(self, exprs: Sequence[str], at: float
                      ) -> list[list[dict[str, Any]] | None]:
        self.requests.append(list(exprs))
        out = []
        for e in exprs:
            seconds = float(e.rsplit("*", 1)[1])
            bad = "5.." in e
            out.append([{"metric": {"service": s, "track": "canary"},
                         "value": [at, str((r[0] if bad else r[1]) * seconds)]}
                        for s, r in self.rates.items() if not (bad and r[0] == 0)])
        return out

    def measure_all(self, wanted: Sequence[tuple[SLO, Track, float]], ctx: QueryContext
                    ) -> list[Measurement]:
        self.per_plan.append((ctx.service, [w for _, _, w in wanted]))
        return [Measurement(MeasurementStatus.OK, value=0.0, samples=100.0)] * len(wanted)


def stepping(p: RolloutPlan) -> RolloutPlan:
    return p.model_copy(update={"status": RolloutPlanStatus(
        phase=Phase.PROGRESSING, run=1, revision="r1", steps_hash=steps_hash(p.spec.steps),
        current_step=0, canary_weight=10, run_started_at=b.T0, step_started_at=b.T0)})


def targets(n: int) -> list[FastTarget]:
    pol = b.policy()
    return [FastTarget(f"shop/s{i}", stepping(b.plan(name=f"s{i}")), pol) for i in range(n)]


def test_a_thousand_plans_cost_one_request_of_four_queries() -> None:
    source = VectorSource({f"s{i}": (0.0 if i else 2.0, 20.0) for i in range(1000)})
    out = measure_fast(source, targets(1000), b.at(3600), 30)
    # bad and total over the recent window (30 s) and the critical alerts' short windows
    # (5m and 30m): every plan reads its own series from the same answers
    assert len(source.requests) == 1 and len(source.requests[0]) == 6
    assert len(out) == 1000 and source.per_plan == []
    [m0] = out["shop/s0"]
    assert m0.recent is not None and m0.recent.value == 0.1 and m0.recent_seconds == 30
    assert m0.recent.samples == 600
    assert [(x.alert, x.short_seconds, x.short.value) for x in m0.burn_rates] == [
        (0, 300, 0.1), (1, 1800, 0.1)]
    [m1] = out["shop/s1"]
    assert m1.recent is not None and m1.recent.value == 0.0  # no error series: 0 errors


def test_a_plan_without_series_is_no_data() -> None:
    source = VectorSource({})
    [m] = measure_fast(source, targets(1), b.at(3600), 30)["shop/s0"]
    assert m.recent is not None and m.recent.status == MeasurementStatus.NO_DATA


def test_an_ungroupable_template_is_measured_per_plan() -> None:
    doc = b.policy_doc()
    doc["spec"]["slos"][0]["sli"]["ratio"]["bad"] = (
        'sum(rate(http_requests_total{service=~"{{service}}",code=~"5.."}[{{window}}]))')
    from controller.api.policy import SLOPolicy
    pol = SLOPolicy.model_validate(doc)
    ts = [FastTarget(f"shop/s{i}", stepping(b.plan(name=f"s{i}")), pol) for i in range(2)]
    source = VectorSource({})
    measure_fast(source, ts, b.at(3600), 30)
    assert [s for s, _ in source.per_plan] == ["s0", "s1"]


# -- the loop ------------------------------------------------------------------------------


class Loop:
    def __init__(self, rates: dict[str, tuple[float, float]], n: int = 3) -> None:
        self.clock = FakeClock(b.at(3600))  # runs started an hour ago
        self.board = FastBoard()
        self.queued: list[str] = []
        self.source = VectorSource(rates)
        self.plans = [stepping(b.plan(name=f"s{i}")).to_wire() for i in range(n)]
        for i, p in enumerate(self.plans):
            p["metadata"]["resourceVersion"] = str(i)
        self.leading = True
        pol = b.policy_doc()
        self.loop = FastLoop(
            plans=lambda: self.plans, policy_lookup=lambda ns, name: pol,
            measure=lambda ts, at: measure_fast(self.source, ts, at, 30),
            target=FastTarget, board=self.board, enqueue=self.queued.append,
            clock=self.clock, interval=10, leading=lambda: self.leading)


def test_only_a_plan_that_needs_a_pass_is_queued_with_its_measurement() -> None:
    w = Loop({"s0": (0.0, 20.0), "s1": (1.0, 20.0), "s2": (0.0, 20.0)})
    assert w.loop.tick() == ["shop/s1"] and w.queued == ["shop/s1"]
    taken = w.board.take("shop/s1", w.clock.now(), 20)
    assert taken is not None and taken[0].recent is not None
    assert taken[0].recent.value == 0.05
    assert w.board.take("shop/s1", w.clock.now(), 20) is None  # taken once


def test_a_stale_measurement_is_not_handed_over() -> None:
    w = Loop({"s0": (1.0, 20.0)}, n=1)
    w.loop.tick()
    w.clock.advance(25)
    assert w.board.take("shop/s0", w.clock.now(), 20) is None


def test_nothing_is_measured_while_not_leading_or_not_at_a_step() -> None:
    w = Loop({"s0": (1.0, 20.0)}, n=1)
    w.leading = False
    assert w.loop.tick() == [] and w.source.requests == []
    w.leading = True
    w.plans[0]["status"] = {"phase": "Succeeded"}
    w.plans[0]["metadata"]["resourceVersion"] = "9"
    assert w.loop.tick() == [] and w.source.requests == []


def test_a_remembered_episode_is_queued_to_be_cleared() -> None:
    w = Loop({"s0": (0.0, 20.0)}, n=1)
    st = w.plans[0]["status"]
    st["gates"] = [{"name": "api_availability", "kind": "slo",
                    "burningSince": datetime.isoformat(b.T0)}]
    w.plans[0]["metadata"]["resourceVersion"] = "10"
    assert w.loop.tick() == ["shop/s0"]


def test_short_windows_are_clipped_to_the_run_on_a_fixed_ladder() -> None:
    pol = b.policy()
    young = FastTarget("shop/s0", stepping(b.plan(name="s0")), pol)
    source = VectorSource({"s0": (1.0, 20.0)})
    [m] = measure_fast(source, [young], b.at(100), 30)["shop/s0"]
    # run 100 s old: 5m -> 75 s (300, 150, 75), 30m -> 56 s (1800, 900, ..., 112, 56)
    assert [x.short_seconds for x in m.burn_rates] == [75, 56]
    [m] = measure_fast(source, [young], b.at(40), 30)["shop/s0"]
    assert [x.short_seconds for x in m.burn_rates] == [37, 30]
    # younger than the recent window: not measured (it would see the previous run)
    assert measure_fast(source, [young], b.at(10), 30) == {}
