"""Every rich renderable of the CLI: tables, the status view, drills, freezes, doctor.

Functions take the data and ``now`` and return renderables; commands print them on a
console from :func:`console`. Nothing here talks to a cluster.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from controller.api.plan import (
    DecisionRecord,
    DrillOutcome,
    DrillReport,
    GateKind,
    GateStatus,
    Phase,
    RolloutPlan,
    Verdict,
)
from controller.api.policy import SLIKind, SLOPolicy, SLOStatus
from controller.cli import summary
from controller.cli.summary import StepState

BAR_WIDTH = 30
DECISIONS_SHOWN = 5

_PHASE_STYLE = {
    Phase.SUCCEEDED: "bold green",
    Phase.PROGRESSING: "bold cyan",
    Phase.PROMOTING: "bold cyan",
    Phase.HOLDING: "bold yellow",
    Phase.PAUSED: "bold yellow",
    Phase.FROZEN: "bold blue",
    Phase.PENDING: "bold",
    Phase.ROLLING_BACK: "bold red",
    Phase.ROLLED_BACK: "bold red",
    Phase.FAILED: "bold red",
    Phase.INVALID: "bold red",
}
_VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "bold red",
                  Verdict.INCONCLUSIVE: "yellow"}
_LEVEL_STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red"}


def console(*, stderr: bool = False, width: int | None = None) -> Console:
    """A console for the command's output. Not a terminal (a pipe, a file): no colours and
    a wide line (``$COLUMNS`` or 160), so tables are not wrapped for ``grep``."""
    stream = sys.stderr if stderr else sys.stdout
    if width is None and not stream.isatty() and "COLUMNS" not in os.environ:
        width = 160
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def emit(renderable: RenderableType, out: Console | None = None) -> None:
    """Print RENDERABLE; on a pipe or a file without the padding rich leaves at line ends."""
    out = out or console()
    if out.is_terminal:
        out.print(renderable)
        return
    needed = out.measure(renderable, options=out.options.update(width=10_000)).maximum
    if needed > out.width:  # a pipe truncates nothing: widen the page to the content
        out = Console(file=out.file, width=needed, highlight=False, soft_wrap=False,
                      color_system=None)
    with out.capture() as captured:
        out.print(renderable)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    out.file.write(text + "\n")
    out.file.flush()


def live(renderable: RenderableType, out: Console, *, transient: bool = False) -> Live:
    """A live view on OUT, redrawn by ``update(..., refresh=True)`` (no background thread).
    Not a terminal: only the last view is printed, when it stops."""
    return Live(renderable, console=out, auto_refresh=False, transient=transient)


def _table(*headers: str, **kwargs: object) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold",
                  padding=(0, 2, 0, 0), **kwargs)  # type: ignore[arg-type]
    for header in headers:
        table.add_column(header, no_wrap=True)
    return table


# ----------------------------------------------------------------------------- get


def plans_table(plans: Sequence[RolloutPlan], now: datetime, *, wide: bool = False,
                all_namespaces: bool = False) -> Table:
    """Like ``kubectl get rp``: NAME PHASE STEP WEIGHT GATES AGE (+ REVISION REASON MESSAGE)."""
    headers = ["NAME", "PHASE", "STEP", "WEIGHT", "GATES", "AGE"]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    if wide:
        headers += ["REVISION", "REASON", "MESSAGE"]
    table = _table(*headers)
    for plan in plans:
        st = plan.status
        row = [plan.metadata.name, st.phase.value, summary.step_text(plan),
               f"{st.canary_weight}%", summary.gates_text(plan),
               summary.age(plan.metadata.creation_timestamp, now)]
        if all_namespaces:
            row.insert(0, plan.metadata.namespace)
        if wide:
            row += [st.revision or "-", st.reason or "-", st.message or "-"]
        table.add_row(*row)
    return table


# ----------------------------------------------------------------------------- status


def _bar(fraction: float, width: int = BAR_WIDTH, *, style: str = "bar.complete") -> ProgressBar:
    return ProgressBar(total=1000, completed=round(1000 * max(0.0, min(1.0, fraction))),
                       width=width, complete_style=style, finished_style="green")


def format_value(gate: GateStatus, value: float | None, sli: SLIKind | None) -> str:
    """A gate's value in its unit: ``99.95%`` good, ``1.20x`` burn, ``25/s``, or the number."""
    if value is None:
        return "-"
    if gate.kind == GateKind.CANARY_VS_STABLE:
        return f"{value:.2f}x"
    if sli == SLIKind.THROUGHPUT:
        return f"{value:g}/s"
    if sli == SLIKind.GAUGE:
        return f"{value:g}"
    return f"{value:g}%"


