"""What people read: Slack Block Kit messages with a plain-text fallback, e-mails and
incident events. Pure functions of the object's live state and an outbox entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    SectionBlock,
)
from slack_sdk.models.blocks.basic_components import MarkdownTextObject, PlainTextObject

from controller.adapters.notify.routing import IncidentAction
from controller.adapters.notify.subject import GateView, Kind, PlanView, PolicyView, Subject
from controller.api.decisions import decision_info
from controller.api.notifications import EmailSettings, OutgoingMessage

METADATA_EVENT_TYPE = "rolloutctl"
DRILL_MARK = ":rotating_light: *DRILL* (a rehearsal of the rollback path, not an incident)"

_SECTION_MAX = 3000
_FIELD_MAX = 2000
_HEADER_MAX = 150
_FALLBACK_MAX = 3000

_PHASE_EMOJI = {
    "Pending": ":hourglass:",
    "Progressing": ":arrow_forward:",
    "Paused": ":double_vertical_bar:",
    "Holding": ":hourglass_flowing_sand:",
    "Frozen": ":ice_cube:",
    "RollingBack": ":rewind:",
    "RolledBack": ":leftwards_arrow_with_hook:",
    "Promoting": ":rocket:",
    "Succeeded": ":white_check_mark:",
    "Failed": ":x:",
    "Invalid": ":warning:",
}
_VERDICT_EMOJI = {"Pass": ":white_check_mark:", "Fail": ":x:", "Inconclusive": ":grey_question:"}
_SEVERITY_EMOJI = {"info": "", "warning": ":warning: ", "critical": ":red_circle: "}


@dataclass(frozen=True)
class Rendered:
    """A Slack message: fallback text (notifications, screen readers, webhooks) and blocks."""

    text: str
    blocks: list[dict[str, Any]]

    @property
    def hash(self) -> str:
        data = json.dumps({"text": self.text, "blocks": self.blocks}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:20]


def metadata(key: str, subject: Subject) -> dict[str, Any]:
    """Slack message metadata carrying the dedup key."""
    return {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {"key": key, "object": str(subject.ref), "uid": subject.uid},
    }


def root_key(subject: Subject, run: int, entry: OutgoingMessage | None = None) -> str:
    """The dedup key of a thread's root message: per run (plans) or per freeze (policies)."""
    if subject.ref.kind is Kind.ROLLOUT_PLAN:
        return f"root.{subject.uid}.run-{run}"
    return f"root.{subject.uid}.{entry.key if entry is not None else 'policy'}"


# ----------------------------------------------------------------------------- text helpers


