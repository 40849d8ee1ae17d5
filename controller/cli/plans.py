"""Everyday plan commands: ``get``, ``status``, and the operator's requests
(``promote``, ``pause``, ``resume``, ``abort``, ``retry``).

A request is written into the plan (``spec.requests.<kind>`` with a fresh id, who and
when) with a JSON merge patch; the controller acts on each id exactly once and records it
in ``status.handled.<kind>``. ``--wait`` follows the plan until that happens.

Heavy modules (the Kubernetes client, the models) are imported inside the commands.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from controller.cli.errors import EXIT_BAD, EXIT_ERROR, EXIT_OK, CliError, reported
from controller.cli.options import (
    AllNamespaces,
    ClusterOptions,
    Context,
    Document,
    Kubeconfig,
    Namespace,
    Output,
)

if TYPE_CHECKING:
    from rich.console import Console

    from controller.api.plan import RolloutPlan
    from controller.api.policy import SLOPolicy
    from controller.cli.session import Session

Timeout = Annotated[str, typer.Option(
    "--timeout", metavar="DURATION", help="Give up after this long (e.g. 90s, 10m).")]
Wait = Annotated[bool, typer.Option(
    "--wait", help="Follow the plan until the controller has handled the request.")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded with the request).")]


def parse_timeout(text: str, flag: str = "--timeout") -> float:
    from controller.api.types import Duration

    try:
        seconds = Duration(text).seconds
    except ValueError as exc:
        raise CliError(f"{flag}: {exc}") from None
    if seconds <= 0:
        raise CliError(f"{flag} must be longer than 0s (it is {text})")
    return seconds


def _now() -> datetime:
    return datetime.now(UTC)


def _dump(obj: Any, fmt: Output | Document) -> str:
    if fmt in (Output.JSON, Document.JSON):
        return json.dumps(obj, indent=2, sort_keys=False)
    import yaml

    return str(yaml.safe_dump(obj, sort_keys=False))


# ----------------------------------------------------------------------------- get


def get(
    plan: Annotated[str | None, typer.Argument(help="A RolloutPlan (default: all)")] = None,
    output: Annotated[Output, typer.Option(
        "-o", "--output", help="table, wide (adds REVISION, REASON, MESSAGE), json or yaml")
    ] = Output.TABLE,
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
) -> None:
    """List RolloutPlans like `kubectl get rp`: NAME PHASE STEP WEIGHT GATES AGE."""
    from controller.cli import render
    from controller.cli.session import session
    from controller.cli.stored import parse_plan

    opts = ClusterOptions(kubeconfig, context, namespace, all_namespaces and plan is None)
    with session(opts) as s:
        if plan is not None:
            raws = [s.raw("RolloutPlan", plan)]
        else:
            raws = sorted(s.store.list("RolloutPlan", s.list_namespace),
                          key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))
        if output in (Output.JSON, Output.YAML):
            doc = raws[0] if plan is not None else {
                "apiVersion": "v1", "kind": "List", "items": raws}
            typer.echo(_dump(doc, output), nl=False)
            return
        if not raws:
            where = "any namespace" if s.list_namespace is None else (
                f"namespace {s.namespace}")
            typer.echo(f"No RolloutPlans found in {where}.", err=True)
            return
        plans = [parse_plan(r) for r in raws]
        render.emit(render.plans_table(
            plans, _now(), wide=output == Output.WIDE, all_namespaces=s.list_namespace is None))


# ----------------------------------------------------------------------------- status


PolicyReader = Callable[[str, str], dict[str, Any] | None]
"""Reads a stored SLOPolicy by namespace and name (None when there is none)."""


def _policy_of(s: Session, plan: RolloutPlan) -> SLOPolicy | None:
    """The plan's SLOPolicy read through the session (see :func:`_policy_from`)."""
    return _policy_from(plan, lambda namespace, name: s.store.get("SLOPolicy", namespace, name))


def _policy_from(plan: RolloutPlan, read: PolicyReader) -> SLOPolicy | None:
    """The plan's SLOPolicy, for the units of its gates (None when it cannot be read)."""
    from controller.cli.stored import parse_policy
    from controller.errors import ControllerError

    ref = plan.spec.slo_policy_ref
    if ref is None:
        return None
    try:
        raw = read(plan.metadata.namespace, ref.name)
        return parse_policy(raw) if raw is not None else None
    except (ControllerError, CliError):
        return None


