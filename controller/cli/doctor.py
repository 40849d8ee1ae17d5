"""``rolloutctl doctor``: is everything rolloutctl needs in place? One line per check.

Checks: the API server answers; the CRDs are installed and match this rolloutctl's models;
the controller holds its leader Lease and renews it; each SLOPolicy's Prometheus is ready;
each SLO query returns data; each Slack bot token passes ``auth.test``; the RBAC of the
user running the CLI and of the controller's ServiceAccount covers what they do.

Exit code: 0 healthy (all OK), 1 degraded (a WARN), 2 unhealthy (a FAIL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from controller.cli.errors import ExitCode
from controller.cli.options import ClusterOptions, Context, Kubeconfig, Namespace
from controller.constants import LEASE_NAME, LEASE_NAMESPACE, SERVICE_ACCOUNT

if TYPE_CHECKING:
    from controller.adapters.kube.objects import Access
    from controller.api.plan import RolloutPlan
    from controller.api.policy import SLOPolicy
    from controller.cli.session import Session

OK, WARN, FAIL = "OK", "WARN", "FAIL"
LEASE_SKEW_SECONDS = 5.0
SLO_CHECK_WINDOW = 300.0
HTTP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Check:
    level: str
    name: str
    message: str


def _now() -> datetime:
    return datetime.now(UTC)


def exit_code(checks: list[Check]) -> ExitCode:
    levels = {c.level for c in checks}
    return ExitCode.ERROR if FAIL in levels else ExitCode.BAD if WARN in levels else ExitCode.OK


# ----------------------------------------------------------------------------- checks


def check_api(s: Session) -> Check:
    user = s.user()
    return Check(OK, "api server", f"{s.server} answers; you are {user}")


def check_crds(s: Session) -> list[Check]:
    from controller.adapters.kube.objects import read_crd
    from controller.api.crd import all_crds

    fix = "install or update them: rolloutctl crds | kubectl apply -f -"
    out = []
    for wanted in all_crds().values():
        name = wanted["metadata"]["name"]
        served = read_crd(s.api, name)
        if served is None:
            out.append(Check(FAIL, "crds", f"{name} is not installed; {fix}"))
            continue
        established = any(c.get("type") == "Established" and c.get("status") == "True"
                          for c in (served.get("status") or {}).get("conditions") or [])
        if not established:
            out.append(Check(FAIL, "crds", f"{name} is not Established yet; "
                             "kubectl describe crd " + name))
            continue
        diff = _schema_differences(wanted, served)
        if diff:
            out.append(Check(WARN, "crds", f"{name} differs from this rolloutctl's models "
                             f"({'; '.join(diff)}); {fix}"))
        else:
            out.append(Check(OK, "crds", f"{name} installed and current"))
    return out


def _schema_differences(wanted: dict[str, Any], served: dict[str, Any]) -> list[str]:
    def versions(crd: dict[str, Any]) -> dict[str, Any]:
        return {v["name"]: v for v in crd.get("spec", {}).get("versions", [])}

    mine, theirs = versions(wanted), versions(served)
    out = []
    for name, version in mine.items():
        other = theirs.get(name)
        if other is None:
            out.append(f"version {name} is not served")
            continue
        if version.get("schema") != other.get("schema"):
            out.append(f"the {name} schema is different")
        if version.get("subresources") != other.get("subresources"):
            out.append(f"the {name} subresources are different")
    return out


def check_controller(s: Session, namespace: str, name: str, now: datetime) -> Check:
    from controller.adapters.kube.objects import read_lease
    from controller.cli.summary import duration

    where = f"Lease {namespace}/{name}"
    lease = read_lease(s.api, namespace, name)
    if lease is None:
        return Check(FAIL, "controller", f"no {where}: the controller has never led; install "
                     "it (helm/, manifests/) or run `rolloutctl run`, or pass "
                     "--controller-namespace/--lease")
    if not lease.holder:
        return Check(FAIL, "controller", f"{where} is released (no holder): the controller "
                     "stopped; check its pods and logs")
    if lease.renew_time is None:
        return Check(FAIL, "controller", f"{where} held by {lease.holder} was never renewed")
    age = (now - lease.renew_time).total_seconds()
    if age > lease.duration_seconds + LEASE_SKEW_SECONDS:
        return Check(FAIL, "controller", f"{where} held by {lease.holder} expired: last "
                     f"renewed {duration(age)} ago (lease {lease.duration_seconds}s); the "
                     "controller is not running or cannot reach the API server: check its "
                     "pods and logs")
    return Check(OK, "controller", f"{lease.holder} leads ({where} renewed "
                 f"{duration(max(0.0, age))} ago)")


def prometheus_ready(url: str, timeout: float = HTTP_TIMEOUT) -> str | None:
    """None when ``GET /-/ready`` answers 200, else why not."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/-/ready", timeout=timeout) as r:
            status = int(r.status)
    except urllib.error.HTTPError as exc:
        return f"answered {exc.code} to /-/ready"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable ({type(reason).__name__ if not isinstance(reason, str) else reason})"
    return None if status == 200 else f"answered {status} to /-/ready"