def esc(text: str) -> str:
    """Escape text for Slack mrkdwn (the three control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def num(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return str(value)


def step_label(step: int | None, total: int) -> str:
    """``currentStep`` is an index into ``spec.steps``: 0 is the first step."""
    return f"-/{total}" if step is None else f"{step + 1}/{total}"


def _md(text: str, limit: int = _SECTION_MAX) -> MarkdownTextObject:
    return MarkdownTextObject(text=_cut(text, limit))


def _dump(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]


def _drill_prefix(drill: bool) -> str:
    return "[DRILL] " if drill else ""


def bare_title(subject: Subject, entry: OutgoingMessage) -> str:
    """The entry's title without the "[DRILL] " and "namespace/name: " prefixes the engine
    may have put there; the renderers add them where they belong."""
    title = entry.title
    if title.startswith("[DRILL] "):
        title = title.removeprefix("[DRILL] ")
    return title.removeprefix(f"{subject.ref.namespace}/{subject.ref.name}: ") or entry.type


def _gate_line(g: GateView) -> str:
    emoji = _VERDICT_EMOJI.get(g.verdict, ":grey_question:")
    parts = [f"{emoji} *{esc(g.name)}* {esc(g.verdict)} ({esc(g.reason)})",
             f"value {num(g.value)} vs objective {num(g.objective)}"]
    if g.burn_rate is not None:
        parts.append(f"burn {num(g.burn_rate)}x")
    if g.samples is not None:
        parts.append(f"{num(g.samples)} samples")
    return " · ".join(parts)


def _evidence_lines(evidence: Sequence[Mapping[str, object]]) -> list[str]:
    lines = []
    for e in evidence:
        verdict = str(e.get("verdict", "?"))
        emoji = _VERDICT_EMOJI.get(verdict, ":grey_question:")
        burn = e.get("burnRate", e.get("burn_rate"))
        line = (
            f"{emoji} *{esc(str(e.get('name', '?')))}* {esc(verdict)}"
            f" ({esc(str(e.get('reason', '')))}): value {num(e.get('value'))}"
            f" vs objective {num(e.get('objective'))}"
        )
        if burn is not None:
            line += f", burn {num(burn)}x"
        stable = e.get("stableValue", e.get("stable_value"))
        if stable is not None:
            line += f", stable {num(stable)}"
        if e.get("samples") is not None:
            line += f", {num(e.get('samples'))} samples"
        query = e.get("query")
        if query:
            shown = esc(_cut(str(query).replace("`", "'"), 400))
            line += f"\n`{shown}`"
        lines.append(line)
    return lines


def _evidence_text(evidence: Sequence[Mapping[str, object]]) -> list[str]:
    out = []
    for e in evidence:
        burn = e.get("burnRate", e.get("burn_rate"))
        out.append(
            f"- {e.get('name', '?')}: {e.get('verdict', '?')} ({e.get('reason', '')}), "
            f"value {num(e.get('value'))} vs objective {num(e.get('objective'))}, "
            f"burn rate {num(burn)}, samples {num(e.get('samples'))}"
            + (f", stable {num(e.get('stableValue'))}" if e.get("stableValue") is not None
               else "")
            + (f"\n  query: {e.get('query')}" if e.get("query") else "")
        )
    return out


# ----------------------------------------------------------------------------- root messages


def root_message(subject: Subject, cluster: str) -> Rendered:
    """The live state shown in (and updated in place in) the thread's root message."""
    if isinstance(subject.view, PlanView):
        return _plan_root(subject, subject.view, cluster)
    return _policy_root(subject, subject.view, cluster)


def _plan_root(subject: Subject, v: PlanView, cluster: str) -> Rendered:
    ref = subject.ref
    phase = f"{_PHASE_EMOJI.get(v.phase, '')} {esc(v.phase)}".strip()
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=_cut(f"Rollout {ref.name} · run {v.run}",
                                                   _HEADER_MAX))),
    ]
    if v.drill:
        blocks.append(ContextBlock(elements=[_md(DRILL_MARK)]))
    fields = [
        ("Cluster", cluster or "-"),
        ("Namespace", ref.namespace),
        ("Plan", ref.name),
        ("Revision", v.revision or "-"),
        ("Phase", phase),
        ("Step", step_label(v.current_step, v.steps)),
        ("Canary weight", f"{v.weight}%"),
    ]
    blocks.append(SectionBlock(fields=[
        _md(f"*{name}*\n{value if name == 'Phase' else esc(value)}", _FIELD_MAX)
        for name, value in fields
    ]))
    if v.message or v.reason:
        blocks.append(SectionBlock(text=_md(f"_{esc(v.reason)}_ {esc(v.message)}".strip())))
    if v.gates:
        blocks.append(SectionBlock(text=_md("*Gates*\n" + "\n".join(_gate_line(g)
                                                                    for g in v.gates))))
    text = _cut(
        f"{_drill_prefix(v.drill)}{ref.namespace}/{ref.name} run {v.run}: {v.phase}, "
        f"step {step_label(v.current_step, v.steps)}, weight {v.weight}%"
        + (f", revision {v.revision}" if v.revision else "")
        + (f" [{cluster}]" if cluster else ""),
        _FALLBACK_MAX,
    )
    return Rendered(text=text, blocks=_dump(blocks))


