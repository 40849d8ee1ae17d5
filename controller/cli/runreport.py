"""The run report of ``rolloutctl report``, in Markdown or HTML, from a plan's status.

Sections: the summary; a timeline of the canary weight (``status.decisions``) and of the
gate values (``status.gates`` and each run's evidence in ``status.history``), drawn as an
inline SVG chart in the HTML form (no script, no CDN); the decisions; the runs with the
evidence their outcome rests on; the error budget used (the SLOPolicy's status); the drills.

The status keeps the last decisions, runs and drills only (see ``controller.api.plan``:
MAX_DECISIONS, MAX_HISTORY, MAX_DRILLS), so the report covers that much.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime

from controller.api.plan import DrillReport, GateStatus, RolloutPlan
from controller.api.policy import SLOPolicy
from controller.cli import summary

# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class GatePoint:
    gate: str
    at: datetime
    value: float
    objective: float | None
    verdict: str


def weight_series(plan: RolloutPlan, now: datetime) -> list[tuple[datetime, int]]:
    """(time, canary weight) at each decision, then now: a step function."""
    points = [(d.at, d.weight) for d in sorted(plan.status.decisions, key=lambda d: d.seq)
              if d.weight is not None]
    out: list[tuple[datetime, int]] = [(at, int(w)) for at, w in points]
    end = max(now, out[-1][0]) if out else now
    out.append((end, plan.status.canary_weight))
    return out


def gate_points(plan: RolloutPlan) -> list[GatePoint]:
    """Each gate value the status holds: the runs' evidence and the latest evaluation."""
    points: list[GatePoint] = []
    for run in plan.status.history:
        for g in run.evidence:
            if g.value is not None:
                points.append(GatePoint(g.name, g.evaluated_at or run.ended_at, g.value,
                                        g.objective, g.verdict.value))
    for g in plan.status.gates:
        if g.value is not None and g.evaluated_at is not None:
            points.append(GatePoint(g.name, g.evaluated_at, g.value, g.objective,
                                    g.verdict.value))
    unique = {(p.gate, p.at): p for p in points}
    return sorted(unique.values(), key=lambda p: (p.gate, p.at))


def budget_rows(policy: SLOPolicy | None) -> list[tuple[str, str, str, str, str]]:
    """(SLO, objective, window, budget left, budget used) per SLO of the policy."""
    if policy is None:
        return []
    measured = {s.name: s for s in policy.status.slos}
    rows = []
    for slo in policy.spec.slos:
        s = measured.get(slo.name)
        left = s.budget_remaining if s is not None else None
        rows.append((slo.name, f"{slo.objective:g}%" if slo.objective is not None else "-",
                     slo.window.text, f"{left:.2f}%" if left is not None else "-",
                     f"{100 - left:.2f}%" if left is not None else "-"))
    return rows


def _evidence_row(g: GateStatus) -> list[str]:
    return [g.name, g.verdict.value, _num(g.value), _num(g.objective),
            f"{g.burn_rate:.2f}x" if g.burn_rate is not None else "-",
            _num(g.samples), g.reason.value, g.message, g.query or "-"]


def _num(value: float | None) -> str:
    return f"{value:g}" if value is not None else "-"


def _drill_row(d: DrillReport) -> list[str]:
    def since(at: datetime | None) -> str:
        return summary.duration((at - d.requested_at).total_seconds()) if at else "-"

    return [d.id, d.by or "-", f"{d.requested_at:%Y-%m-%d %H:%M:%SZ}",
            "synthetic" if d.synthetic else "mid-run", d.outcome.value,
            since(d.rollback_started_at), since(d.canary_weight_zero_at),
            since(d.stable_ready_at), since(d.restored_at) if d.restore else "n/a"]


EVIDENCE_HEAD = ["gate", "verdict", "value", "objective", "burn", "samples", "reason",
                 "message", "query"]
DRILL_HEAD = ["id", "by", "requested", "kind", "outcome", "rollback started",
              "canary weight 0", "stable ready", "restored"]
DECISION_HEAD = ["at", "step", "weight", "decision", "reason", "message"]
RUN_HEAD = ["run", "revision", "outcome", "reason", "started", "ended", "took",
            "final step", "final weight"]


def _sections(plan: RolloutPlan, policy: SLOPolicy | None, now: datetime
              ) -> dict[str, list[list[str]]]:
    st = plan.status
    decisions = [[f"{d.at:%Y-%m-%d %H:%M:%SZ}", str(d.step + 1) if d.step is not None else "-",
                  f"{d.weight}%" if d.weight is not None else "-", d.type, d.reason, d.message]
                 for d in sorted(st.decisions, key=lambda d: d.seq)]
    runs = [[str(r.run), r.revision or "-", r.outcome.value, r.reason,
             f"{r.started_at:%Y-%m-%d %H:%M:%SZ}" if r.started_at else "-",
             f"{r.ended_at:%Y-%m-%d %H:%M:%SZ}",
             summary.duration((r.ended_at - r.started_at).total_seconds())
             if r.started_at else "-",
             str(r.final_step + 1) if r.final_step is not None else "-", f"{r.final_weight}%"]
            for r in st.history]
    return {
        "decisions": decisions,
        "runs": runs,
        "gates": [_evidence_row(g) for g in st.gates],
        "drills": [_drill_row(d) for d in st.drills],
        "budget": [list(r) for r in budget_rows(policy)],
    }