def _prometheus_targets(policies: list[SLOPolicy], override: str | None
                        ) -> list[tuple[SLOPolicy, str, float]]:
    out = []
    for p in policies:
        if override:
            out.append((p, override, 10.0))
        elif p.spec.prometheus is not None:
            out.append((p, p.spec.prometheus.url, p.spec.prometheus.timeout.seconds))
    return out


def check_prometheus(policies: list[SLOPolicy], override: str | None,
                     now: datetime) -> list[Check]:
    from controller.adapters.metrics.prometheus import PrometheusSource
    from controller.adapters.metrics.redact import safe_url
    from controller.api.policy import SLIKind
    from controller.engine.measurements import MeasurementStatus, Track
    from controller.ports import QueryContext

    if not policies:
        return [Check(WARN, "prometheus", "no SLOPolicy in scope: nothing to check (-n/-A)")]
    out: list[Check] = []
    targets = _prometheus_targets(policies, override)
    for p in policies:
        if not any(t[0] is p for t in targets):
            out += measured_by_the_controller(p, now)
    ready: dict[str, str | None] = {}
    for policy, url, timeout in targets:
        where = safe_url(url)
        if url not in ready:
            ready[url] = prometheus_ready(url, min(timeout, HTTP_TIMEOUT))
            problem = ready[url]
            out.append(Check(FAIL, "prometheus", f"{where} {problem}; check the URL and that "
                             "Prometheus runs") if problem else
                       Check(OK, "prometheus", f"{where} is ready"))
        if ready[url] is not None:
            continue
        services = ([s.service for s in policy.status.services or []]
                    if policy.spec.service is None and policy.status.services is not None
                    else [policy.spec.service_for(policy.metadata.name)])
        with PrometheusSource(url, timeout_seconds=timeout, trusted=True) as source:
            for service, slo in ((v, o) for v in services for o in policy.spec.slos):
                ctx = QueryContext(service=service, namespace=policy.metadata.namespace,
                                   revision="none", at=now)
                name = f"slo {policy.metadata.name}/{slo.name}" + (
                    f" ({service})" if len(services) > 1 else "")
                if slo.sli.kind == SLIKind.PROBE:
                    out.append(Check(OK, name, "HTTP probe: measured by the controller, not "
                                     "Prometheus"))
                    continue
                m = source.measure(slo, Track.STABLE, SLO_CHECK_WINDOW, ctx)
                if m.ok:
                    samples = f", {m.samples:g} events" if m.samples is not None else ""
                    out.append(Check(OK, name, f"returns data for track=stable over 5m "
                                     f"(value {m.value:.6g}{samples})"))
                elif m.status in (MeasurementStatus.NO_DATA, MeasurementStatus.STALE):
                    out.append(Check(WARN, name, f"{m.status.value.replace('_', ' ')} for "
                                     f"track=stable over 5m ({m.message}); check the metric "
                                     "names and labels (service, track) of the query"))
                else:
                    out.append(Check(FAIL, name, f"{m.status.value}: {m.message}; fix the "
                                     "query in the SLOPolicy"))
    return out