def _policy_root(subject: Subject, v: PolicyView, cluster: str) -> Rendered:
    ref = subject.ref
    state = ":ice_cube: Releases frozen" if v.frozen else ":sunny: Releases open"
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=_cut(f"Error budget · {ref.name}", _HEADER_MAX))),
        SectionBlock(fields=[
            _md(f"*Cluster*\n{esc(cluster or '-')}", _FIELD_MAX),
            _md(f"*Namespace*\n{esc(ref.namespace)}", _FIELD_MAX),
            _md(f"*Policy*\n{esc(ref.name)}", _FIELD_MAX),
            _md(f"*State*\n{state}", _FIELD_MAX),
            _md(f"*Budget remaining*\n{_pct(v.budget_remaining)}", _FIELD_MAX),
        ]),
    ]
    if v.reason or v.message:
        blocks.append(SectionBlock(text=_md(f"_{esc(v.reason)}_ {esc(v.message)}".strip())))
    if v.slos:
        blocks.append(SectionBlock(text=_md("*SLOs*\n" + "\n".join(
            f"• *{esc(s.name)}* budget remaining {_pct(s.budget_remaining)} ({esc(s.state)})"
            for s in v.slos
        ))))
    if v.overrides:
        blocks.append(ContextBlock(elements=[
            _md(":unlock: Active overrides: " + ", ".join(esc(o) for o in v.overrides))
        ]))
    text = (
        f"{ref.namespace}/{ref.name}: {'releases frozen' if v.frozen else 'releases open'}, "
        f"budget remaining {_pct(v.budget_remaining)}" + (f" [{cluster}]" if cluster else "")
    )
    return Rendered(text=_cut(text, _FALLBACK_MAX), blocks=_dump(blocks))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def significant_state(subject: Subject) -> str:
    """What must reach the root message at once: phase, step, weight, verdicts (plans);
    frozen, reason, overrides (policies). Measured values alone may wait a little."""
    v = subject.view
    if isinstance(v, PlanView):
        key: tuple[object, ...] = (v.run, v.phase, v.reason, v.current_step, v.weight,
                                   v.revision, v.drill,
                                   tuple((g.name, g.verdict, g.reason) for g in v.gates))
    else:
        key = (v.frozen, v.reason, v.overrides)
    return hashlib.sha256(repr(key).encode()).hexdigest()[:20]


def orphan_root(subject: Subject, run: int, cluster: str) -> Rendered:
    """A root for an earlier run whose live state is gone (its messages arrive late)."""
    ref = subject.ref
    text = f"{ref.namespace}/{ref.name} run {run}" + (f" [{cluster}]" if cluster else "")
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=_cut(f"Rollout {ref.name} · run {run}",
                                                   _HEADER_MAX))),
        ContextBlock(elements=[_md(f"{esc(cluster or '-')} · {esc(ref.namespace)}")]),
    ]
    return Rendered(text=text, blocks=_dump(blocks))


# ----------------------------------------------------------------------------- entries


def entry_message(
    subject: Subject, entry: OutgoingMessage, cluster: str, *, standalone: bool = False
) -> Rendered:
    """An outbox entry as a thread reply, or STANDALONE (criticalChannel, incoming webhook,
    no thread) with the object named in full."""
    ref = subject.ref
    info = decision_info(entry.type)
    emoji = info.emoji if info is not None else ":information_source:"
    sev = _SEVERITY_EMOJI.get(str(entry.severity), "")
    blocks: list[Block] = []
    if standalone:
        blocks.append(HeaderBlock(text=PlainTextObject(text=_cut(
            f"{_drill_prefix(entry.drill)}{ref.kind} {ref.namespace}/{ref.name}", _HEADER_MAX
        ))))
    if entry.drill:
        blocks.append(ContextBlock(elements=[_md(DRILL_MARK)]))
    title = bare_title(subject, entry)
    body = f"{sev}{emoji} *{esc(title)}*"
    if entry.text:
        body += f"\n{esc(entry.text)}"
    blocks.append(SectionBlock(text=_md(body)))
    if entry.evidence:
        lines = _evidence_lines(entry.evidence)
        blocks.append(SectionBlock(text=_md("*Evidence*\n" + "\n".join(lines))))
    context = []
    total = subject.view.steps if isinstance(subject.view, PlanView) else None
    if entry.step is not None and total is not None:
        context.append(f"step {step_label(entry.step, total)}")
    if entry.weight is not None:
        context.append(f"weight {entry.weight}%")
    if standalone:
        context.append(f"cluster {esc(cluster or '-')}")
        if isinstance(subject.view, PlanView) and subject.view.revision:
            context.append(f"revision {esc(subject.view.revision)}")
    context.append(f"{esc(entry.type)} · {esc(entry.key)}")
    blocks.append(ContextBlock(elements=[_md(" · ".join(context), _FIELD_MAX)]))
    text = f"{_drill_prefix(entry.drill)}{title}"
    if standalone:
        text = f"{_drill_prefix(entry.drill)}{ref.namespace}/{ref.name}: {title}"
    if entry.text:
        text += f": {entry.text}"
    if cluster and standalone:
        text += f" [{cluster}]"
    if entry.evidence:
        text += "\n" + "\n".join(_evidence_text(entry.evidence))
    return Rendered(text=_cut(text, _FALLBACK_MAX), blocks=_dump(blocks))