def format_objective(gate: GateStatus, sli: SLIKind | None) -> str:
    objective = gate.objective
    if objective is None:
        return "-"
    if gate.kind == GateKind.CANARY_VS_STABLE:
        return f"<= {objective:g}x stable"
    if sli == SLIKind.THROUGHPUT:
        return f">= {objective:g}/s"
    if sli == SLIKind.GAUGE:
        return f"bound {objective:g}"
    return f">= {objective:g}%"


def _sli_kinds(plan: RolloutPlan, policy: SLOPolicy | None) -> dict[str, SLIKind | None]:
    kinds: dict[str, SLIKind | None] = {}
    for gate in plan.spec.gates:
        slo = policy.spec.slo(gate.slo_name) if policy and gate.slo_name else None
        kinds[gate.name] = slo.sli.kind if slo is not None else (
            SLIKind.PROBE if gate.kind == GateKind.PROBE else None)
    return kinds


def gates_table(plan: RolloutPlan, policy: SLOPolicy | None = None) -> Table:
    kinds = _sli_kinds(plan, policy)
    table = _table("GATE", "VERDICT", "VALUE", "OBJECTIVE", "BURN", "SAMPLES", "REASON")
    table.columns[-1].no_wrap = False
    shown = {g.name: g for g in plan.status.gates}
    for gate in plan.spec.gates:
        g = shown.get(gate.name) or GateStatus(name=gate.name, kind=gate.kind)
        sli = kinds.get(g.name)
        reason = g.reason.value + (f": {g.message}" if g.message else "")
        table.add_row(
            g.name,
            Text(g.verdict.value, style=_VERDICT_STYLE[g.verdict]),
            format_value(g, g.value, sli),
            format_objective(g, sli),
            f"{g.burn_rate:.2f}x" if g.burn_rate is not None else "-",
            f"{g.samples:g}" if g.samples is not None else "-",
            reason,
        )
    return table


def decisions_table(decisions: Sequence[DecisionRecord], *, with_date: bool = False) -> Table:
    table = _table("AT", "STEP", "WEIGHT", "DECISION", "REASON", "MESSAGE")
    table.columns[-1].no_wrap = False
    for d in decisions:
        at = d.at.strftime("%Y-%m-%d %H:%M:%SZ" if with_date else "%H:%M:%SZ")
        table.add_row(at, str(d.step + 1) if d.step is not None else "-",
                      f"{d.weight}%" if d.weight is not None else "-", d.type, d.reason,
                      d.message)
    return table


def steps_grid(plan: RolloutPlan, now: datetime) -> Table:
    """One bar per step (done / current / to come), and one for the current step's hold."""
    grid = Table.grid(padding=(0, 1))
    for _ in range(5):
        grid.add_column(no_wrap=True)
    marks = {StepState.DONE: ("done", "green"), StepState.CURRENT: ("current", "bold cyan"),
             StepState.TO_COME: ("to come", "dim")}
    current: summary.StepProgress | None = None
    for p in summary.steps(plan, now):
        label, style = marks[p.state]
        fraction = 1.0 if p.state == StepState.DONE else (
            p.fraction if p.state == StepState.CURRENT else 0.0)
        grid.add_row(Text(f"step {p.index + 1}", style=style), p.share_text,
                     f"hold {p.hold_text}", _bar(fraction), Text(label, style=style))
        if p.state == StepState.CURRENT:
            current = p
    if current is not None:
        if plan.status.step_started_at is None:
            hold = "waiting for the canary"
            fraction = 0.0
        else:
            left = max(0.0, current.hold_seconds - current.elapsed)
            hold = (f"{summary.duration(current.elapsed)}/{current.hold_text}"
                    + (f" ({summary.duration(left)} left)" if left > 0 else " (elapsed)"))
            fraction = current.fraction
        grid.add_row(Text("hold", style="bold"), "", "", _bar(fraction), hold)
    return grid