def measured_by_the_controller(policy: SLOPolicy, now: datetime) -> list[Check]:
    """A policy without spec.prometheus is measured through the controller's
    --prometheus-url, which may not be reachable from here (an in-cluster address): judge
    it by what the controller recorded — a recent evaluation with every SLO measured."""
    from controller.api.conditions import ConditionType
    from controller.cli.summary import duration

    st = policy.status
    name = f"prometheus ({policy.metadata.name})"
    how = "spec.prometheus unset: measured through the controller's --prometheus-url"
    if st.evaluated_at is None:
        return [Check(FAIL, name, f"{how}, but the controller has not evaluated it yet; check "
                      "that the controller runs with --prometheus-url (chart value "
                      "prometheusUrl), or set spec.prometheus.url")]
    age = (now - st.evaluated_at).total_seconds()
    limit = 3 * policy.spec.evaluation_interval.seconds + LEASE_SKEW_SECONDS
    if age > limit:
        return [Check(WARN, name, f"{how}; last evaluated {duration(age)} ago (every "
                      f"{policy.spec.evaluation_interval}): is the controller running?")]
    ready = next((c for c in st.conditions if c.type == ConditionType.READY), None)
    if ready is not None and ready.status.value != "True":
        return [Check(WARN, name, f"{how}; evaluated {duration(max(0.0, age))} ago: "
                      f"{ready.message}; check the metric names and labels (service, track) "
                      "of those queries")]
    guarded = ", ".join(v.service for v in st.services or []) or "no service yet"
    return [Check(OK, name, f"{how}; evaluated {duration(max(0.0, age))} ago, every SLO "
                  f"measured (services: {guarded})")]


def check_slack(s: Session, plans: list[RolloutPlan], policies: list[SLOPolicy],
                base_url: str | None) -> list[Check]:
    from controller.adapters.notify.errors import DeliveryError, SecretUnavailable
    from controller.adapters.notify.slack import DEFAULT_BASE_URL, SlackBot
    from controller.adapters.notify.store import KubeNotificationStore
    from controller.api.notifications import Notifications, SecretKeyRef

    refs: dict[tuple[str, str, str], list[str]] = {}
    users: list[tuple[str, str, str, Notifications | None]] = [
        (p.kind, p.metadata.namespace, p.metadata.name, p.spec.notifications)
        for p in plans]
    users += [(p.kind, p.metadata.namespace, p.metadata.name, p.spec.notifications)
              for p in policies]
    for kind, namespace, name, notifications in users:
        slack = notifications.slack if notifications else None
        if slack is None or slack.token_secret_ref is None:
            continue
        ref = slack.token_secret_ref
        refs.setdefault((namespace, ref.name, ref.key), []).append(f"{kind} {name}")
    if not refs:
        return [Check(OK, "slack", "no plan or policy in scope uses a Slack bot token")]
    store = KubeNotificationStore(s.api)
    out = []
    for (namespace, secret, key), used_by in sorted(refs.items()):
        where = f"Secret {namespace}/{secret} key {key} (used by {', '.join(used_by)})"
        try:
            token = store.read_secret(namespace, SecretKeyRef(name=secret, key=key))
        except SecretUnavailable as exc:
            out.append(Check(FAIL, "slack", f"{exc}; create the Secret with the bot token "
                             "(kubectl create secret generic ...)"))
            continue
        try:
            SlackBot(token, base_url=base_url or DEFAULT_BASE_URL, timeout=10).check()
        except DeliveryError as exc:
            out.append(Check(FAIL, "slack", f"auth.test with {where} failed: {exc.reason} "
                             f"({exc.message}); put a valid bot token (xoxb-) in the Secret"))
            continue
        out.append(Check(OK, "slack", f"auth.test passes with {where}"))
    return out


def cli_needs(namespace: str) -> list[tuple[Access, bool]]:
    """What the CLI does in NAMESPACE, and whether it is essential (else a warning)."""
    from controller.adapters.kube.objects import Access
    from controller.api.types import GROUP

    return [
        (Access("get", "rolloutplans", GROUP, namespace), True),
        (Access("list", "rolloutplans", GROUP, namespace), True),
        (Access("patch", "rolloutplans", GROUP, namespace), True),
        (Access("get", "slopolicies", GROUP, namespace), True),
        (Access("list", "slopolicies", GROUP, namespace), True),
        (Access("patch", "slopolicies", GROUP, namespace), False),
    ]


