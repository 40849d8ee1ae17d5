"""The SLO compliance report of ``rolloutctl report --policy``: figures and their rendering.

Pure: the figures come from the SLOPolicy and its plans (their status: the freezes, runs and
drills the controller keeps) and from each SLO's event counts per bucket of the period
(``controller.adapters.metrics.history``), given here as data, so the same figures are
unit-tested from fixed inputs and read from Prometheus by the command.

- Compliance of an SLO over the period: 100 x (1 - bad / total), the ratio of the period's
  sums; it meets the objective when at or above it.
- Budget spent over the period: (bad / total) / (1 - objective), in percent of the budget
  the period allows (100 % spent: exactly at the objective). Budget left now: over the SLO's
  own window ending at the report's end, as the controller computes it.
- Worst burn periods: the buckets with the highest burn rate (error ratio / (1 - objective)),
  among those burning faster than the budget allows (above 1x).
- Freezes: ``status.freezes`` of the policy (since, until, reasons, overrides used).
- Releases: the runs of the policy's plans that ended in the period (``status.history``);
  change-failure rate = (rollbacks + other failures) / runs that ended so; time from fault
  to weight 0 = a rollback's canary weight 0 minus the first failing evaluation of its
  evidence; drills requested in the period with their time to restore (``status.drills``).

The status keeps the last runs, drills and freezes only (MAX_HISTORY, MAX_DRILLS,
MAX_FREEZES), so release and freeze figures cover what it still holds.
"""

from __future__ import annotations

import html
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.api.plan import RolloutPlan, RunOutcome, Verdict
from controller.api.policy import PLATFORM_LABEL, SLOPolicy
from controller.cli.runreport import md_cell, md_table

WORST_PERIODS = 3
_STEPS = (60, 300, 900, 3600, 6 * 3600, 86400)


def bucket_seconds(period_seconds: float) -> int:
    """The bucket size for a period: the smallest of 1m, 5m, 15m, 1h, 6h, 1d giving at most
    200 buckets (7 days: 1h; 30 days: 6h)."""
    for step in _STEPS:
        if period_seconds / step <= 200:
            return step
    return _STEPS[-1]


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Counts:
    """Events of one bucket ending at ``end``."""

    end: datetime
    bad: float
    total: float


@dataclass(frozen=True)
class BurnPeriod:
    start: datetime
    end: datetime
    burn_rate: float
    bad: float
    total: float