def _summary_lines(plan: RolloutPlan, now: datetime) -> list[tuple[str, str]]:
    st = plan.status
    return [
        ("plan", plan.key),
        ("generated", f"{now:%Y-%m-%d %H:%M:%SZ}"),
        ("phase", f"{st.phase.value} ({st.reason or '-'})" + (f": {st.message}"
                                                              if st.message else "")),
        ("health", summary.health(plan)),
        ("run", str(st.run)),
        ("revision", st.revision or "-"),
        ("run started", f"{st.run_started_at:%Y-%m-%d %H:%M:%SZ}" if st.run_started_at else "-"),
        ("step", summary.step_text(plan)),
        ("canary weight", f"{st.canary_weight}%"),
        ("steps", ", ".join((f"mirror {s.mirror}%" if s.mirror else f"{s.weight}%")
                            + f" for {s.hold}" for s in plan.spec.steps)),
        ("gates", summary.gates_text(plan)),
    ]


# ----------------------------------------------------------------------------- markdown


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(head: list[str], rows: list[list[str]], empty: str = "_none recorded_") -> str:
    """A Markdown table (cells escaped), or EMPTY when there are no rows."""
    if not rows:
        return empty + "\n"
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(plan: RolloutPlan, policy: SLOPolicy | None, now: datetime) -> str:
    sections = _sections(plan, policy, now)
    out = [f"# Rollout report: {plan.key}\n"]
    out += [f"- **{k}**: {md_cell(v)}" for k, v in _summary_lines(plan, now)]
    out.append("\n## Timeline of the canary weight\n")
    out.append(md_table(["from", "weight"], [[f"{at:%Y-%m-%d %H:%M:%SZ}", f"{w}%"]
                                              for at, w in weight_series(plan, now)]))
    out.append("\n## Timeline of the gate values\n")
    out.append(md_table(["gate", "at", "value", "objective", "verdict"], [
        [p.gate, f"{p.at:%Y-%m-%d %H:%M:%SZ}", f"{p.value:g}", _num(p.objective), p.verdict]
        for p in gate_points(plan)]))
    out.append("\n## Decisions\n")
    out.append(md_table(DECISION_HEAD, sections["decisions"]))
    out.append("\n## Gates now (evidence)\n")
    out.append(md_table(EVIDENCE_HEAD, sections["gates"]))
    out.append("\n## Runs\n")
    out.append(md_table(RUN_HEAD, sections["runs"]))
    for run in plan.status.history:
        if run.evidence:
            out.append(f"\n### Run {run.run}: {run.outcome.value} ({run.reason}) — evidence\n")
            if run.message:
                out.append(f"{md_cell(run.message)}\n")
            out.append(md_table(EVIDENCE_HEAD, [_evidence_row(g) for g in run.evidence]))
    out.append("\n## Error budget used\n")
    if policy is not None:
        frozen = "frozen" if policy.status.frozen else "not frozen"
        out.append(f"SLOPolicy {policy.metadata.name}: {frozen}"
                   + (f", {policy.status.budget_remaining:.2f}% of the budget left"
                      if policy.status.budget_remaining is not None else "") + "\n")
    out.append(md_table(["SLO", "objective", "window", "budget left", "budget used"],
                         sections["budget"]))
    out.append("\n## Drills\n")
    out.append(md_table(DRILL_HEAD, sections["drills"]))
    return "\n".join(out)


