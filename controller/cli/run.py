"""``rolloutctl run``: the controller process (what the Deployment in the Helm chart runs)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from controller.clock import SystemClock

log = logging.getLogger("rolloutctl")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(fmt: str, level: str) -> None:
    from controller.adapters.notify.redact import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # secrets never reach the log, whoever logs them
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "kubernetes", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)



def run(
    kubeconfig: Annotated[str | None, typer.Option(
        envvar="KUBECONFIG", help="Kubeconfig file (default: in-cluster config)")] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context")] = None,
    namespace: Annotated[list[str] | None, typer.Option(
        "--namespace", "-n", envvar="ROLLOUTCTL_NAMESPACES",
        help="Namespace to watch (repeat for several; default: all)")] = None,
    workers: Annotated[int, typer.Option(
        envvar="ROLLOUTCTL_WORKERS", min=1, help="Reconcile workers for plans")] = 4,
    leader_elect: Annotated[bool, typer.Option(
        envvar="ROLLOUTCTL_LEADER_ELECT", help="Elect a leader on a Lease (for replicas > 1)")
    ] = True,
    lease_namespace: Annotated[str, typer.Option(
        envvar="POD_NAMESPACE", help="Namespace of the leader Lease")] = "rolloutctl-system",
    lease_name: Annotated[str, typer.Option(
        envvar="ROLLOUTCTL_LEASE_NAME", help="Name of the leader Lease")
    ] = "rolloutctl-controller",
    identity: Annotated[str | None, typer.Option(
        envvar="POD_NAME", help="This replica's name in the Lease (default: host-pid)")] = None,
    prometheus_url: Annotated[str | None, typer.Option(
        envvar="ROLLOUTCTL_PROMETHEUS_URL",
        help="Prometheus for SLOPolicies without spec.prometheus")] = None,
    metrics_address: Annotated[str, typer.Option(
        envvar="ROLLOUTCTL_METRICS_ADDRESS",
        help="host:port of /metrics, /healthz and /readyz")] = "127.0.0.1:8080",
    log_format: Annotated[str, typer.Option(
        envvar="ROLLOUTCTL_LOG_FORMAT", help="json or text")] = "json",
    log_level: Annotated[str, typer.Option(envvar="ROLLOUTCTL_LOG_LEVEL")] = "info",
    max_concurrent_rollouts: Annotated[int | None, typer.Option(
        envvar="ROLLOUTCTL_MAX_CONCURRENT_ROLLOUTS", min=1,
        help="Runs beyond this wait in Pending (default: no limit)")] = None,
    cluster_name: Annotated[str, typer.Option(
        envvar="ROLLOUTCTL_CLUSTER_NAME", help="Shown in Slack messages")] = "",
    slack_base_url: Annotated[str | None, typer.Option(
        envvar="ROLLOUTCTL_SLACK_BASE_URL", help="Slack Web API base URL (for a stand-in)")
    ] = None,
    resync: Annotated[float, typer.Option(
        envvar="ROLLOUTCTL_RESYNC_SECONDS", help="Seconds between full resyncs")] = 600.0,
    egress_allow: Annotated[str, typer.Option(
        envvar="ROLLOUTCTL_EGRESS_ALLOW",
        help="Hosts and CIDRs tenant URLs may reach, comma-separated (default: any address "
        "but loopback, link-local and the API server's; '*' adds those to a list)")] = "",
    max_concurrent_rollouts_per_namespace: Annotated[int | None, typer.Option(
        envvar="ROLLOUTCTL_MAX_CONCURRENT_ROLLOUTS_PER_NAMESPACE", min=1,
        help="Runs of one namespace beyond this wait in Pending (default: no limit)")] = None,
    max_workers_per_namespace: Annotated[int | None, typer.Option(
        envvar="ROLLOUTCTL_MAX_WORKERS_PER_NAMESPACE", min=1,
        help="Workers one namespace's plans or policies may hold at once "
        "(default: all workers but one)")] = None,
    max_probes_per_namespace: Annotated[int, typer.Option(
        envvar="ROLLOUTCTL_MAX_PROBES_PER_NAMESPACE", min=1,
        help="Probers one namespace may run at once")] = 20,
    http_max_connections: Annotated[int, typer.Option(
        envvar="ROLLOUTCTL_HTTP_MAX_CONNECTIONS", min=1,
        help="Connections the metrics/health server serves at once")] = 64,
    fast_interval: Annotated[float | None, typer.Option(
        envvar="ROLLOUTCTL_FAST_INTERVAL", min=0,
        help="Seconds between fast-path checks of every plan at a step (fast burn and "
        "errorRatioCeiling, one query per SLO template); default: the scrape interval the "
        "Prometheus servers in use report for their targets (/api/v1/targets), clamped to "
        "1-10 s, 10 s until known; 0 turns the fast path off")] = None,
) -> None:
    """Run the controller: watch RolloutPlans and SLOPolicies and drive them."""
    if log_format not in ("json", "text"):
        raise typer.BadParameter("must be json or text", param_hint="--log-format")
    configure_logging(log_format, log_level)
    from controller.adapters import egress

    try:
        egress.EgressPolicy.parse(egress_allow)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--egress-allow") from None
    os.environ[egress.ALLOW_ENV] = egress_allow  # read by every outbound call
    from prometheus_client import CollectorRegistry

    from controller.adapters.kube.client import ClusterConfig, NoCluster, api_client
    from controller.adapters.kube.events import EventRecorder
    from controller.adapters.kube.objects import ObjectStore
    from controller.adapters.kube.workloads import Workloads
    from controller.adapters.metrics.analysis import measure_gates, probe_specs
    from controller.adapters.metrics.fastpath import (
        DEFAULT_FAST_INTERVAL,
        FastTarget,
        ScrapeIntervals,
        measure_fast,
    )
    from controller.adapters.metrics.probe import ProbeRegistry
    from controller.adapters.metrics.prometheus import PrometheusSource
    from controller.adapters.notify import (
        Dispatcher,
        DispatcherConfig,
        KubeNotificationStore,
        NotifyMetrics,
    )
    from controller.adapters.traffic.registry import router_for
    from controller.api.policy import SLOPolicy
    from controller.reconciler import PlanReconciler, PolicyReconciler, Slots, policy_view
    from controller.runtime.fastpath import FastBoard, FastLoop
    from controller.runtime.manager import Manager, default_identity, is_platform_policy
    from controller.telemetry import Telemetry

    try:
        api = api_client(ClusterConfig(kubeconfig, context))
    except NoCluster as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    egress.set_api_server(api.configuration.host)
    me = identity or default_identity()
    registry = CollectorRegistry()
    per_namespace = max_workers_per_namespace or (max(1, workers - 1) if workers > 1 else None)
    manager = Manager(
        api, registry, namespaces=list(namespace) if namespace else None, identity=me,
        leader_election=leader_elect, workers=workers, resync_seconds=resync,
        lease_namespace=lease_namespace, lease_name=lease_name, bind=metrics_address,
        max_workers_per_namespace=per_namespace, http_max_connections=http_max_connections,
    )
    clock = SystemClock()
    telemetry = Telemetry(registry)
    store = ObjectStore(api)
    policies = manager.cache("slopolicies")
    plans = manager.cache("rolloutplans")
    # Deployments are read fresh on every pass: a decision must never rest on a cached copy
    # that predates the controller's own last write (the cache still triggers the passes).
    workloads = Workloads(api)
    events = EventRecorder(api, instance=me)

    sources: dict[tuple[str, float, bool], PrometheusSource] = {}
    sources_lock = threading.Lock()

    def source_for(policy: SLOPolicy | None) -> PrometheusSource:
        ref = policy.spec.prometheus if policy is not None else None
        url = ref.url if ref is not None else prometheus_url
        if url is None:  # measurements come back as errors: the plan holds and says why
            url = "http://prometheus-not-configured.invalid"
        timeout = ref.timeout.seconds if ref is not None else 10.0
        trusted = ref is None  # the platform's --prometheus-url: not a tenant's choice
        with sources_lock:
            key = (url, timeout, trusted)
            if key not in sources:
                sources[key] = PrometheusSource(url, timeout_seconds=timeout, registry=registry,
                                                trusted=trusted)
            return sources[key]

    probes = ProbeRegistry(max_per_namespace=max_probes_per_namespace)
    # the fast interval: explicit, or learned from Prometheus (10 s until then); the recent
    # window is three fast intervals (30 s at 10 s), at least 10 s, and follows it
    fast_now = [fast_interval if fast_interval is not None else DEFAULT_FAST_INTERVAL]

    def recent_seconds() -> float:
        return max(10.0, 3 * (fast_now[0] or DEFAULT_FAST_INTERVAL))

    board = FastBoard() if fast_now[0] > 0 else None
    config = DispatcherConfig(cluster_name=cluster_name, identity=me)
    if slack_base_url:
        config = dataclasses.replace(config, slack_base_url=slack_base_url)
    dispatcher = Dispatcher(KubeNotificationStore(api, reporting_instance=me), config,
                            metrics=NotifyMetrics(registry)).start()

    def seed_slots() -> list[str]:
        """Plans in a run, from the cache's raw status (also read every 5 s by the probe
        reaper: no status model is built per plan)."""
        from controller.api.plan import is_in_run

        active = []
        for obj in plans.objects():
            status = obj.get("status") or {}
            if is_in_run(status.get("phase"), status.get("currentStep")):
                meta = obj["metadata"]
                active.append(f"{meta['namespace']}/{meta['name']}")
        return active

    slots = Slots(max_concurrent_rollouts, seed=seed_slots,
                  per_namespace=max_concurrent_rollouts_per_namespace)
    plan_reconciler = PlanReconciler(
        store=store, workloads=workloads,
        router_for=lambda plan: router_for(plan, api),
        measure_gates=lambda plan, policy, ctx, window, run_s: measure_gates(
            source_for(policy), plan, policy, ctx, window, run_s,
            probes.for_owner(plan.key, probe_specs(plan, policy, ctx)), recent_seconds()),
        policy_lookup=lambda ns, name: policies.get(f"{ns}/{name}"),
        clock=clock, telemetry=telemetry, events=events, submit=dispatcher.submit,
        slots=slots, leading=manager.leading, fast_board=board,
        fast_max_age=recent_seconds(),
        platform_policies=lambda ns: [
            p for p in policies.objects()
            if p["metadata"].get("namespace") == ns and is_platform_policy(p)],
    )
    policy_reconciler = PolicyReconciler(
        store=store, metrics_for=source_for, clock=clock, telemetry=telemetry,
        events=events, submit=dispatcher.submit, leading=manager.leading,
        plans_in=lambda ns: [p for p in plans.objects() if p["metadata"].get("namespace") == ns],
    )
    plans_queue = manager.add_plans_controller(
        plan_reconciler, workers, is_own_write=store.is_own_write, policy_view=policy_view)
    fast_loop = None
    if board is not None:
        in_use: dict[str, PrometheusSource] = {}  # the sources the last round queried

        def measure_fast_targets(targets: list[FastTarget], at: datetime
                                 ) -> dict[str, Any]:
            out: dict[str, Any] = {}
            by_source: dict[int, tuple[PrometheusSource, list[FastTarget]]] = {}
            for t in targets:
                src = source_for(t.policy)
                by_source.setdefault(id(src), (src, []))[1].append(t)
            in_use.clear()
            for src, group in by_source.values():
                in_use[src.url] = src
                out.update(measure_fast(src, group, at, recent_seconds()))
            return out

        def now_every(seconds: float) -> None:
            fast_now[0] = seconds
            plan_reconciler.fast_max_age = recent_seconds()

        fast_loop = FastLoop(
            plans=plans.objects, policy_lookup=lambda ns, name: policies.get(f"{ns}/{name}"),
            measure=measure_fast_targets, target=FastTarget, board=board,
            enqueue=plans_queue.add, clock=clock, interval=fast_now[0],
            leading=manager.leading, registry=registry,
            learn=ScrapeIntervals(lambda: list(in_use.values()), clock.monotonic),
            on_interval=now_every, fixed_interval=fast_interval is not None)
    manager.add_policies_controller(policy_reconciler, max(1, min(2, workers)))
    log.info("rolloutctl controller %s starting (pid %d, namespaces: %s, leader election: %s)",
             me, os.getpid(), ", ".join(namespace) if namespace else "all", leader_elect)
    reaping = threading.Event()

    def reap_probers() -> None:
        """Probers of plans that are gone or out of a run stop (every 5 s; each pass of a
        plan also drops the probers it no longer needs)."""
        while not reaping.wait(5.0):
            probes.reap(set(seed_slots()))

    threading.Thread(target=reap_probers, name="probe-reaper", daemon=True).start()
    if fast_loop is not None:
        fast_loop.start()
    try:
        manager.run()
    finally:
        reaping.set()
        if fast_loop is not None:
            fast_loop.stop()
        dispatcher.stop(timeout=5.0)
        probes.stop_all()
        for source in sources.values():
            source.close()