@dataclass(frozen=True)
class SloFigures:
    name: str
    objective: float | None
    window: str
    bad: float | None = None
    total: float | None = None
    compliance: float | None = None  # percent of good events over the period
    met: bool | None = None
    budget_spent: float | None = None  # percent of the period's budget
    budget_left_now: float | None = None  # percent, over the SLO's window at the end
    worst: tuple[BurnPeriod, ...] = ()
    buckets: tuple[Counts, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class FreezeRow:
    since: datetime
    until: datetime | None
    seconds: float
    reasons: tuple[str, ...]
    message: str
    lowest_budget: float | None
    overrides: tuple[str, ...]  # "id by WHO: reason"


@dataclass(frozen=True)
class DrillRow:
    plan: str
    id: str
    requested_at: datetime
    outcome: str
    seconds_to_restore: float | None


@dataclass(frozen=True)
class Releases:
    plans: tuple[str, ...]
    runs: int
    succeeded: int
    rolled_back: int
    superseded: int
    failed: int  # ended in another failure (not a rollback): change failures too
    change_failure_rate: float | None  # percent
    restore_seconds: tuple[float, ...]  # fault to weight 0, per rollback
    median_restore: float | None
    drills: tuple[DrillRow, ...]


@dataclass(frozen=True)
class PolicyReport:
    namespace: str
    policy: str
    service: str
    since: datetime
    until: datetime
    step_seconds: int
    slos: tuple[SloFigures, ...]
    freezes: tuple[FreezeRow, ...]
    releases: Releases
    frozen_now: bool
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def compliance_rate(self) -> float | None:
        """Share of SLOs with a budget meeting their objective over the period (percent)."""
        judged = [s.met for s in self.slos if s.met is not None]
        return 100.0 * sum(judged) / len(judged) if judged else None


# ----------------------------------------------------------------------------- figures


def slo_figures(name: str, objective: float | None, window: str, buckets: Sequence[Counts],
                step_seconds: int, budget_left_now: float | None = None,
                note: str = "") -> SloFigures:
    """An SLO's figures over the period from its buckets (see the module doc)."""
    base = SloFigures(name, objective, window, budget_left_now=budget_left_now, note=note,
                      buckets=tuple(buckets))
    if objective is None:
        return base
    bad = sum(b.bad for b in buckets)
    total = sum(b.total for b in buckets)
    if total <= 0:
        return SloFigures(name, objective, window, budget_left_now=budget_left_now,
                          note=note or "no events in the period", buckets=tuple(buckets))
    ratio = bad / total
    allowed = 1 - objective / 100
    compliance = 100 * (1 - ratio)
    periods = (BurnPeriod(b.end - timedelta(seconds=step_seconds), b.end,
                          (b.bad / b.total) / allowed, b.bad, b.total)
               for b in buckets if b.total > 0)
    burns = sorted((p for p in periods if p.burn_rate > 1 + 1e-9),
                   key=lambda p: (-p.burn_rate, p.start))
    return SloFigures(
        name, objective, window, bad=bad, total=total, compliance=compliance,
        met=compliance >= objective - 1e-9, budget_spent=100 * ratio / allowed,
        budget_left_now=budget_left_now, worst=tuple(burns[:WORST_PERIODS]),
        buckets=tuple(buckets), note=note)


def plans_of(policy: SLOPolicy, plans: Sequence[RolloutPlan]) -> list[RolloutPlan]:
    """The plans POLICY guards: those naming it, or every plan of its namespace for a
    platform policy (labelled ``rolloutctl.dev/platform: "true"``)."""
    platform = (policy.metadata.labels or {}).get(PLATFORM_LABEL) == "true"
    ns = policy.metadata.namespace
    return sorted((p for p in plans if p.metadata.namespace == ns and (
        platform or (p.spec.slo_policy_ref is not None
                     and p.spec.slo_policy_ref.name == policy.metadata.name))),
        key=lambda p: p.metadata.name)


def _in(at: datetime | None, since: datetime, until: datetime) -> bool:
    return at is not None and since <= at <= until


def release_figures(plans: Sequence[RolloutPlan], since: datetime,
                    until: datetime) -> Releases:
    succeeded = rolled_back = superseded = failed = 0
    restore: list[float] = []
    drills: list[DrillRow] = []
    for plan in plans:
        for run in plan.status.history:
            if not _in(run.ended_at, since, until):
                continue
            if run.outcome == RunOutcome.SUCCEEDED:
                succeeded += 1
            elif run.outcome == RunOutcome.SUPERSEDED:
                superseded += 1
            elif run.outcome != RunOutcome.ROLLED_BACK:
                failed += 1
            elif run.reason != "Drill":
                rolled_back += 1
                failing = [g.failing_since for g in run.evidence
                           if g.failing_since is not None and g.verdict == Verdict.FAIL]
                if failing and run.weight_zero_at is not None:
                    restore.append(max(0.0, (run.weight_zero_at - min(failing))
                                       .total_seconds()))
        for d in plan.status.drills:
            if _in(d.requested_at, since, until):
                drills.append(DrillRow(plan.metadata.name, d.id, d.requested_at,
                                       d.outcome.value, d.seconds_to_restore))
    judged = succeeded + rolled_back + failed
    return Releases(
        plans=tuple(p.metadata.name for p in plans), runs=judged + superseded,
        succeeded=succeeded, rolled_back=rolled_back, superseded=superseded, failed=failed,
        change_failure_rate=100.0 * (rolled_back + failed) / judged if judged else None,
        restore_seconds=tuple(restore),
        median_restore=statistics.median(restore) if restore else None,
        drills=tuple(sorted(drills, key=lambda d: d.requested_at)))


def freeze_rows(policy: SLOPolicy, since: datetime, until: datetime) -> list[FreezeRow]:
    """The policy's freezes overlapping the period, with the overrides used in each."""
    known = {o.id: o for o in policy.status.overrides}
    rows = []
    for f in policy.status.freezes:
        end = f.until or until
        if end < since or f.since > until:
            continue
        overrides = []
        for oid in f.overrides:
            o = known.get(oid)
            overrides.append(f"{oid} by {o.by or 'an operator'}: {o.reason}" if o else oid)
        rows.append(FreezeRow(f.since, f.until, (min(end, until) - max(f.since, since))
                              .total_seconds(), tuple(f.reasons or [f.reason]), f.message,
                              f.budget_remaining, tuple(overrides)))
    return rows


def policy_report(policy: SLOPolicy, plans: Sequence[RolloutPlan], since: datetime,
                  until: datetime, step_seconds: int, slos: Sequence[SloFigures],
                  errors: Sequence[str] = (), service: str | None = None) -> PolicyReport:
    """The report of POLICY for SERVICE (default: the policy's own service). A policy
    guarding several services reports each on its own: the plans of that service, and the
    freezes that named it (a policy's freeze history is kept for the policy as a whole;
    a freeze of one of several services names it in its message)."""
    guarded = plans_of(policy, plans)
    names = {p.spec.service_name for p in guarded}
    if service is None:
        service = policy.spec.service or (
            next(iter(names)) if len(names) == 1 else policy.metadata.name)
    several = policy.spec.service is None and len(names | {service}) > 1
    if several:
        guarded = [p for p in guarded if p.spec.service_name == service]
    freezes = freeze_rows(policy, since, until)
    if several:
        freezes = [f for f in freezes if f.message.startswith(f"{service}: ")
                   or not any(f.message.startswith(f"{p.spec.service_name}: ")
                              for p in plans_of(policy, plans))]
    return PolicyReport(
        namespace=policy.metadata.namespace, policy=policy.metadata.name,
        service=service, since=since, until=until,
        step_seconds=step_seconds, slos=tuple(slos),
        freezes=tuple(freezes),
        releases=release_figures(guarded, since, until),
        frozen_now=policy.status.frozen, errors=tuple(dict.fromkeys(errors)))


# ----------------------------------------------------------------------------- text helpers


def _pct(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}%"


def _t(at: datetime | None) -> str:
    return "-" if at is None else f"{at.astimezone(UTC):%Y-%m-%d %H:%M}Z"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes}m{int(seconds % 60):02d}s"
    hours = minutes // 60
    return f"{hours}h{minutes % 60:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