def status(
    plan: Annotated[str, typer.Argument(help="The RolloutPlan")],
    watch: Annotated[bool, typer.Option(
        "-w", "--watch", help="Re-render live until the plan reaches a final state "
        "(Succeeded, RolledBack, Invalid) or the timeout.")] = False,
    timeout: Timeout = "10m",
    interval: Annotated[float, typer.Option(
        "--interval", help="Seconds between reads while watching.", min=0.1)] = 1.0,
    output: Annotated[Document | None, typer.Option(
        "-o", "--output", help="json or yaml: the status as stored")] = None,
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """Show a plan: phase, steps and hold, weight, gates, last decisions.

    Exit code: 0 succeeded or healthy (Pending, Progressing, Holding, Paused, Promoting,
    Frozen, a drill), 1 rolled back, rolling back, degraded (Degraded condition True) or
    Invalid, 2 an error or --watch timed out.
    """
    with reported():
        seconds = parse_timeout(timeout)
    opts = ClusterOptions(kubeconfig, context, namespace)
    from controller.cli import render
    from controller.cli.session import session

    with session(opts) as s:
        if not watch:
            raise typer.Exit(_show_status(s.raw("RolloutPlan", plan), output,
                                          lambda ns, name: s.store.get("SLOPolicy", ns, name)))
        current = s.plan(plan)
        policy = _policy_of(s, current)
        code = watch_status(s, plan, current, policy, render.console(), seconds, interval)
    raise typer.Exit(code)


def _show_status(raw: dict[str, Any], output: Document | None,
                 read_policy: PolicyReader) -> int:
    """Print a stored plan's status (the view, or with ``-o`` the status as stored); its
    exit code."""
    from controller.cli import render, summary
    from controller.cli.stored import parse_plan

    current = parse_plan(raw)
    if output is not None:
        typer.echo(_dump(raw.get("status") or {}, output), nl=False)
    else:
        render.emit(render.status_view(current, _now(), _policy_from(current, read_policy)),
                    render.console())
    return summary.exit_code(current)


def watch_status(s: Session, name: str, plan: RolloutPlan, policy: SLOPolicy | None,
                 out: Console, timeout: float, interval: float) -> int:
    """Re-render until the plan is final (its exit code) or TIMEOUT seconds pass (2)."""
    from controller.cli import render, summary
    from controller.errors import Transient

    deadline = time.monotonic() + timeout
    note = ""
    with render.live(render.status_view(plan, _now(), policy), out) as live:
        while True:
            if summary.is_final(plan):
                live.update(render.status_view(plan, _now(), policy), refresh=True)
                return summary.exit_code(plan)
            left = deadline - time.monotonic()
            if left <= 0:
                live.update(render.status_view(
                    plan, _now(), policy, note=f"timed out after {timeout:g}s"), refresh=True)
                return EXIT_ERROR
            time.sleep(min(interval, left))
            try:
                plan = s.plan(name)
                note = f"watching (updated {_now():%H:%M:%SZ}); Ctrl-C to stop"
            except Transient as exc:
                note = f"cannot read the plan ({exc.message}); retrying"
            live.update(render.status_view(plan, _now(), policy, note=note), refresh=True)


# ----------------------------------------------------------------------------- requests


def send_request(s: Session, name: str, kind: str, fields: dict[str, Any],
                 spec: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Write ``spec.requests.<kind>`` (and SPEC) with a fresh id; the id and the patched plan.

    Every field of the request is written, so nothing of an earlier request survives the
    merge patch.
    """
    from controller.api import plan as models
    from controller.cli.session import request_id
    from controller.errors import NotFound

    rid = request_id()
    model: type[models.Request] = models.Request
    if kind == "promote":
        model = models.PromoteRequest
    elif kind == "drill":
        model = models.DrillRequest
    try:
        request = model.model_validate({"id": rid, "by": s.user(), "at": _now(), **fields})
    except ValueError as exc:
        raise CliError(f"invalid {kind} request: {exc}") from None
    body = dict(spec or {})
    body["requests"] = {kind: request.model_dump(mode="json", by_alias=True)}
    try:
        patched = s.store.patch_spec("RolloutPlan", s.namespace, name, body)
    except NotFound:
        raise CliError(s._not_found("RolloutPlan", name)) from None
    return rid, patched


def wait_handled(s: Session, name: str, kind: str, rid: str, timeout: float,
                 seq: int, interval: float = 0.5) -> int:
    """Follow the plan until ``status.handled.<kind> == rid``; print what the controller
    decided. 0 acted on, 1 handled but refused or ignored, 2 timed out."""
    from controller.api.decisions import DecisionType
    from controller.cli import render

    deadline = time.monotonic() + timeout
    while True:
        plan = s.plan(name)
        if getattr(plan.status.handled, kind) == rid:
            break
        if time.monotonic() > deadline:
            st = plan.status
            raise CliError(f"the controller has not handled {kind} request {rid} after "
                           f"{timeout:g}s (the plan is {st.phase.value}: {st.reason or '-'}"
                           + (f", {st.message}" if st.message else "") + "); "
                           + _why_pending(kind) + "; is the controller running? "
                           "(`rolloutctl doctor`)")
        time.sleep(interval)
    new = [d for d in plan.status.decisions if d.seq > seq]
    typer.echo(f"handled: {kind} request {rid}; phase {plan.status.phase.value}, step "
               f"{_step(plan)}, canary weight {plan.status.canary_weight}%")
    if new:
        render.emit(render.decisions_table(new))
    refusals = (DecisionType.REQUEST_IGNORED, DecisionType.PROMOTE_REFUSED)
    refused = [d for d in new if d.type in refusals]
    return EXIT_BAD if refused else EXIT_OK


def _why_pending(kind: str) -> str:
    return {
        "promote": "a promotion is acted on once every gate passes",
        "resume": "a resume is acted on at the run's next pass",
        "abort": "an abort is acted on during a run",
        "retry": "a retry is acted on once no run is in progress",
    }.get(kind, "it is acted on at the next pass")


def wait_observed(s: Session, name: str, generation: int, timeout: float,
                  interval: float = 0.5) -> int:
    deadline = time.monotonic() + timeout
    while True:
        plan = s.plan(name)
        if plan.status.observed_generation >= generation:
            typer.echo(f"observed: phase {plan.status.phase.value} ({plan.status.reason})")
            return EXIT_OK
        if time.monotonic() > deadline:
            raise CliError(f"the controller has not observed generation {generation} after "
                           f"{timeout:g}s: is it running? (`rolloutctl doctor`)")
        time.sleep(interval)


def _step(plan: RolloutPlan) -> str:
    from controller.cli import summary

    return summary.step_text(plan)


def _requested(s: Session, name: str, what: str, rid: str | None) -> None:
    ident = f" (request {rid} by {s.user()})" if rid else f" (by {s.user()})"
    typer.echo(f"{what} requested for {s.namespace}/{name}{ident}")
    typer.echo(f"follow it: rolloutctl status {name} -n {s.namespace} --watch")


def _request_command(name: str, kind: str, what: str, fields: dict[str, Any],
                     opts: ClusterOptions, wait: bool, timeout: str,
                     spec: dict[str, Any] | None = None) -> None:
    from controller.cli.session import session

    with reported():
        seconds = parse_timeout(timeout)
    with session(opts) as s:
        rid, patched = send_request(s, name, kind, fields, spec)
        _requested(s, name, what, rid)
        if not wait:
            return
        seq = int((patched.get("status") or {}).get("seq") or 0)
        code = wait_handled(s, name, kind, rid, seconds, seq)
    raise typer.Exit(code)


def promote(
    plan: Annotated[str, typer.Argument(help="The RolloutPlan")],
    full: Annotated[bool, typer.Option(
        "--full", help="Skip the remaining steps (refused while a gate fails).")] = False,
    reason: Reason = "",
    wait: Wait = False, timeout: Timeout = "2m",
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """Move to the next step now (every gate must pass), or with --full to the end.

    With --wait: exit 0 when promoted, 1 when the controller refused or ignored it.
    """
    _request_command(plan, "promote", "full promotion" if full else "promotion",
                     {"reason": reason, "full": full},
                     ClusterOptions(kubeconfig, context, namespace), wait, timeout)


def abort(
    plan: Annotated[str, typer.Argument(help="The RolloutPlan")],
    reason: Reason = "",
    wait: Wait = False, timeout: Timeout = "2m",
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """Roll the current run back now (all traffic to stable, canary scaled to 0)."""
    _request_command(plan, "abort", "abort", {"reason": reason},
                     ClusterOptions(kubeconfig, context, namespace), wait, timeout)


def retry(
    plan: Annotated[str, typer.Argument(help="The RolloutPlan")],
    reason: Reason = "",
    wait: Wait = False, timeout: Timeout = "2m",
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """Start a new run of the same canary revision after a rollback."""
    _request_command(plan, "retry", "retry", {"reason": reason},
                     ClusterOptions(kubeconfig, context, namespace), wait, timeout)


def resume(
    plan: Annotated[str, typer.Argument(help="The RolloutPlan")],
    wait: Wait = False, timeout: Timeout = "2m",
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """Clear spec.paused and end a pause the controller made itself (e.g. no data)."""
    _request_command(plan, "resume", "resume", {"reason": ""},
                     ClusterOptions(kubeconfig, context, namespace), wait, timeout,
                     spec={"paused": False})


def pause(
    plan: Annotated[str, typer.Argument(help="The RolloutPlan")],
    wait: Annotated[bool, typer.Option(
        "--wait", help="Follow the plan until the controller has seen the change.")] = False,
    timeout: Timeout = "2m",
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """Set spec.paused: the run stays at its step (gates are still measured, a failing
    canary is still rolled back) until `rolloutctl resume`."""
    from controller.cli.session import session
    from controller.errors import NotFound

    with reported():
        seconds = parse_timeout(timeout)
    with session(ClusterOptions(kubeconfig, context, namespace)) as s:
        try:
            patched = s.store.patch_spec("RolloutPlan", s.namespace, plan, {"paused": True})
        except NotFound:
            raise CliError(s._not_found("RolloutPlan", plan)) from None
        _requested(s, plan, "pause", None)
        if not wait:
            return
        code = wait_observed(s, plan, int(patched["metadata"].get("generation") or 0), seconds)
    raise typer.Exit(code)