def weight_line(plan: RolloutPlan) -> Table:
    weight = plan.status.canary_weight
    grid = Table.grid(padding=(0, 1))
    grid.add_row(Text("weight", style="bold"), f"canary {weight}%", _bar(weight / 100),
                 f"stable {100 - weight}%")
    if plan.status.canary_mirror:  # a mirror step: copies, responses discarded
        mirror = plan.status.canary_mirror
        grid.add_row(Text("mirror", style="bold"), f"copies {mirror}%", _bar(mirror / 100),
                     "to the canary (responses discarded)")
    return grid


def status_view(plan: RolloutPlan, now: datetime, policy: SLOPolicy | None = None, *,
                note: str = "") -> RenderableType:
    """The whole status of a plan: phase, steps and hold, weight, gates, last decisions."""
    st = plan.status
    meta = plan.metadata
    head = Text()
    head.append(f"RolloutPlan {meta.namespace}/{meta.name}", style="bold")
    head.append(f"   run {st.run}" if st.run else "   no run yet")
    if st.revision:
        head.append(f"   revision {st.revision}")
    head.append(f"   {summary.health(plan)}", style="dim")
    phase = Text()
    phase.append("phase ", style="bold")
    phase.append(st.phase.value, style=_PHASE_STYLE.get(st.phase, "bold"))
    if st.reason:
        phase.append(f"  {st.reason}")
    if st.message:
        phase.append(f": {st.message}")
    parts: list[RenderableType] = [head, phase]
    if st.observed_generation < meta.generation:
        parts.append(Text(f"the controller has not acted on generation {meta.generation} yet "
                          f"(observed {st.observed_generation})", style="yellow"))
    if st.freeze is not None:
        budget = (f"{st.freeze.budget_remaining:.1f}% budget left"
                  if st.freeze.budget_remaining is not None else "budget unknown")
        parts.append(Text(f"frozen by SLOPolicy {st.freeze.policy}: {st.freeze.reason} "
                          f"({budget})", style="blue"))
    drill = st.active_drill
    if drill is not None:
        parts.append(Text(f"drill {drill.id} in progress: {drill.stage.value}",
                          style="bold magenta"))
    parts += [Text(""), steps_grid(plan, now), weight_line(plan), Text("")]
    if plan.spec.gates:
        parts += [Text("gates", style="bold"), gates_table(plan, policy), Text("")]
    recent = st.decisions[-DECISIONS_SHOWN:]
    if recent:
        parts += [Text(f"last {len(recent)} decisions", style="bold"),
                  decisions_table(recent), Text("")]
    if note:
        parts.append(Text(note, style="dim"))
    return Group(*parts)


# ----------------------------------------------------------------------------- drills


def drill_timings_table(report: DrillReport) -> Table:
    table = _table("STAGE", "AT", "SINCE REQUEST", "SINCE PREVIOUS")
    for t in summary.drill_timings(report):
        table.add_row(
            t.stage,
            t.at.strftime("%H:%M:%S.%f")[:-3] + "Z" if t.at else "-",
            summary.duration(t.since_request) if t.since_request is not None else "-",
            summary.duration(t.since_previous) if t.since_previous is not None else "-",
        )
    return table


def drill_view(plan: RolloutPlan, report: DrillReport | None, drill_id: str,
               now: datetime, started: datetime) -> RenderableType:
    """The live view while a drill runs: stage, weight, timings so far."""
    waited = summary.duration((now - started).total_seconds())
    if report is None:
        return Group(Text(f"drill {drill_id}: waiting for the controller to pick up the "
                          f"request ({waited})", style="bold"), weight_line(plan))
    return Group(
        Text(f"drill {drill_id}: {report.stage.value} ({report.outcome.value}, {waited})",
             style="bold magenta"),
        weight_line(plan),
        drill_timings_table(report),
    )


