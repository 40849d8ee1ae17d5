"""``rolloutctl simulate``: backtest a plan against a Prometheus time range."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from controller.cli.errors import ExitCode


def parse_time(text: str) -> datetime:
    """Unix seconds (``1764244800``) or RFC 3339 (``2026-11-27T12:00:00Z``)."""
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither unix seconds nor RFC 3339 (e.g. 2026-11-27T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{text!r} has no time zone; add Z or +00:00")
    return parsed.astimezone(UTC)


def simulate(
    plan_file: Annotated[Path, typer.Argument(help="The RolloutPlan YAML to backtest")],
    policy_file: Annotated[Path | None, typer.Option(
        "--policy", help="The SLOPolicy YAML its gates name")] = None,
    prometheus: Annotated[str | None, typer.Option(
        "--prometheus", help="Prometheus URL (default: the policy's spec.prometheus.url)")] = None,
    start: Annotated[str, typer.Option(help="Unix seconds or RFC 3339")] = "",
    end: Annotated[str, typer.Option(help="Unix seconds or RFC 3339")] = "",
    output: Annotated[str, typer.Option("-o", "--output", help="table or json")] = "table",
    freeze: Annotated[bool, typer.Option(
        help="Replay the policy's error-budget freeze too")] = True,
    fast_interval: Annotated[float, typer.Option(
        "--fast-interval", min=0,
        help="Seconds between fast-path checks, as `rolloutctl run --fast-interval` (0: off)")
    ] = 10.0,
) -> None:
    """Replay a plan over a past time range with the controller's engine; print the decisions.

    The canary is taken to be deployed at --start; each gate is evaluated against Prometheus
    at the time the controller would have evaluated it. The JSON output (-o json) is a
    stable contract: outcome, rolledBackAt, completedAt and the events.
    """
    from controller.adapters.metrics.prometheus import PrometheusSource
    from controller.cli.documents import check_files
    from controller.simulator import simulate as run_simulation

    if output not in ("table", "json"):
        raise typer.BadParameter("must be table or json", param_hint="-o")
    if not start or not end:
        raise typer.BadParameter("--start and --end are required")
    t0, t1 = parse_time(start), parse_time(end)
    if t1 <= t0:
        raise typer.BadParameter("--end must be after --start")
    files = [plan_file] + ([policy_file] if policy_file else [])
    reports = check_files(files)
    lines = [line for r in reports for line in r.lines()]
    if lines:
        for line in lines:
            typer.echo(line, err=True)
        raise typer.Exit(ExitCode.BAD)
    plans = [p for r in reports for p in r.plans]
    policies = [p for r in reports for p in r.policies]
    if len(plans) != 1:
        typer.echo(f"{plan_file}: expected exactly one RolloutPlan, found {len(plans)}", err=True)
        raise typer.Exit(ExitCode.BAD)
    plan = plans[0]
    policy = policies[0] if policies else None
    if plan.spec.slo_policy_ref is not None and policy is None:
        typer.echo(f"{plan_file}: spec.sloPolicyRef names {plan.spec.slo_policy_ref.name!r}; "
                   "pass its SLOPolicy with --policy FILE", err=True)
        raise typer.Exit(ExitCode.BAD)
    url = prometheus or (policy.spec.prometheus.url if policy and policy.spec.prometheus
                         else None)
    if url is None:
        typer.echo("no Prometheus: pass --prometheus URL or set spec.prometheus in the policy",
                   err=True)
        raise typer.Exit(ExitCode.BAD)
    timeout = (policy.spec.prometheus.timeout.seconds
               if policy and policy.spec.prometheus else 10.0)
    # the user's own command, from their machine: no tenant egress policy applies
    with PrometheusSource(url, timeout_seconds=timeout, trusted=True) as source:
        result = run_simulation(plan, policy, source, t0, t1, freeze=freeze,
                                fast_interval=fast_interval)
    if output == "json":
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    _table(result, t0)


def _table(result: object, t0: datetime) -> None:
    from rich.console import Console
    from rich.table import Table

    from controller.simulator import SimulationResult

    assert isinstance(result, SimulationResult)
    table = Table(title=f"Simulated decisions (outcome: {result.outcome})")
    for column in ("time", "+", "event", "step", "weight", "gate", "verdict", "value",
                   "reason"):
        table.add_column(column)
    last: dict[str, tuple[str | None, str]] = {}
    for e in result.events:
        if e.type == "GateEvaluated":
            assert e.gate is not None
            key = (e.verdict, e.reason)
            if last.get(e.gate) == key:
                continue  # only show a gate when its verdict or reason changes
            last[e.gate] = key
        at = datetime.fromtimestamp(e.at, tz=UTC)
        offset = int(e.at - t0.timestamp())
        table.add_row(
            at.strftime("%Y-%m-%d %H:%M:%S"), f"{offset // 3600}h{offset % 3600 // 60:02d}m"
            f"{offset % 60:02d}s", e.type, "-" if e.step is None else str(e.step + 1),
            f"{e.weight}%", e.gate or "", e.verdict or "",
            "" if e.value is None else f"{e.value:g}", e.reason)
    console = Console()
    console.print(table)
    if result.rolled_back_at is not None:
        console.print(f"rolled back at {datetime.fromtimestamp(result.rolled_back_at, UTC)}")
    if result.completed_at is not None:
        console.print(f"completed at {datetime.fromtimestamp(result.completed_at, UTC)}")
