"""``rolloutctl drill``: rehearse a rollback for real, through the controller, and time it.

The CLI never acts on the route or the Deployments itself: it writes a drill request into
the plan (``spec.requests.drill`` with a fresh id) and follows ``status.drills``, where the
controller records requestedAt, rollbackStartedAt, canaryWeightZeroAt, stableReadyAt,
restoredAt and the outcome.

``--dry-run`` runs the controller's own engine (``controller.engine.decide``) on the plan
as read plus the drill request, with the workloads and the route as the adapters observe
them now, pass after pass in a simulated world where every action succeeds and pods become
ready at once, and prints the actions it takes. Nothing is written.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from controller.cli.errors import EXIT_BAD, EXIT_OK, CliError, reported
from controller.cli.options import ClusterOptions, Context, Kubeconfig, Namespace

if TYPE_CHECKING:
    from controller.api.plan import DrillRequest, RolloutPlan
    from controller.cli.session import Session
    from controller.engine.observation import Observation

MAX_SIMULATED_PASSES = 30
POLL_SECONDS = 0.2


def _now() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------------------- dry run


@dataclass(frozen=True)
class Prediction:
    actions: list[str]
    outcome: str
    finished: bool
    plan: RolloutPlan  # the plan as it would be afterwards


def with_drill(plan: RolloutPlan, request: DrillRequest) -> RolloutPlan:
    """PLAN as the controller would read it once the drill request is written."""
    requests = plan.spec.requests.model_copy(update={"drill": request})
    return plan.model_copy(update={"spec": plan.spec.model_copy(update={"requests": requests})})


def predict(obs: Observation, drill_id: str,
            max_passes: int = MAX_SIMULATED_PASSES) -> Prediction:
    """Run the real engine pass after pass on OBS (whose plan carries the drill request)
    in a world where each action succeeds at once, until the drill is done."""
    from controller.api.decisions import DecisionType
    from controller.api.plan import DrillOutcome
    from controller.engine.decide import decide, record_results
    from controller.engine.observation import ActionResult, ActionType, RouterObservation

    actions: list[str] = []
    world = obs
    generation = obs.plan.metadata.generation
    plan = obs.plan
    for _ in range(max_passes):
        decision = decide(world)
        results = [ActionResult(a, True, world.now) for a in decision.actions]
        status = record_results(decision.status, results, world.stable.ready, generation)
        plan = plan.model_copy(update={"status": status})
        weight = world.router.weight
        canary = world.canary
        for action in decision.actions:
            actions.append(str(action))
            if action.type == ActionType.SET_WEIGHT:
                weight = action.weight
            elif action.type == ActionType.SCALE_CANARY and action.replicas is not None:
                canary = replace(canary, replicas=action.replicas,
                                 ready_replicas=action.replicas,
                                 updated_replicas=action.replicas)
        report = next((d for d in status.drills if d.id == drill_id), None)
        if report is not None and report.outcome != DrillOutcome.RUNNING:
            return Prediction(actions, _outcome_text(plan, report.restore), True, plan)
        if report is None and status.handled.drill == drill_id:
            ignored = [d.message for d in status.decisions
                       if d.type == DecisionType.REQUEST_IGNORED and drill_id in d.message]
            return Prediction(actions, "the controller would ignore the drill: "
                              + (ignored[-1] if ignored else "no run to drill"), True, plan)
        world = replace(world, plan=plan, now=world.now + timedelta(seconds=1),
                        router=RouterObservation(weight=weight), canary=canary,
                        measurements=None)
    st = plan.status
    return Prediction(actions, f"the drill would still be running after {max_passes} passes: "
                      f"{st.phase.value} {st.reason}: {st.message}", False, plan)


def _outcome_text(plan: RolloutPlan, restore: bool) -> str:
    from controller.api.plan import Phase

    st = plan.status
    step = f" at step {st.current_step + 1}" if st.current_step is not None else ""
    where = f"phase {st.phase.value}{step}, canary weight {st.canary_weight}%"
    if st.phase == Phase.ROLLED_BACK:
        return f"the run would end rolled back ({where})"
    if restore:
        return f"the plan would be restored ({where})"
    return f"the plan would be left as it was ({where})"


def observe_for_dry_run(s: Session, plan: RolloutPlan, now: datetime) -> Observation:
    """What the controller would observe now, read through the adapters."""
    from controller.adapters.kube.workloads import Workloads
    from controller.adapters.traffic.registry import router_for
    from controller.cli.stored import parse_policy
    from controller.engine.freeze import freeze_input
    from controller.engine.observation import Observation, RouterObservation
    from controller.ports import RouterError

    ns = plan.metadata.namespace
    workloads = Workloads(s.api)
    stable = workloads.observe(ns, plan.spec.target.stable.name)
    canary = workloads.observe(ns, plan.spec.target.canary.name)
    try:
        router = router_for(plan, s.api).observe()
    except RouterError as exc:
        router = RouterObservation(weight=None, reason=exc.reason, message=exc.message)
    policy = None
    if plan.spec.slo_policy_ref is not None:
        raw = s.store.get("SLOPolicy", ns, plan.spec.slo_policy_ref.name)
        policy = parse_policy(raw) if raw is not None else None
    return Observation(
        plan=plan, now=now, stable=stable, canary=canary, router=router, policy=policy,
        freeze=freeze_input(policy, plan.metadata.name, now) if policy else None,
    )


# ----------------------------------------------------------------------------- command


def drill(
    plan: Annotated[str, typer.Argument(help="The RolloutPlan")],
    restore: Annotated[bool, typer.Option(
        "--restore", help="Afterwards, bring the plan back to its pre-drill step.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what the controller would do; change nothing.")] = False,
    max_duration: Annotated[str, typer.Option(
        "--max-duration", metavar="DURATION",
        help="The drill fails when it takes longer (request to stable ready, or to "
        "restored with --restore).")] = "60s",
    grace: Annotated[str, typer.Option(
        "--grace", metavar="DURATION",
        help="How long past --max-duration to wait for the controller's report.")] = "30s",
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """Rehearse a rollback through the controller, as if a gate had failed, and time it.

    Writes a drill request into the plan and follows it live: request -> rollback started
    -> canary weight 0 -> stable ready (-> restored). A plan that is not mid-run gets a
    synthetic drill (the first step's weight, then a rollback).

    Exit code: 0 the drill succeeded within --max-duration; 1 it failed, timed out (the
    controller's verdict), was ignored, or no result came within --max-duration plus
    --grace (default 30s, for the controller to notice the request); 2 an error. Timings
    mix the CLI's clock (the request) and the controller's: keep clocks in sync (NTP).
    """
    from controller.api.types import Duration
    from controller.cli.plans import parse_timeout
    from controller.cli.session import session

    with reported():
        limit = parse_timeout(max_duration, "--max-duration")
        extra = parse_timeout(grace, "--grace") if grace.strip() not in ("0", "0s") else 0.0
    with session(ClusterOptions(kubeconfig, context, namespace)) as s:
        if dry_run:
            code = _dry_run(s, plan, restore, Duration(max_duration), reason)
        else:
            code = _follow(s, plan, restore, max_duration, limit, extra, reason)
    raise typer.Exit(code)


def _dry_run(s: Session, name: str, restore: bool, max_duration: object, reason: str) -> int:
    from controller.api.plan import DrillRequest
    from controller.cli import render
    from controller.cli.session import request_id

    current = s.plan(name)
    now = _now()
    rid = request_id()
    request = DrillRequest.model_validate({"id": rid, "by": s.user(), "at": now,
                                           "reason": reason, "restore": restore,
                                           "maxDuration": max_duration})
    obs = observe_for_dry_run(s, with_drill(current, request), now)
    prediction = predict(obs, rid)
    render.emit(render.dry_run_view(current, prediction.actions, prediction.outcome))
    return EXIT_OK


def _follow(s: Session, name: str, restore: bool, max_duration: str, limit: float,
            grace: float, reason: str) -> int:
    from controller.api.decisions import DecisionType
    from controller.api.plan import DrillOutcome
    from controller.cli import render, summary
    from controller.cli.plans import send_request
    from controller.errors import Transient

    rid, patched = send_request(s, name, "drill", {"reason": reason, "restore": restore,
                                                   "maxDuration": max_duration})
    seq = int((patched.get("status") or {}).get("seq") or 0)
    started_at = _now()
    typer.echo(f"drill {rid} requested for {s.namespace}/{name} by {s.user()}"
               f"{' (restore afterwards)' if restore else ''}; following it "
               f"(up to {summary.duration(limit + grace)})")
    out = render.console()
    deadline = time.monotonic() + limit + grace
    plan = s.plan(name)
    report = None
    with render.live(render.drill_view(plan, None, rid, _now(), started_at), out,
                     transient=True) as live:
        while True:
            with contextlib.suppress(Transient):  # keep following: the deadline decides
                plan = s.plan(name)
            report = next((d for d in reversed(plan.status.drills) if d.id == rid), None)
            live.update(render.drill_view(plan, report, rid, _now(), started_at), refresh=True)
            if report is not None and report.outcome != DrillOutcome.RUNNING:
                break
            if report is None and plan.status.handled.drill == rid:
                ignored = [d.message for d in plan.status.decisions
                           if d.seq > seq and d.type == DecisionType.REQUEST_IGNORED]
                raise CliError(ignored[-1] if ignored else f"drill {rid} was not run",
                               EXIT_BAD)
            if time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
    if report is None:
        raise CliError(f"the controller did not start drill {rid} within "
                       f"{summary.duration(limit + grace)}: is it running? "
                       "(`rolloutctl doctor`)", EXIT_BAD)
    render.emit(render.drill_result(report, plan), out)
    if report.outcome == DrillOutcome.RUNNING:
        typer.echo(f"error: drill {rid} ran past --max-duration {max_duration} "
                   f"(+{summary.duration(grace)} grace)", err=True)
        return EXIT_BAD
    took = summary.drill_seconds(report)
    if report.outcome != DrillOutcome.SUCCEEDED or (took is not None and took > limit):
        return EXIT_BAD
    return EXIT_OK