def drill_result(report: DrillReport, plan: RolloutPlan) -> RenderableType:
    took = summary.drill_seconds(report)
    outcome_style = "bold green" if report.outcome == DrillOutcome.SUCCEEDED else "bold red"
    head = Text()
    head.append(f"drill {report.id} on {plan.key}: ")
    head.append(report.outcome.value, style=outcome_style)
    kind = "synthetic (no run in progress)" if report.synthetic else "mid-run"
    head.append(f"   {kind}{', restore' if report.restore else ''}")
    total = Text(f"total {summary.duration(took)} (max {report.max_duration})"
                 if took is not None else "total: not finished")
    parts: list[RenderableType] = [head, drill_timings_table(report), total]
    if report.message:
        parts.append(Text(report.message, style="dim"))
    parts.append(Text(f"phase now {plan.status.phase.value}, canary weight "
                      f"{plan.status.canary_weight}%"))
    return Group(*parts)


def drills_table(drills: Iterable[DrillReport]) -> Table:
    table = _table("ID", "BY", "REQUESTED", "KIND", "OUTCOME", "TO WEIGHT 0", "STABLE READY",
                   "RESTORED")
    for d in drills:
        def since(at: datetime | None, d: DrillReport = d) -> str:
            return summary.duration((at - d.requested_at).total_seconds()) if at else "-"
        table.add_row(d.id, d.by or "-", d.requested_at.strftime("%Y-%m-%d %H:%M:%SZ"),
                      "synthetic" if d.synthetic else "mid-run", d.outcome.value,
                      since(d.canary_weight_zero_at), since(d.stable_ready_at),
                      since(d.restored_at) if d.restore else "n/a")
    return table


def dry_run_view(plan: RolloutPlan, actions: Sequence[str], outcome: str) -> RenderableType:
    lines: list[RenderableType] = [Text(f"dry run: a drill on {plan.key} would, in order:",
                                        style="bold")]
    if actions:
        lines += [Text(f"  {i}. {a}") for i, a in enumerate(actions, 1)]
    else:
        lines.append(Text("  (no action)"))
    lines.append(Text(outcome))
    lines.append(Text("nothing was changed", style="dim"))
    return Group(*lines)


# ----------------------------------------------------------------------------- policies


def _until(at: datetime, now: datetime) -> str:
    left = (at - now).total_seconds()
    when = at.strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{when} (in {summary.duration(left)})" if left > 0 else f"{when} (expired)"


def freeze_view(policies: Sequence[SLOPolicy], now: datetime) -> RenderableType:
    parts: list[RenderableType] = []
    for policy in policies:
        st = policy.status
        head = Text()
        head.append(f"SLOPolicy {policy.metadata.namespace}/{policy.metadata.name}: ",
                    style="bold")
        if policy.spec.error_budget_policy.freeze_releases is None:
            head.append("no freeze policy (errorBudgetPolicy.freezeReleases unset)")
        elif st.evaluated_at is None:
            head.append("not evaluated yet", style="yellow")
        elif st.frozen:
            head.append("FROZEN", style="bold red")
        else:
            head.append("not frozen", style="green")
        parts.append(head)
        if st.services is not None and policy.spec.service is None:
            # a policy guarding each plan's service: one line per service
            parts.append(_services_table(policy, now))
        elif st.frozen:
            since = (f"since {st.frozen_since:%Y-%m-%d %H:%M:%SZ} "
                     f"({summary.duration((now - st.frozen_since).total_seconds())})"
                     if st.frozen_since else "since: unknown")
            parts.append(Text(f"  reason {st.reason or '-'}: {st.message}"))
            parts.append(Text(f"  {since}"))
        rule = policy.spec.error_budget_policy.freeze_releases
        if st.services is None or policy.spec.service is not None:
            budget = (f"{st.budget_remaining:.2f}% of the error budget left"
                      if st.budget_remaining is not None else "budget unknown")
            if rule is not None:
                budget += (f" (freezes below {rule.when_remaining_below}, releases above "
                           f"{rule.release_above}, SLO {rule.slo})")
            parts.append(Text(f"  {budget}"))
        elif rule is not None:
            parts.append(Text(f"  each service freezes below {rule.when_remaining_below} of "
                              f"its {rule.slo} budget and releases above {rule.release_above}"))
        if st.evaluated_at is not None:
            parts.append(Text(f"  evaluated {st.evaluated_at:%Y-%m-%d %H:%M:%SZ}", style="dim"))
        active = [o for o in policy.spec.overrides if o.expires > now]
        seen = {o.id for o in st.overrides}
        if active:
            table = _table("OVERRIDE", "BY", "REASON", "UNTIL", "ALLOW")
            for o in active:
                table.add_row(o.id + ("" if o.id in seen else " (not yet seen)"), o.by or "-",
                              o.reason, _until(o.expires, now),
                              ", ".join(o.allow) if o.allow else "all plans")
            parts.append(Text("  active overrides:"))
            parts.append(table)
        else:
            parts.append(Text("  no active override"))
        parts.append(Text(""))
    return Group(*parts)