# ----------------------------------------------------------------------------- e-mail


def email_message(
    subject: Subject, entry: OutgoingMessage, cluster: str, settings: EmailSettings
) -> EmailMessage:
    ref = subject.ref
    msg = EmailMessage()
    tag = "[rolloutctl]" + (" [DRILL]" if entry.drill else "")
    msg["Subject"] = (
        f"{tag} {str(entry.severity).upper()}: {ref.namespace}/{ref.name}: "
        f"{bare_title(subject, entry)}"
    )[:250]
    msg["From"] = settings.from_
    msg["To"] = ", ".join(settings.to)
    msg["Date"] = format_datetime(entry.at)
    # Deterministic: a resent e-mail is recognisably the same message.
    digest = hashlib.sha256(f"{subject.uid}/{entry.key}".encode()).hexdigest()[:32]
    msg["Message-ID"] = f"<{digest}@rolloutctl.dev>"
    msg["X-Rolloutctl-Key"] = entry.key
    lines = []
    if entry.drill:
        lines += ["DRILL: this is a rehearsal of the rollback path, not an incident.", ""]
    lines += [f"{ref.namespace}/{ref.name}: {bare_title(subject, entry)}"]
    if entry.text:
        lines += ["", entry.text]
    lines += ["", f"Cluster:   {cluster or '-'}", f"Namespace: {ref.namespace}",
              f"{ref.kind}: {ref.name}", f"Type:      {entry.type}",
              f"Severity:  {entry.severity}", f"At:        {entry.at.isoformat()}"]
    if isinstance(subject.view, PlanView):
        v = subject.view
        lines += [f"Revision:  {v.revision or '-'}",
                  f"Step:      {step_label(entry.step, v.steps)}" if entry.step is not None
                  else f"Step:      {step_label(v.current_step, v.steps)}",
                  f"Weight:    {entry.weight if entry.weight is not None else v.weight}%"]
    else:
        pv = subject.view
        lines += [f"Budget remaining: {_pct(pv.budget_remaining)}"]
    if entry.evidence:
        lines += ["", "Evidence:", *_evidence_text(entry.evidence)]
    lines += ["", f"Dedup key: {entry.key}"]
    msg.set_content("\n".join(lines) + "\n")
    return msg


# ----------------------------------------------------------------------------- incident


def incident_dedup_key(subject: Subject, entry: OutgoingMessage, cluster: str) -> str:
    base = f"rolloutctl/{cluster or 'cluster'}/{subject.ref.namespace}/{subject.ref.kind}/"
    return _cut(f"{base}{subject.ref.name}/{entry.key}", 255)


def incident_event(
    subject: Subject,
    entry: OutgoingMessage,
    cluster: str,
    *,
    action: IncidentAction,
    dedup_key: str,
    routing_key: str,
    severity: str,
) -> dict[str, Any]:
    """A PagerDuty Events v2 event."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": str(action),
        "dedup_key": dedup_key,
    }
    if action is IncidentAction.TRIGGER:
        ref = subject.ref
        details: dict[str, Any] = {
            "type": entry.type, "key": entry.key, "text": entry.text,
            "cluster": cluster, "namespace": ref.namespace, "object": str(ref),
        }
        if isinstance(subject.view, PlanView):
            details.update(revision=subject.view.revision, step=entry.step,
                           weight=entry.weight)
            component = subject.view.service or ref.name
        else:
            details.update(budgetRemaining=subject.view.budget_remaining)
            component = ref.name
        if entry.evidence:
            details["evidence"] = list(entry.evidence)
        event["payload"] = {
            "summary": _cut(f"{ref.namespace}/{ref.name}: {bare_title(subject, entry)}", 1024),
            "source": _cut(f"{cluster or 'cluster'}/{ref.namespace}/{ref.name}", 255),
            "severity": severity,
            "timestamp": entry.at.isoformat(),
            "component": component,
            "group": ref.namespace,
            "class": entry.type,
            "custom_details": details,
        }
    return event
