"""The dashboard's pages as HTML, rendered on the server. Pure: data in, text out.

Every value that comes from the cluster (names, reasons, messages, overrides: tenants write
them) goes through ``e()`` (``html.escape`` with quotes), attributes included. A page is a
shell (``page``) around a fragment (``overview``, ``plan_page``, ``policy_page``); the
browser polls the fragment and swaps it in when it changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from controller.api.plan import GateStatus, Phase, RolloutPlan, Verdict
from controller.api.policy import SLOPolicy, SLOStatus
from controller.dashboard import charts as ch
from controller.dashboard.figures import Headline, headline, meets_objective, step_label
from controller.dashboard.snapshot import Snapshot

BURN_WINDOWS = ("1h", "6h", "24h", "7d")


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _href(kind: str, namespace: str, name: str) -> str:
    return f"/{kind}/{quote(namespace, safe='')}/{quote(name, safe='')}"


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "-"


def _age(created: datetime | None, now: float) -> str:
    if created is None:
        return "-"
    s = int(max(0.0, now - created.timestamp()))
    if s < 120:
        return f"{s}s"
    if s < 3 * 3600:
        return f"{s // 60}m"
    if s < 2 * 86400:
        return f"{s // 3600}h{(s % 3600) // 60}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def _since(created: datetime | None, now: float) -> str:
    """An age cell the browser keeps current (data-since) without re-rendering."""
    stamp = f' data-since="{created.timestamp():.0f}"' if created else ""
    return f'<span class="age"{stamp}>{e(_age(created, now))}</span>'


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}%"


# ----------------------------------------------------------------------------- shell


def page(title: str, fragment: str, fragment_url: str, version: str, who: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{e(title)} · rolloutctl</title>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel=stylesheet href="/static/dashboard.css">'
        "</head><body>"
        '<nav><a href="/" class=brand>rolloutctl dashboard</a>'
        f'<span class=who>read as {e(who)} · read-only</span>'
        '<span id=live class=live title="updates by itself">live</span></nav>'
        f'<main id=main data-fragment="{e(fragment_url)}" data-version="{e(version)}">'
        f"{fragment}</main>"
        '<script src="/static/dashboard.js" defer></script>'
        "</body></html>"
    )


def _problems(snap: Snapshot) -> str:
    out = ""
    if snap.not_permitted:
        out += ('<p class=denied>not permitted (your RBAC does not let you list): '
                + ", ".join(f"<span>{e(n)}</span>" for n in snap.not_permitted) + "</p>")
    if snap.problems:
        out += "<ul class=problems>" + "".join(f"<li>{e(p)}</li>" for p in snap.problems) \
            + "</ul>"
    return out


# ----------------------------------------------------------------------------- overview


def overview(snap: Snapshot, now: float) -> str:
    head = headline(snap.plans, snap.policies)
    return (_headline(head) + _problems(snap)
            + "<h2>Rollout plans</h2>" + plans_table(snap.plans, now)
            + "<h2>SLO policies</h2>" + "".join(policy_card(p, now) for p in snap.policies)
            + ("" if snap.policies else "<p class=empty>no SLOPolicy you can see</p>"))


def _headline(head: Headline) -> str:
    compliance = head.compliance
    rate = "-" if compliance is None else f"{compliance:.0f}%"
    incidents = "".join(
        f'<li class="incident {e(i.kind)}"><b>{e(i.kind)}</b> {e(i.namespace)}/{e(i.name)}: '
        f'{e(i.reason)}</li>' for i in head.incidents)
    why = "".join(f"<li>{e(w)}</li>" for w in head.why[:8])
    return (
        '<section id=headline class=headline>'
        f'<div class="figure health {e(head.health.value.lower())}"><span>health</span>'
        f'<b id=health>{e(head.health.value)}</b></div>'
        f'<div class=figure><span>SLO compliance</span><b id=compliance>{e(rate)}</b>'
        f'<small>{head.slos_met} of {head.slos_counted} SLOs meet their objective</small></div>'
        f'<div class=figure><span>active incidents</span><b id=incidents>'
        f'{len(head.incidents)}</b></div>'
        f'<ul class=why>{why}</ul>'
        + (f'<ul class=incidents>{incidents}</ul>' if incidents else "")
        + "</section>"
    )


def _verdict_chip(g: GateStatus) -> str:
    text = g.reason.value + (f": {g.message}" if g.message else "")
    return (f'<span class="chip {e(g.verdict.value.lower())}" title="{e(text)}">'
            f'{e(g.name)} {e(g.verdict.value)}</span>')


def _step_bar(plan: RolloutPlan) -> str:
    done, total = step_label(plan)
    cells = "".join(
        f'<i class="{"on" if i < done else ""}" title="step {i + 1}: '
        f'{s.weight}% for {e(s.hold)}"></i>' for i, s in enumerate(plan.spec.steps))
    text = f"{done}/{total}" if done else "-"
    return f'<span class=steps data-step="{e(text)}">{cells}<em>{e(text)}</em></span>'


def plans_table(plans: list[RolloutPlan], now: float) -> str:
    if not plans:
        return "<p class=empty>no RolloutPlan you can see</p>"
    rows = []
    for plan in plans:
        ns, name, st = plan.metadata.namespace or "", plan.metadata.name, plan.status
        gates = "".join(_verdict_chip(g) for g in st.gates) or "-"
        why = st.message or st.reason
        rows.append(
            f'<tr class=plan data-plan="{e(ns)}/{e(name)}" data-phase="{e(st.phase.value)}">'
            f"<td>{e(ns)}</td>"
            f'<td><a href="{e(_href("plan", ns, name))}">{e(name)}</a></td>'
            f'<td><span class="phase {e(st.phase.value.lower())}" title="{e(why)}">'
            f"{e(st.phase.value)}</span></td>"
            f"<td>{_step_bar(plan)}</td>"
            f'<td class=weight><span class=wbar style="--w:{int(st.canary_weight)}%"></span>'
            f"{int(st.canary_weight)}%</td>"
            f"<td>{gates}</td><td>{_since(plan.metadata.creation_timestamp, now)}</td></tr>")
    return ("<table class=plans><thead><tr><th>namespace</th><th>plan</th><th>phase</th>"
            "<th>step</th><th>weight</th><th>gates</th><th>age</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _budget_cell(slo: SLOStatus) -> str:
    left = slo.budget_remaining
    meets = meets_objective(slo)
    cls = "unknown" if meets is None else ("ok" if meets and (left or 0) > 25
                                           else "low" if meets else "spent")
    width = max(0.0, min(100.0, left or 0.0))
    return (f'<span class="budget {cls}"><span style="width:{width:.0f}%"></span></span>'
            f"{e(_pct(left))}")


def _burns(slo: SLOStatus) -> str:
    parts = []
    for b in slo.burn_rates:
        rates = "/".join("-" if r is None else f"{r:.2f}x" for r in (b.long_rate, b.short_rate))
        cls = "firing" if b.firing else "quiet"
        parts.append(f'<span class="burn {cls}" title="{e(b.severity.value)}: fires at '
                     f'{b.factor:g}x on both {e(b.long)} and {e(b.short)}">'
                     f"{e(rates)} vs {b.factor:g}x ({e(b.long)}/{e(b.short)})</span>")
    return " ".join(parts) or "-"


def freeze_text(policy: SLOPolicy) -> str:
    st = policy.status
    if st.frozen:
        why = st.message or st.reason or "frozen"
        return (f'<span class="freeze frozen">FROZEN</span> <span class=freeze-reason>'
                f'{e(st.reason)}: {e(why)}</span> since {e(_when(st.frozen_since))}')
    if st.evaluated_at is None:
        return '<span class="freeze unknown">not evaluated yet</span>'
    return '<span class="freeze open">releases open</span>'


def _overrides(policy: SLOPolicy) -> str:
    active = [o for o in policy.status.overrides if o.active]
    if not active:
        return ""
    rows = "".join(
        f"<li>override <b>{e(o.id)}</b> by {e(o.by or '?')}: {e(o.reason)} "
        f"(allows {e(', '.join(o.allow) or 'every plan')}) until {e(_when(o.until))}</li>"
        for o in active)
    return f"<ul class=overrides>{rows}</ul>"


def _objective(policy: SLOPolicy, status: SLOStatus) -> str:
    spec = policy.spec.slo(status.name)
    objective = status.objective if status.objective is not None else (
        spec.objective if spec is not None else None)
    window = status.window or (spec.window if spec is not None else None)
    return f"{'-' if objective is None else f'{objective:g}%'} / {window or '-'}"


def policy_card(policy: SLOPolicy, now: float) -> str:
    ns, name, st = policy.metadata.namespace or "", policy.metadata.name, policy.status
    rows = "".join(
        f'<tr data-slo="{e(s.name)}"><td>{e(s.name)}</td>'
        f"<td>{e(_objective(policy, s))}</td><td>{_budget_cell(s)}</td><td>{_burns(s)}</td>"
        f'<td title="{e(s.message)}">{e(s.state.value)}</td></tr>' for s in st.slos)
    table = ("<table class=slos><thead><tr><th>SLO</th><th>objective / window</th>"
             "<th>budget remaining</th><th>burn (long/short) vs alert</th><th>state</th>"
             "</tr></thead><tbody>" + rows + "</tbody></table>") if rows else \
        "<p class=empty>no SLO evaluated yet</p>"
    return (f'<section class=policy data-policy="{e(ns)}/{e(name)}">'
            f'<h3><a href="{e(_href("policy", ns, name))}">{e(ns)}/{e(name)}</a> '
            f"{freeze_text(policy)}</h3>{_overrides(policy)}{table}</section>")


# ----------------------------------------------------------------------------- plan page


def plan_page(plan: RolloutPlan, charts: Iterable[ch.Chart], now: float,
              series_from: str) -> str:
    ns, name, st = plan.metadata.namespace or "", plan.metadata.name, plan.status
    head = (f'<h1>plan {e(ns)}/{e(name)} <span class="phase {e(st.phase.value.lower())}" '
            f'id=phase>{e(st.phase.value)}</span></h1>'
            f'<p class=summary>step {_step_bar(plan)} · canary weight '
            f'<b id=weight>{int(st.canary_weight)}%</b> · run {st.run} · revision '
            f'{e(st.revision or "-")} · {e(st.reason)}{": " if st.message else ""}'
            f"{e(st.message)}</p>")
    if st.freeze is not None:
        head += (f'<p class=frozen-by>frozen by policy {e(st.freeze.policy)}: '
                 f'{e(st.freeze.reason)} {e(st.freeze.message)}</p>')
    gates = "".join(
        f"<tr><td>{_verdict_chip(g)}</td><td>{e(_num(g.value))}</td>"
        f"<td>{e(_num(g.objective))}</td><td>{e(_num(g.burn_rate))}</td>"
        f"<td>{e(_num(g.samples))}</td><td>{e(g.reason.value)} {e(g.message)}</td>"
        f"<td>{e(_when(g.evaluated_at))}</td></tr>" for g in st.gates)
    gates_table = ("<h2>Gates now</h2><table class=gates><thead><tr><th>gate</th><th>value"
                   "</th><th>objective</th><th>burn</th><th>samples</th><th>reason</th>"
                   "<th>evaluated</th></tr></thead><tbody>" + gates + "</tbody></table>"
                   ) if gates else ""
    chart_html = "".join(ch.render(c) for c in charts)
    decisions = "".join(
        f"<tr><td>{e(_when(d.at))}</td><td>{e(d.type)}</td><td>{e(d.reason)}</td>"
        f"<td>{'-' if d.step is None else d.step + 1}</td>"
        f"<td>{'-' if d.weight is None else e(d.weight)}</td><td>{e(d.message)}</td></tr>"
        for d in reversed(st.decisions))
    history = "".join(
        f"<tr><td>{r.run}</td><td>{e(r.outcome.value)}</td><td>{e(r.reason)} "
        f"{e(r.message)}</td><td>{e(_when(r.started_at))}</td><td>{e(_when(r.ended_at))}</td>"
        f"<td>{'-' if r.final_step is None else r.final_step + 1}</td><td>{r.final_weight}%"
        f"</td><td>{_evidence(r.evidence)}</td></tr>" for r in reversed(st.history))
    drills = "".join(
        f"<tr><td>{e(d.id)}</td><td>{e(d.by)}</td><td>{e(d.outcome.value)}</td>"
        f"<td>{e(d.stage.value)}</td><td>{e(_when(d.requested_at))}</td>"
        f"<td>{e(_secs(d.requested_at, d.canary_weight_zero_at))}</td>"
        f"<td>{e(_secs(d.requested_at, d.stable_ready_at))}</td>"
        f"<td>{e(_secs(d.requested_at, d.restored_at))}</td><td>{e(d.message)}</td></tr>"
        for d in reversed(st.drills))
    return (
        head + gates_table
        + f"<h2>Timeline</h2><p class=note>series from {e(series_from)}; vertical lines are "
          "decisions (red: rollbacks, aborts, drills)</p>" + chart_html
        + "<h2>Decisions</h2>"
        + (f"<table class=decisions><thead><tr><th>at</th><th>decision</th><th>reason</th>"
           f"<th>step</th><th>weight</th><th>message</th></tr></thead><tbody>{decisions}"
           "</tbody></table>" if decisions else "<p class=empty>none yet</p>")
        + "<h2>Drills</h2>"
        + (f"<table class=drills><thead><tr><th>id</th><th>by</th><th>outcome</th><th>stage"
           "</th><th>requested</th><th>to weight 0</th><th>to stable ready</th>"
           f"<th>to restored</th><th>message</th></tr></thead><tbody>{drills}</tbody></table>"
           if drills else "<p class=empty>no drill yet</p>")
        + "<h2>Run history</h2>"
        + (f"<table class=history><thead><tr><th>run</th><th>outcome</th><th>reason</th>"
           "<th>started</th><th>ended</th><th>final step</th><th>final weight</th>"
           f"<th>evidence</th></tr></thead><tbody>{history}</tbody></table>"
           if history else "<p class=empty>no finished run yet</p>")
    )


def _evidence(gates: list[GateStatus]) -> str:
    return " ".join(
        _verdict_chip(g) + (f" <small>{e(_num(g.value))} vs {e(_num(g.objective))}</small>"
                            if g.verdict == Verdict.FAIL else "") for g in gates) or "-"


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}"


def _secs(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds():.1f}s"


# ----------------------------------------------------------------------------- policy page


def policy_page(policy: SLOPolicy, charts: Iterable[ch.Chart],
                burns: Mapping[str, Mapping[str, str]], now: float, series_from: str) -> str:
    ns, name = policy.metadata.namespace or "", policy.metadata.name
    rows = "".join(
        f"<tr><td>{e(slo)}</td>" + "".join(f"<td>{e(per.get(w, '-'))}</td>"
                                           for w in BURN_WINDOWS) + "</tr>"
        for slo, per in burns.items())
    burn_table = ("<table class=burns><thead><tr><th>SLO</th>" + "".join(
        f"<th>{w}</th>" for w in BURN_WINDOWS) + f"</tr></thead><tbody>{rows}</tbody></table>"
    ) if rows else "<p class=empty>no SLO with an error budget</p>"
    return (f"<h1>policy {e(ns)}/{e(name)}</h1>" + policy_card(policy, now)
            + "<h2>Burn rates (budget spent ÷ budget, canary and stable together)</h2>"
            + burn_table
            + f"<h2>Budget remaining over the SLO window</h2><p class=note>series from "
              f"{e(series_from)}; shaded: releases frozen</p>"
            + "".join(ch.render(c) for c in charts))


def not_found(kind: str, namespace: str, name: str) -> str:
    return (f"<h1>{e(kind)} {e(namespace)}/{e(name)} not found</h1><p>It does not exist, or "
            'your RBAC does not let you read it. <a href="/">Back to the overview</a></p>')


PHASES_BAD = {Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.INVALID}