def _services_table(policy: SLOPolicy, now: datetime) -> RenderableType:
    """Per guarded service: frozen or not, why, the freeze SLO's budget left, since when."""
    st = policy.status
    table = _table("SERVICE", "STATE", "REASON", "BUDGET LEFT", "SINCE", "MESSAGE")
    for s in st.services or []:
        state = Text("FROZEN", style="bold red") if s.frozen else Text("open", style="green")
        since = (f"{s.frozen_since:%Y-%m-%d %H:%M:%SZ} "
                 f"({summary.duration((now - s.frozen_since).total_seconds())})"
                 if s.frozen and s.frozen_since else "-")
        left = f"{s.budget_remaining:.2f}%" if s.budget_remaining is not None else "unknown"
        table.add_row(s.service, state, s.reason or "-", left, since, s.message or "-")
    if not st.services:
        return Text("  no service guarded yet (no plan governed by this policy)")
    return table


def budget_view(policies: Sequence[SLOPolicy]) -> RenderableType:
    parts: list[RenderableType] = []
    for policy in policies:
        st = policy.status
        parts.append(Text(f"SLOPolicy {policy.metadata.namespace}/{policy.metadata.name}"
                          + (f" (evaluated {st.evaluated_at:%Y-%m-%d %H:%M:%SZ})"
                             if st.evaluated_at else " (not evaluated yet)"), style="bold"))
        if st.services is None:
            parts += [_budget_table(policy, st.slos), Text("")]
            continue
        if not st.services:
            parts += [Text("  no service guarded yet (no plan governed by this policy)"),
                      Text("")]
        for service in st.services:
            parts.append(Text(f"service {service.service}"
                              + (" (FROZEN)" if service.frozen else ""), style="bold"))
            parts += [_budget_table(policy, service.slos), Text("")]
    return Group(*parts)


def _budget_table(policy: SLOPolicy, slos: Sequence[SLOStatus]) -> RenderableType:
    table = _table("SLO", "OBJECTIVE", "WINDOW", "BUDGET LEFT", "ERROR RATIO", "BURN ALERT",
                   "LONG", "SHORT", "FIRING")
    measured = {s.name: s for s in slos}
    for slo in policy.spec.slos:
        s = measured.get(slo.name)
        objective = f"{slo.objective:g}%" if slo.objective is not None else "-"
        left = (f"{s.budget_remaining:.2f}%" if s is not None
                and s.budget_remaining is not None else "-")
        ratio = (f"{s.error_ratio:.6g}" if s is not None and s.error_ratio is not None
                 else "-")
        if s is not None and s.reason and s.budget_remaining is None:
            left = s.reason
        burns = s.burn_rates if s is not None else []
        if not burns:
            table.add_row(slo.name, objective, slo.window.text, left, ratio, "-", "-", "-",
                          "-")
        for i, b in enumerate(burns):
            first = i == 0
            table.add_row(
                slo.name if first else "", objective if first else "",
                slo.window.text if first else "", left if first else "",
                ratio if first else "",
                f"{b.severity.value} {b.factor:g}x ({b.long}/{b.short})",
                f"{b.long_rate:.2f}x" if b.long_rate is not None else "-",
                f"{b.short_rate:.2f}x" if b.short_rate is not None else "-",
                Text("yes", style="bold red") if b.firing else "no",
            )
    return table


# ----------------------------------------------------------------------------- doctor


def check_line(level: str, name: str, message: str) -> Text:
    line = Text()
    line.append(f"{level:<4}", style=_LEVEL_STYLE.get(level, ""))
    line.append(f"  {name}: {message}")
    return line
