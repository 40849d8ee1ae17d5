"""``rolloutctl report``: a run report of one plan (see ``runreport``), or the SLO compliance
report of one policy or of every policy of a namespace over a period (see ``sloreport``),
printed or e-mailed through the policy's SMTP settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from controller.cli.options import ClusterOptions, Context, Kubeconfig, Namespace, ReportFormat

if TYPE_CHECKING:
    from datetime import datetime

    from controller.api.plan import RolloutPlan
    from controller.api.policy import SLOPolicy
    from controller.cli.session import Session
    from controller.cli.sloreport import PolicyReport


def report(
    plan: Annotated[str | None, typer.Argument(
        help="The RolloutPlan (a run report); omit with --policy or --all-policies")] = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", help="An SLO compliance report of this SLOPolicy")] = None,
    all_policies: Annotated[bool, typer.Option(
        "--all-policies", help="An SLO compliance report of every SLOPolicy in the namespace")
    ] = False,
    since: Annotated[str, typer.Option(
        "--since", help="The report's period, ending at --until: 7d, 30d or any duration")
    ] = "7d",
    until: Annotated[str | None, typer.Option(
        "--until", help="End of the period: unix seconds or RFC 3339 (default: now)")] = None,
    prometheus: Annotated[str | None, typer.Option(
        "--prometheus", help="Prometheus URL (default: the policy's spec.prometheus.url, "
                             "else $ROLLOUTCTL_PROMETHEUS_URL)")] = None,
    mail_to: Annotated[str | None, typer.Option(
        "--mail-to", metavar="ADDR,...",
        help="E-mail the report to these addresses through the policy's "
             "spec.notifications.email SMTP settings, instead of printing it")] = None,
    send: Annotated[bool, typer.Option(
        "--send", help="E-mail the report to the policy's spec.notifications.email.to")
    ] = False,
    output: Annotated[ReportFormat, typer.Option(
        "-o", "--output", help="md, html or json (json: SLO reports only)")
    ] = ReportFormat.MD,
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """A run report of PLAN (timeline, decisions with evidence, budget used, drills), or an SLO
    compliance report with --policy/--all-policies: compliance per SLO over --since, budget
    spent and left, the worst burn periods, freezes, and release figures from the plans'
    histories. HTML has inline SVG charts (no network needed). Exit 1 when Prometheus could
    not give every figure (the report is printed or sent all the same), 2 on an error."""
    from datetime import UTC, datetime

    from controller.cli.errors import CliError, reported
    from controller.cli.session import session

    wants_slo = policy is not None or all_policies
    with reported():
        if plan is not None and wants_slo:
            raise CliError("give either PLAN (a run report) or --policy/--all-policies "
                           "(an SLO report), not both")
        if plan is None and not wants_slo:
            raise CliError("name a plan (`rolloutctl report PLAN`) or a policy "
                           "(`rolloutctl report --policy POLICY --since 7d`, or --all-policies)")
        if policy is not None and all_policies:
            raise CliError("give --policy POLICY or --all-policies, not both")
        if plan is not None and (mail_to or send or output == ReportFormat.JSON):
            raise CliError("--mail-to, --send and -o json are for SLO reports "
                           "(--policy or --all-policies)")
        period, end = _period(since, until) if wants_slo else (0.0, datetime.now(UTC))
        recipients = _recipients(mail_to) if mail_to else None

    with session(ClusterOptions(kubeconfig, context, namespace)) as s:
        if plan is not None:
            from controller.cli.plans import _policy_of
            from controller.cli.runreport import html_report, markdown

            current = s.plan(plan)
            run_policy = _policy_of(s, current)
            if run_policy is not None:  # the budget of the plan's own service
                run_policy = run_policy.for_service(current.spec.service_name)
            now = datetime.now(UTC)
            text = (html_report(current, run_policy, now) if output == ReportFormat.HTML
                    else markdown(current, run_policy, now))
            typer.echo(text, nl=False)
            return
        policies = [s.policy(policy)] if policy is not None else sorted(
            (p for p in s.policies() if p.metadata.namespace == s.namespace),
            key=lambda p: p.metadata.name)
        if not policies:
            raise CliError(f"no SLOPolicy in namespace {s.namespace}; list them with "
                           f"`rolloutctl freeze status -n {s.namespace}`")
        plans = [p for p in s.plans() if p.metadata.namespace == s.namespace] \
            if s.list_namespace is not None else s.plans()
        reports = [gather(p, plans, period, end, prometheus, service)
                   for p in policies for service in services_of(p, plans)]
        if recipients is not None or send:
            typer.echo(mail(s, policies, reports, recipients, since))
        else:
            typer.echo(render(reports, output), nl=False)
    problems = [e for r in reports for e in r.errors]
    if problems:  # printed or sent all the same: freezes and releases are still right
        from controller.cli.errors import ExitCode, echo_error

        for problem in problems:
            echo_error(problem)
        raise typer.Exit(ExitCode.BAD)


def _period(since: str, until: str | None) -> tuple[float, datetime]:
    from datetime import UTC, datetime

    from controller.api.types import Duration
    from controller.cli.errors import CliError
    from controller.cli.simulate import parse_time

    try:
        seconds = Duration(since).seconds
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None
    if seconds < 60:
        raise CliError(f"--since: {since} is too short; give at least 1m (e.g. 7d or 30d)")
    if until is None:
        return float(seconds), datetime.now(UTC)
    try:
        return float(seconds), parse_time(until)
    except typer.BadParameter as exc:
        raise CliError(f"--until: {exc.message}") from None


def _recipients(text: str) -> list[str]:
    from controller.cli.errors import CliError

    out = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in out if "@" not in a or any(c in a for c in " <>\r\n")]
    if not out or bad:
        raise CliError(f"--mail-to: {', '.join(bad) or 'no address'} is not an e-mail "
                       "address; give addresses separated by commas (a@example.com,b@...)")
    return out


def render(reports: list[PolicyReport], output: ReportFormat) -> str:
    from controller.cli import sloreport

    if output == ReportFormat.JSON:
        return sloreport.as_json(reports)
    if output == ReportFormat.HTML:
        return sloreport.html_report(reports)
    return sloreport.markdown(reports)


def services_of(policy: SLOPolicy, plans: list[RolloutPlan]) -> list[str]:
    """The services POLICY guards: its spec.service, else those its status lists, else the
    services of the plans it governs (a platform policy guards each plan's own service)."""
    from controller.cli import sloreport

    if policy.spec.service is not None:
        return [policy.spec.service]
    listed = [s.service for s in policy.status.services or []]
    governed = [p.spec.service_name for p in sloreport.plans_of(policy, plans)]
    return sorted(set(listed) | set(governed)) or [policy.metadata.name]


def gather(policy: SLOPolicy, plans: list[RolloutPlan], period: float, end: datetime,
           prometheus: str | None, service: str | None = None) -> PolicyReport:
    """The report's figures for POLICY: its SLOs' counts from Prometheus over the period,
    its budget now, and its and its plans' status. A Prometheus that cannot answer is an
    error of the report (shown in it), not of the command: freezes and releases still
    come from the cluster."""
    import os
    from datetime import timedelta

    from controller.adapters.metrics.history import HistoryError, PrometheusHistory
    from controller.adapters.metrics.prometheus import PrometheusSource
    from controller.cli import sloreport
    from controller.engine.budget import budget_remaining
    from controller.ports import QueryContext

    start = end - timedelta(seconds=period)
    step = sloreport.bucket_seconds(period)
    url = prometheus or (policy.spec.prometheus.url if policy.spec.prometheus else None) \
        or os.environ.get("ROLLOUTCTL_PROMETHEUS_URL") or None
    service = service or policy.spec.service_for(policy.metadata.name)
    policy = policy.for_service(service)
    ctx = QueryContext(service=service,
                       namespace=policy.metadata.namespace, revision="none", at=end)
    errors: list[str] = []
    figures = []
    if url is None:
        errors.append(f"SLOPolicy {policy.metadata.name} has no spec.prometheus.url: "
                      "pass --prometheus URL")
    history = PrometheusHistory(url) if url else None
    source = PrometheusSource(url, timeout_seconds=30) if url else None
    try:
        for slo in policy.spec.slos:
            if slo.is_threshold or slo.objective is None or history is None or source is None:
                figures.append(sloreport.slo_figures(
                    slo.name, None, slo.window.text, [], step,
                    note="threshold SLI: no error budget" if slo.is_threshold else ""))
                continue
            try:
                if errors and "cannot reach" in errors[-1]:  # the same Prometheus: no retry
                    raise HistoryError(errors[-1])
                buckets = [sloreport.Counts(b.end, b.bad, b.total)
                           for b in history.buckets(slo, ctx, start, end, step)]
            except HistoryError as exc:
                errors.append(str(exc))
                figures.append(sloreport.slo_figures(slo.name, slo.objective, slo.window.text,
                                                     [], step, note="not measured"))
                continue
            now = source.measure_budget(slo, ctx, slo.window.seconds)
            left = None
            if now.ok and now.numerator is not None and now.denominator is not None:
                fraction = budget_remaining(now.numerator, now.denominator, slo.objective)
                left = None if fraction is None else 100 * fraction
            figures.append(sloreport.slo_figures(slo.name, slo.objective, slo.window.text,
                                                 buckets, step, budget_left_now=left))
    finally:
        if history is not None:
            history.close()
        if source is not None:
            source.close()
    return sloreport.policy_report(policy, plans, start, end, step, figures, errors, service)


def mail(s: Session, policies: list[SLOPolicy], reports: list[PolicyReport],
         recipients: list[str] | None, since: str) -> str:
    """Send the report (Markdown as text, HTML as the alternative) through the SMTP
    settings of the first policy that has ``spec.notifications.email``; returns what was
    done, for the user."""
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    from controller.adapters.notify.errors import DeliveryError, SecretUnavailable
    from controller.adapters.notify.mail import SmtpMailer
    from controller.adapters.notify.store import KubeNotificationStore
    from controller.cli import sloreport
    from controller.cli.errors import CliError

    owner = next((p for p in policies if p.spec.notifications is not None
                  and p.spec.notifications.email is not None), None)
    if owner is None or owner.spec.notifications is None \
            or owner.spec.notifications.email is None:
        raise CliError("no SMTP settings: set spec.notifications.email (smtp, from, to) on "
                       f"SLOPolicy {policies[0].metadata.name} to e-mail reports")
    settings = owner.spec.notifications.email
    to = recipients or list(settings.to)
    password = None
    ref = settings.smtp.password_secret_ref
    if ref is not None:
        try:
            password = KubeNotificationStore(s.api).read_secret(owner.metadata.namespace, ref)
        except SecretUnavailable as exc:
            raise CliError(f"the SMTP password: {exc}; spec.notifications.email.smtp."
                           "passwordSecretRef names it") from None
    names = ", ".join(f"{r.namespace}/{r.policy}" for r in reports)
    msg = EmailMessage()
    msg["Subject"] = f"[rolloutctl] SLO compliance report ({since}): {names}"[:250]
    msg["From"] = settings.from_
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(reports[0].until)
    msg["Message-ID"] = make_msgid(domain="rolloutctl.dev")
    msg.set_content(sloreport.markdown(reports))
    msg.add_alternative(sloreport.html_report(reports), subtype="html")
    try:
        SmtpMailer(timeout=30).send(settings.smtp, password, msg)
    except DeliveryError as exc:
        raise CliError(f"the report was not sent: {exc}") from None
    return (f"sent the SLO report of {names} to {len(to)} recipient(s) through "
            f"{settings.smtp.host}:{settings.smtp.port}")