# ----------------------------------------------------------------------------- html + svg

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;font-size:90%}
th{background:#f3f3f3} .none{color:#888;font-style:italic}
svg text{font-size:11px;font-family:system-ui,sans-serif}
"""
_COLOURS = ["#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="none">none recorded</p>'
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def chart_svg(plan: RolloutPlan, now: datetime, width: int = 760, height: int = 260) -> str:
    """The canary weight over time (a step line, left axis 0-100 %) and each gate's value
    (dots, right axis scaled to the values and objectives), as one inline SVG."""
    weights = weight_series(plan, now)
    points = gate_points(plan)
    times = [t for t, _ in weights] + [p.at for p in points]
    t0, t1 = min(times), max(times)
    span = max(1.0, (t1 - t0).total_seconds())
    left, right, top, bottom = 50, 60, 20, 40
    w, h = width - left - right, height - top - bottom

    def x(t: datetime) -> float:
        return left + w * (t - t0).total_seconds() / span

    def y_weight(v: float) -> float:
        return top + h * (1 - v / 100)

    values = [p.value for p in points] + [p.objective for p in points if p.objective is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1

    def y_gate(v: float) -> float:
        return top + h * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="canary weight and gate '
             'values over time">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" '
             'stroke="#ccc"/>']
    for v in (0, 25, 50, 75, 100):
        yy = y_weight(v)
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{yy:.1f}" y2="{yy:.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{v}%</text>')
    path = []
    for i, (t, v) in enumerate(weights):
        if i == 0:
            path.append(f"M{x(t):.1f},{y_weight(v):.1f}")
        else:
            path.append(f"H{x(t):.1f}V{y_weight(v):.1f}")
    parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="#1f77b4" '
                 'stroke-width="2"><title>canary weight</title></path>')
    gates = sorted({p.gate for p in points})
    for gi, gate in enumerate(gates):
        colour = _COLOURS[gi % len(_COLOURS)]
        for p in (p for p in points if p.gate == gate):
            tip = html.escape(f"{gate} {p.value:g} ({p.verdict}) at {p.at:%H:%M:%SZ}")
            parts.append(f'<circle cx="{x(p.at):.1f}" cy="{y_gate(p.value):.1f}" r="4" '
                         f'fill="{colour}"><title>{tip}</title></circle>')
        objective = next((p.objective for p in points if p.gate == gate
                          and p.objective is not None), None)
        if objective is not None:
            yy = y_gate(objective)
            parts.append(f'<line x1="{left}" x2="{left + w}" y1="{yy:.1f}" y2="{yy:.1f}" '
                         f'stroke="{colour}" stroke-dasharray="4 3"><title>'
                         f'{html.escape(gate)} objective {objective:g}</title></line>')
    if values:
        for bound in (lo, hi):
            parts.append(f'<text x="{left + w + 6}" y="{y_gate(bound) + 4:.1f}">{bound:g}</text>')
    parts.append(f'<text x="{left}" y="{height - 22}">{t0:%Y-%m-%d %H:%M:%SZ}</text>')
    parts.append(f'<text x="{left + w}" y="{height - 22}" text-anchor="end">'
                 f'{t1:%Y-%m-%d %H:%M:%SZ}</text>')
    legend = [("canary weight (left axis)", "#1f77b4")] + [
        (f"{g} (right axis; dashed: objective)", _COLOURS[i % len(_COLOURS)])
        for i, g in enumerate(gates)]
    lx = float(left)
    for label, colour in legend:
        parts.append(f'<rect x="{lx}" y="{height - 12}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{lx + 14}" y="{height - 3}">'
                     f'{html.escape(label)}</text>')
        lx += 20 + 6 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def html_report(plan: RolloutPlan, policy: SLOPolicy | None, now: datetime) -> str:
    sections = _sections(plan, policy, now)
    title = html.escape(f"Rollout report: {plan.key}")
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                    for k, v in _summary_lines(plan, now))
    runs = ""
    for run in plan.status.history:
        if run.evidence:
            runs += (f"<h3>Run {run.run}: {html.escape(run.outcome.value)} "
                     f"({html.escape(run.reason)}): evidence</h3>"
                     + (f"<p>{html.escape(run.message)}</p>" if run.message else "")
                     + _html_table(EVIDENCE_HEAD, [_evidence_row(g) for g in run.evidence]))
    budget_head = ""
    if policy is not None:
        budget_head = (f"<p>SLOPolicy {html.escape(policy.metadata.name)}: "
                       f"{'frozen' if policy.status.frozen else 'not frozen'}</p>")
    gate_rows = [[p.gate, f"{p.at:%Y-%m-%d %H:%M:%SZ}", f"{p.value:g}", _num(p.objective),
                  p.verdict] for p in gate_points(plan)]
    return (
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title>"
        f"<style>{_CSS}</style></head><body><h1>{title}</h1><ul>{items}</ul>"
        f"<h2>Timeline</h2>{chart_svg(plan, now)}"
        f"<h3>Gate values</h3>{_html_table(['gate', 'at', 'value', 'objective', 'verdict'], gate_rows)}"  # noqa: E501
        f"<h2>Decisions</h2>{_html_table(DECISION_HEAD, sections['decisions'])}"
        f"<h2>Gates now (evidence)</h2>{_html_table(EVIDENCE_HEAD, sections['gates'])}"
        f"<h2>Runs</h2>{_html_table(RUN_HEAD, sections['runs'])}{runs}"
        f"<h2>Error budget used</h2>{budget_head}"
        f"{_html_table(['SLO', 'objective', 'window', 'budget left', 'budget used'], sections['budget'])}"  # noqa: E501
        f"<h2>Drills</h2>{_html_table(DRILL_HEAD, sections['drills'])}"
        "</body></html>\n"
    )
