"""``rolloutctl report``: a run report from a plan's status (see ``runreport``)."""

from __future__ import annotations

from typing import Annotated

import typer

from controller.cli.options import ClusterOptions, Context, Kubeconfig, Namespace, ReportFormat


def report(
    plan: Annotated[str, typer.Argument(help="The RolloutPlan")],
    output: Annotated[ReportFormat, typer.Option("-o", "--output", help="md or html")
                      ] = ReportFormat.MD,
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """A run report: timeline of weights and gate values, decisions with evidence, the
    error budget used and the drills. HTML has an inline SVG chart (no network needed)."""
    from datetime import UTC, datetime

    from controller.cli.plans import _policy_of
    from controller.cli.runreport import html_report, markdown
    from controller.cli.session import session

    with session(ClusterOptions(kubeconfig, context, namespace)) as s:
        current = s.plan(plan)
        policy = _policy_of(s, current)
        if policy is not None:  # the budget of the plan's own service
            policy = policy.for_service(current.spec.service_name)
        now = datetime.now(UTC)
        text = (html_report(current, policy, now) if output == ReportFormat.HTML
                else markdown(current, policy, now))
    typer.echo(text, nl=False)