def controller_needs(namespace: str, lease_namespace: str, lease_name: str,
                     plans: list[RolloutPlan], policies: list[SLOPolicy]) -> list[Access]:
    """What the controller does for the plans and policies in NAMESPACE (``controller.rbac``,
    as the Helm chart grants it): its ServiceAccount's RBAC must allow all of it."""
    from controller import rbac
    from controller.adapters.kube.objects import Access

    routers = {k for p in plans for k in p.spec.traffic.routers()}
    needs = [Access(v, r.plural, r.group, namespace, r.subresource)
             for r in rbac.namespaced(routers) for v in r.verbs]
    needs += [Access(v, rbac.SECRETS.plural, rbac.SECRETS.group, namespace, name=secret)
              for secret in sorted(_secret_names(plans, policies)) for v in rbac.SECRETS.verbs]
    needs += [Access(v, rbac.LEASE_CREATE.plural, rbac.LEASE_CREATE.group, lease_namespace)
              for v in rbac.LEASE_CREATE.verbs]
    needs += [Access(v, rbac.LEASE_BY_NAME.plural, rbac.LEASE_BY_NAME.group, lease_namespace,
                     name=lease_name) for v in rbac.LEASE_BY_NAME.verbs]
    return needs


def _secret_names(plans: list[RolloutPlan], policies: list[SLOPolicy]) -> set[str]:
    """The Secrets the notifications of PLANS and POLICIES name."""
    out: set[str] = set()
    for n in [p.spec.notifications for p in plans] + [p.spec.notifications for p in policies]:
        if n is None:
            continue
        if n.slack is not None:
            for ref in (n.slack.token_secret_ref, n.slack.webhook_secret_ref):
                if ref is not None:
                    out.add(ref.name)
        if n.email is not None and n.email.smtp.password_secret_ref is not None:
            out.add(n.email.smtp.password_secret_ref.name)
        if n.incident is not None:
            out.add(n.incident.routing_key_secret_ref.name)
    return out


def grouped(accesses: list[Access]) -> str:
    """``get/list/watch rolloutplans.rolloutctl.dev; patch deployments/scale.apps in shop``."""
    verbs: dict[tuple[str, str | None, str, str | None, str | None], list[str]] = {}
    for a in accesses:
        key = (a.resource, a.subresource, a.group, a.name, a.namespace)
        verbs.setdefault(key, []).append(a.verb)
    parts = []
    for (resource, sub, group, name, namespace), vs in verbs.items():
        what = resource + (f"/{sub}" if sub else "") + (f".{group}" if group else "")
        what += f" {name}" if name else ""
        parts.append(f"{'/'.join(vs)} {what}" + (f" in {namespace}" if namespace else ""))
    return "; ".join(parts)


def check_rbac(s: Session, controller_user: str, lease_namespace: str, lease_name: str,
               plans: list[RolloutPlan], policies: list[SLOPolicy]) -> list[Check]:
    from controller.adapters.kube.objects import can_i, can_user
    from controller.errors import Permanent

    out = []
    ns = s.namespace
    missing = [(a, essential) for a, essential in cli_needs(ns) if not can_i(s.api, a)]
    if not missing:
        out.append(Check(OK, "rbac (you)", f"{s.user()} may do what rolloutctl does in {ns}"))
    else:
        level = FAIL if any(essential for _, essential in missing) else WARN
        out.append(Check(level, "rbac (you)", f"{s.user()} may not "
                         + grouped([a for a, _ in missing])
                         + "; ask a cluster admin for a Role granting it"))
    namespace_of = controller_user.split(":")[2] if controller_user.startswith(
        "system:serviceaccount:") else None
    groups = ["system:authenticated"] + (
        ["system:serviceaccounts", f"system:serviceaccounts:{namespace_of}"]
        if namespace_of else [])
    try:
        denied = [a for a in controller_needs(ns, lease_namespace, lease_name, plans, policies)
                  if not can_user(s.api, controller_user, groups, a)]
    except Permanent:
        out.append(Check(WARN, "rbac (controller)", f"cannot check {controller_user}'s "
                         "permissions: you may not create subjectaccessreviews"))
        return out
    if denied:
        out.append(Check(FAIL, "rbac (controller)", f"{controller_user} may not "
                         + grouped(denied)
                         + "; install the chart's roles and bindings (helm/rolloutctl: "
                         "watchNamespaces, notifications.secretNames, leaderElection.leaseName)"))
    else:
        out.append(Check(OK, "rbac (controller)",
                         f"{controller_user} may do what the controller does in {ns}"))
    return out


