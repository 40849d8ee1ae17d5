"""The charts of a plan and of a policy, from Prometheus (the controller's own series) with
the plan's status as the fallback for the weight line.

Series read: ``rolloutctl_plan_canary_weight_percent``, ``rolloutctl_gate_value``,
``rolloutctl_policy_budget_remaining_percent`` and ``rolloutctl_policy_frozen``, exported by
the controller on /metrics: the Prometheus asked must scrape the controller.
"""

from __future__ import annotations

from datetime import datetime

from controller.api.plan import RolloutPlan
from controller.api.policy import SLOPolicy
from controller.dashboard.charts import Band, Chart, Line, Marker
from controller.ports import RangeSource


def _q(value: str) -> str:
    """A PromQL label value, quoted (names are DNS labels, quoted anyway)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _step(span: float, points: int = 240) -> float:
    return float(max(1, int(span / points) or 1))


def _ts(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


def run_span(plan: RolloutPlan, now: float) -> tuple[float, float, str]:
    """The span to chart: the run under way, else the last run, else the last hour."""
    st = plan.status
    if st.in_run and st.run_started_at is not None:
        return st.run_started_at.timestamp(), now, f"run {st.run} (under way)"
    if st.history:
        last = st.history[-1]
        start = _ts(last.started_at) or last.ended_at.timestamp() - 600
        return start, max(last.ended_at.timestamp(), start + 60), f"run {last.run}"
    return now - 3600, now, "the last hour"


_ROLLBACK_WORDS = ("rollback", "rolledback", "abort", "drill")


def plan_charts(plan: RolloutPlan, source: RangeSource | None, now: float,
                why_none: str = "") -> list[Chart]:
    ns, name = plan.metadata.namespace or "", plan.metadata.name
    start, end, what = run_span(plan, now)
    end = max(end, start + 30)
    step = _step(end - start)
    markers = []
    for d in plan.status.decisions:
        at = d.at.timestamp()
        if start - 1 <= at <= end + 1:
            bad = any(w in (d.type + d.reason).lower() for w in _ROLLBACK_WORDS)
            where = f" step {d.step + 1}" if d.step is not None else ""
            weight = f" {d.weight}%" if d.weight is not None else ""
            markers.append(Marker(at, f"{d.type} {d.reason}{where}{weight}",
                                  "#dc2626" if bad else "#6b7280"))
    labels = f"namespace={_q(ns)},plan={_q(name)}"
    weight_note = ""
    weights: list[tuple[float, float]] = []
    gate_series: dict[str, list[tuple[float, float]]] = {}
    if source is not None:
        answer = source.range(f"max(rolloutctl_plan_canary_weight_percent{{{labels}}})",
                              start, end, step)
        if answer.error:
            weight_note = answer.error
        elif answer.series:
            weights = answer.series[0].points
        gates = source.range(f"rolloutctl_gate_value{{{labels}}}", start, end, step)
        for s in gates.series:
            gate_series.setdefault(s.labels.get("gate", "?"), []).extend(s.points)
    if not weights:
        weights = [(d.at.timestamp(), float(d.weight)) for d in plan.status.decisions
                   if d.weight is not None and start - 1 <= d.at.timestamp() <= end + 1]
        if not weights:
            weights = [(start, float(plan.status.canary_weight))]
        source_note = why_none or weight_note or "no series in Prometheus"
        weight_note = f"weight from the plan's decisions ({source_note})"
    title = f"Canary weight — {what}" + (f" · {weight_note}" if weight_note else "")
    charts = [Chart(title, start, end, [Line("canary weight %", weights, step=True)],
                    markers=markers, y_min=0, y_max=100, unit="%", css_class="chart weight")]
    for gate in plan.status.gates:
        points = gate_series.get(gate.name, [])
        note = "" if points else (why_none or "no gate values in Prometheus for this span")
        charts.append(Chart(f"Gate {gate.name}", start, end, [Line(gate.name, points)],
                            objective=gate.objective, markers=markers, note=note,
                            css_class="chart gate"))
    return charts


def policy_charts(policy: SLOPolicy, source: RangeSource | None, now: float,
                  why_none: str = "") -> list[Chart]:
    ns, name = policy.metadata.namespace or "", policy.metadata.name
    labels = f"namespace={_q(ns)},policy={_q(name)}"
    charts = []
    for slo in policy.spec.slos:
        if slo.is_threshold or slo.objective is None:
            continue
        window = slo.window.seconds
        start, end = now - window, now
        points: list[tuple[float, float]] = []
        bands: list[Band] = []
        note = why_none
        if source is not None:
            expr = (f"max(rolloutctl_policy_budget_remaining_percent{{{labels},"
                    f"slo={_q(slo.name)}}})")
            answer = source.range(expr, start, end, _step(window))
            if answer.series and answer.series[0].points:
                first = answer.series[0].points[0][0]
                if now - first < window / 10:  # little history: chart what there is, finer
                    start = max(start, first - _step(window))
                    answer = source.range(expr, start, end, _step(end - start))
                    if answer.series and answer.series[0].points:
                        start = max(start, answer.series[0].points[0][0] - 30)
            points = answer.series[0].points if answer.series else []
            note = answer.error or ("" if points else "no budget series in Prometheus")
            frozen = source.range(f"max(rolloutctl_policy_frozen{{{labels}}})", start, end,
                                  _step(end - start))
            if frozen.series:
                bands = _bands(frozen.series[0].points, _step(end - start), "frozen")
        since = policy.status.frozen_since
        if policy.status.frozen and since is not None and not bands:
            bands = [Band(since.timestamp(), now, f"frozen: {policy.status.reason}")]
        charts.append(Chart(f"Budget remaining — {slo.name} ({slo.window})", start, end,
                            [Line("budget remaining %", points)], objective=0.0,
                            objective_label="budget spent", bands=bands, unit="%",
                            y_max=100.0,
                            note=note, css_class="chart budget"))
    return charts


def _bands(points: list[tuple[float, float]], step: float, label: str) -> list[Band]:
    out: list[Band] = []
    opened: float | None = None
    last = 0.0
    for t, v in points:
        if v >= 1 and opened is None:
            opened = t
        if v < 1 and opened is not None:
            out.append(Band(opened, t, label))
            opened = None
        last = t
    if opened is not None:
        out.append(Band(opened, last + step, label))
    return out