def _count(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


SLO_HEAD = ["SLO", "objective", "compliance", "met", "bad / total events",
            "budget spent (period)", "budget left now (SLO window)"]
WORST_HEAD = ["SLO", "from", "to", "burn rate", "bad / total events"]
FREEZE_HEAD = ["from", "to", "lasted", "why", "lowest budget", "overrides used"]
DRILL_HEAD = ["plan", "drill", "requested", "outcome", "time to restore"]


def _slo_row(s: SloFigures) -> list[str]:
    met = "-" if s.met is None else ("yes" if s.met else "NO")
    if s.objective is None:
        return [s.name, "-", "-", "-", "-", "-", s.note or "threshold SLI: no error budget"]
    return [s.name, f"{s.objective:g}%", _pct(s.compliance), met,
            f"{_count(s.bad)} / {_count(s.total)}" if s.total else s.note or "-",
            _pct(s.budget_spent, 1), _pct(s.budget_left_now, 1)]


def _worst_rows(r: PolicyReport) -> list[list[str]]:
    return [[s.name, _t(p.start), _t(p.end), f"{p.burn_rate:.2f}x",
             f"{_count(p.bad)} / {_count(p.total)}"] for s in r.slos for p in s.worst]


def _freeze_rows(r: PolicyReport) -> list[list[str]]:
    return [[_t(f.since), _t(f.until) if f.until else "still frozen",
             duration_text(f.seconds), ", ".join(f.reasons) + (f": {f.message}" if f.message
                                                                else ""),
             _pct(f.lowest_budget, 1), "; ".join(f.overrides) or "none"] for f in r.freezes]


def _drill_rows(r: PolicyReport) -> list[list[str]]:
    return [[d.plan, d.id, _t(d.requested_at), d.outcome, duration_text(d.seconds_to_restore)]
            for d in r.releases.drills]


def _release_lines(r: PolicyReport) -> list[tuple[str, str]]:
    rel = r.releases
    return [
        ("plans", ", ".join(rel.plans) or "none"),
        ("releases", f"{rel.succeeded + rel.rolled_back + rel.failed} ({rel.succeeded} "
                     f"succeeded, {rel.rolled_back} rolled back"
                     + (f", {rel.failed} failed" if rel.failed else "")
                     + f"; {rel.superseded} superseded)"),
        ("change-failure rate", _pct(rel.change_failure_rate, 1)),
        ("median time from fault to canary weight 0", duration_text(rel.median_restore)
         + (f" over {len(rel.restore_seconds)} rollbacks" if rel.restore_seconds else "")),
        ("drills", f"{len(rel.drills)}"),
    ]


def _headline(r: PolicyReport) -> list[tuple[str, str]]:
    span = (r.until - r.since).total_seconds()
    return [
        ("period", f"{_t(r.since)} to {_t(r.until)} ({duration_text(span)})"),
        ("service", r.service),
        ("SLO compliance rate", _pct(r.compliance_rate, 0) + " of the SLOs met their objective"
         if r.compliance_rate is not None else "no SLO measured"),
        ("releases frozen now", "yes" if r.frozen_now else "no"),
    ]


# ----------------------------------------------------------------------------- markdown


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    return md_table(head, rows, empty="_none_")


def markdown(reports: Sequence[PolicyReport]) -> str:
    out: list[str] = []
    for r in reports:
        out.append(f"# SLO compliance report: {r.namespace}/{r.policy}\n")
        out += [f"- **{k}**: {md_cell(v)}" for k, v in _headline(r)]
        out += [f"- **error**: {md_cell(e)}" for e in r.errors]
        out.append("\n## Compliance per SLO\n")
        out.append(_md_table(SLO_HEAD, [_slo_row(s) for s in r.slos]))
        out.append(f"\n## Worst burn periods ({duration_text(r.step_seconds)} buckets)\n")
        out.append(_md_table(WORST_HEAD, _worst_rows(r)))
        out.append("\n## Freezes\n")
        out.append(_md_table(FREEZE_HEAD, _freeze_rows(r)))
        out.append("\n## Releases\n")
        out += [f"- **{k}**: {md_cell(v)}" for k, v in _release_lines(r)]
        out.append("\n### Drills\n")
        out.append(_md_table(DRILL_HEAD, _drill_rows(r)))
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------- json


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_json(reports: Sequence[PolicyReport]) -> str:
    def slo(s: SloFigures) -> dict[str, Any]:
        return {
            "name": s.name, "objective": s.objective, "window": s.window,
            "bad": s.bad, "total": s.total, "compliance": s.compliance, "met": s.met,
            "budgetSpent": s.budget_spent, "budgetLeftNow": s.budget_left_now,
            "note": s.note or None,
            "worstBurnPeriods": [{"start": _iso(p.start), "end": _iso(p.end),
                                  "burnRate": p.burn_rate, "bad": p.bad, "total": p.total}
                                 for p in s.worst]}

    def one(r: PolicyReport) -> dict[str, Any]:
        rel = r.releases
        return {
            "namespace": r.namespace, "policy": r.policy, "service": r.service,
            "since": _iso(r.since), "until": _iso(r.until), "bucketSeconds": r.step_seconds,
            "complianceRate": r.compliance_rate, "frozenNow": r.frozen_now,
            "slos": [slo(s) for s in r.slos],
            "freezes": [{"since": _iso(f.since), "until": _iso(f.until), "seconds": f.seconds,
                         "reasons": list(f.reasons), "message": f.message,
                         "lowestBudget": f.lowest_budget, "overrides": list(f.overrides)}
                        for f in r.freezes],
            "releases": {
                "plans": list(rel.plans), "runs": rel.runs, "succeeded": rel.succeeded,
                "rolledBack": rel.rolled_back, "superseded": rel.superseded,
                "failed": rel.failed,
                "changeFailureRate": rel.change_failure_rate,
                "restoreSeconds": list(rel.restore_seconds),
                "medianRestoreSeconds": rel.median_restore,
                "drills": [{"plan": d.plan, "id": d.id, "requestedAt": _iso(d.requested_at),
                            "outcome": d.outcome, "secondsToRestore": d.seconds_to_restore}
                           for d in rel.drills]},
            "errors": list(r.errors),
        }

    return json.dumps({"policies": [one(r) for r in reports]}, indent=2) + "\n"


# ----------------------------------------------------------------------------- html + svg

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:60em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;font-size:90%}
th{background:#f3f3f3} .none{color:#888;font-style:italic} .miss{color:#b00;font-weight:bold}
svg text{font-size:11px;font-family:system-ui,sans-serif}
"""


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="none">none</p>'
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(
        f'<td{" class=miss" if c == "NO" else ""}>{html.escape(c)}</td>' for c in row)
        + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def compliance_svg(r: PolicyReport, width: int = 760) -> str:
    """One bar per SLO: its compliance against its objective (a tick), red when missed."""
    judged = [s for s in r.slos if s.compliance is not None and s.objective is not None]
    if not judged:
        return ""
    row, left = 22, 190
    height = 30 + row * len(judged)
    lo = max(0.0, min(min(s.compliance or 0 for s in judged),
                      min(s.objective or 0 for s in judged)) - 0.5)
    w = width - left - 80

    def x(v: float) -> float:
        return left + w * (v - lo) / max(1e-9, 100 - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="compliance per SLO">']
    for i, s in enumerate(judged):
        assert s.compliance is not None and s.objective is not None
        y = 10 + i * row
        colour = "#2ca02c" if s.met else "#d62728"
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">'
                     f'{html.escape(s.name)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{max(1.0, x(s.compliance) - left):.1f}"'
                     f' height="16" fill="{colour}"><title>{html.escape(s.name)} '
                     f'{s.compliance:.3f}% (objective {s.objective:g}%)</title></rect>')
        parts.append(f'<line x1="{x(s.objective):.1f}" x2="{x(s.objective):.1f}" y1="{y - 2}" '
                     f'y2="{y + 18}" stroke="#222" stroke-width="2"/>')
        parts.append(f'<text x="{x(s.compliance) + 4:.1f}" y="{y + 13}">'
                     f'{s.compliance:.3f}%</text>')
    parts.append(f'<text x="{left}" y="{height - 4}">{lo:g}%</text>'
                 f'<text x="{left + w}" y="{height - 4}" text-anchor="end">100% '
                 '(tick: objective)</text></svg>')
    return "".join(parts)


def burn_svg(r: PolicyReport, s: SloFigures, width: int = 760, height: int = 220) -> str:
    """The burn rate per bucket (bars; the dashed line is 1x, spending exactly the budget),
    the share of the period's budget spent so far (a line, right axis) and the freezes
    (shaded)."""
    if s.objective is None or not s.buckets:
        return ""
    allowed = 1 - s.objective / 100
    t0, t1 = r.since, r.until
    span = max(1.0, (t1 - t0).total_seconds())
    left, right, top, bottom = 50, 60, 14, 40
    w, h = width - left - right, height - top - bottom
    burns = [(b, (b.bad / b.total) / allowed if b.total > 0 else 0.0) for b in s.buckets]
    top_burn = max([1.5, *(v for _, v in burns)])
    total = s.total or 1.0

    def x(t: datetime) -> float:
        return left + w * min(1.0, max(0.0, (t - t0).total_seconds() / span))

    def y(v: float) -> float:
        return top + h * (1 - v / top_burn)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(s.name)} burn rate over the period">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" '
             'stroke="#ccc"/>']
    for f in r.freezes:
        fx0, fx1 = x(f.since), x(f.until or t1)
        parts.append(f'<rect x="{fx0:.1f}" y="{top}" width="{max(1.0, fx1 - fx0):.1f}" '
                     f'height="{h}" fill="#9ecae1" opacity="0.4"><title>frozen '
                     f'{html.escape(", ".join(f.reasons))}</title></rect>')
    bar = max(1.0, w * r.step_seconds / span - 1)
    for b, v in burns:
        bx = x(b.end) - bar
        colour = "#d62728" if v > 1 else "#ff9896"
        parts.append(f'<rect x="{bx:.1f}" y="{y(v):.1f}" width="{bar:.1f}" '
                     f'height="{top + h - y(v):.1f}" fill="{colour}"><title>'
                     f'{_t(b.end)}: {v:.2f}x</title></rect>')
    parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(1):.1f}" y2="{y(1):.1f}" '
                 'stroke="#222" stroke-dasharray="4 3"><title>1x: the budget spent exactly'
                 '</title></line>')
    spent, path = 0.0, [f"M{left},{top + h}"]
    for b, _ in burns:
        spent += b.bad
        share = min(1.0, (spent / (total * allowed)) if total else 0.0)
        path.append(f"L{x(b.end):.1f},{top + h * (1 - share):.1f}")
    parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="#1f77b4" stroke-width="2">'
                 '<title>budget of the period spent so far (right axis, 0-100%)</title></path>')
    parts.append(f'<text x="{left - 6}" y="{y(top_burn) + 10:.1f}" text-anchor="end">'
                 f'{top_burn:.1f}x</text><text x="{left - 6}" y="{y(1) + 4:.1f}" '
                 'text-anchor="end">1x</text>'
                 f'<text x="{left + w + 6}" y="{top + 10}">100%</text>'
                 f'<text x="{left + w + 6}" y="{top + h}">0%</text>'
                 f'<text x="{left}" y="{height - 22}">{_t(t0)}</text>'
                 f'<text x="{left + w}" y="{height - 22}" text-anchor="end">{_t(t1)}</text>'
                 f'<text x="{left}" y="{height - 4}">bars: burn rate per '
                 f'{duration_text(r.step_seconds)} (dashed: 1x); line: budget of the period '
                 'spent so far; shaded: frozen</text></svg>')
    return "".join(parts)


def html_report(reports: Sequence[PolicyReport]) -> str:
    title = "SLO compliance report: " + ", ".join(f"{r.namespace}/{r.policy}" for r in reports)
    body = []
    for r in reports:
        items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                        for k, v in [*_headline(r), *(("error", e) for e in r.errors)])
        charts = "".join(f"<h3>{html.escape(s.name)}</h3>{burn_svg(r, s)}"
                         for s in r.slos if s.buckets and s.objective is not None)
        releases = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                           for k, v in _release_lines(r))
        body.append(
            f"<h1>SLO compliance report: {html.escape(r.namespace)}/{html.escape(r.policy)}"
            f"</h1><ul>{items}</ul>"
            f"<h2>Compliance per SLO</h2>{compliance_svg(r)}"
            f"{_html_table(SLO_HEAD, [_slo_row(s) for s in r.slos])}"
            f"<h2>Error-budget burn over the period</h2>{charts or '<p class=none>no data</p>'}"
            f"<h2>Worst burn periods ({html.escape(duration_text(r.step_seconds))} buckets)</h2>"
            f"{_html_table(WORST_HEAD, _worst_rows(r))}"
            f"<h2>Freezes</h2>{_html_table(FREEZE_HEAD, _freeze_rows(r))}"
            f"<h2>Releases</h2><ul>{releases}</ul>"
            f"<h3>Drills</h3>{_html_table(DRILL_HEAD, _drill_rows(r))}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")