# ----------------------------------------------------------------------------- command


def run_checks(s: Session, *, lease_namespace: str, lease_name: str,
               prometheus_url: str | None, slack_base_url: str | None,
               controller_user: str) -> Iterator[Check]:
    """Each check in turn (one that cannot run is a FAIL, and the others still run)."""
    from controller.cli.errors import describe

    yield check_api(s)
    now = _now()
    plans: list[RolloutPlan] = []
    policies: list[SLOPolicy] = []

    def guarded(name: str, fn: Callable[[], list[Check]]) -> list[Check]:
        try:
            return fn()
        except Exception as exc:
            message = describe(exc, s.server, s.user())
            if message is None:
                message = f"{type(exc).__name__}: {exc}"
            return [Check(FAIL, name, message)]

    yield from guarded("crds", lambda: check_crds(s))
    yield from guarded("controller", lambda: [
        check_controller(s, lease_namespace, lease_name, now)])

    def load() -> list[Check]:
        plans.extend(s.plans())
        policies.extend(s.policies())
        return []

    yield from guarded("objects", load)
    yield from guarded("prometheus", lambda: check_prometheus(policies, prometheus_url, now))
    yield from guarded("slack", lambda: check_slack(s, plans, policies, slack_base_url))
    yield from guarded("rbac", lambda: check_rbac(s, controller_user, lease_namespace,
                                                  lease_name, plans, policies))


def doctor(
    controller_namespace: Annotated[str, typer.Option(
        "--controller-namespace", help="Where the controller's leader Lease lives.")
    ] = LEASE_NAMESPACE,
    lease: Annotated[str, typer.Option(
        "--lease", help="The controller's leader Lease.")] = LEASE_NAME,
    controller_user: Annotated[str | None, typer.Option(
        "--controller-user", help="The controller's identity for the RBAC check (default: "
        "its ServiceAccount rolloutctl in --controller-namespace).")] = None,
    prometheus_url: Annotated[str | None, typer.Option(
        "--prometheus-url", help="Check this Prometheus instead of each policy's URL.")
    ] = None,
    slack_base_url: Annotated[str | None, typer.Option(
        "--slack-base-url", envvar="ROLLOUTCTL_SLACK_BASE_URL",
        help="The Slack Web API base URL (default Slack's).")] = None,
    kubeconfig: Kubeconfig = None, context: Context = None, namespace: Namespace = None,
) -> None:
    """Check that everything rolloutctl needs is in place; one line per check.

    Exit code: 0 healthy, 1 degraded (warnings), 2 unhealthy (failures).
    """
    from controller.cli import render
    from controller.cli.session import session

    user = controller_user or f"system:serviceaccount:{controller_namespace}:{SERVICE_ACCOUNT}"
    out = render.console()
    checks: list[Check] = []
    with session(ClusterOptions(kubeconfig, context, namespace)) as s:
        for check in run_checks(s, lease_namespace=controller_namespace, lease_name=lease,
                                prometheus_url=prometheus_url, slack_base_url=slack_base_url,
                                controller_user=user):
            checks.append(check)
            out.print(render.check_line(check.level, check.name, check.message), soft_wrap=True)
    code = exit_code(checks)
    verdict = {ExitCode.OK: "healthy", ExitCode.BAD: "degraded", ExitCode.ERROR: "unhealthy"}[code]
    out.print(f"{verdict}: {sum(c.level == OK for c in checks)} ok, "
              f"{sum(c.level == WARN for c in checks)} warning(s), "
              f"{sum(c.level == FAIL for c in checks)} failure(s)")
    raise typer.Exit(code)
