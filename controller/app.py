"""The composition root: the one place where the controller's parts are built and wired.

::

    app = build(Config(kubeconfig="/etc/rolloutctl/kubeconfig", namespaces=("shop",)))
    app.start()      # informers, workers, leader election, notifier, fast path, probe reaper
    ...
    app.stop()       # in-flight reconciles finish, the Lease is released, all threads end

``rolloutctl run`` parses its flags into a :class:`Config` and calls ``build(config).run()``
(start, block until SIGTERM, stop); tests that need the whole controller in-process call
:func:`build` the same way, and the harness and sandbox run ``rolloutctl run`` itself. The
defaults of :class:`Config` are those of the CLI's flags (``rolloutctl run --help``).

Nothing here decides anything: it only chooses the adapters (``controller.adapters``) for
the ports (``controller.ports``) the reconcilers are written against, like
controller-runtime's ``manager.New`` + ``SetupWithManager``. Heavy imports happen in
:func:`build`, so that importing the module (the CLI does, for its defaults) stays cheap.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from controller.constants import LEASE_NAME, LEASE_NAMESPACE, METRICS_ADDRESS

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from controller.adapters.metrics.probe import ProbeRegistry
    from controller.adapters.metrics.prometheus import PrometheusSource
    from controller.adapters.notify import Dispatcher
    from controller.api.policy import SLOPolicy
    from controller.ports import Clock
    from controller.reconciler import PlanReconciler, PolicyReconciler
    from controller.runtime.fastpath import FastBoard, FastLoop
    from controller.runtime.manager import Manager

__all__ = ["App", "Config", "ConfigError", "build"]

log = logging.getLogger("rolloutctl")

#: where measurements go when no Prometheus is configured: they come back as errors, so the
#: plan holds and says why
UNCONFIGURED_PROMETHEUS = "http://prometheus-not-configured.invalid"
PROBE_REAP_SECONDS = 5.0


class ConfigError(ValueError):
    """A setting the controller cannot run with; ``option`` names the flag to fix."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option
        self.message = message


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``rolloutctl run`` is configured with (its flags, same names and defaults),
    except logging, which belongs to the process."""

    kubeconfig: str | None = None  # None: in-cluster config
    context: str | None = None
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    workers: int = 4
    leader_elect: bool = True
    lease_namespace: str = LEASE_NAMESPACE
    lease_name: str = LEASE_NAME
    identity: str | None = None  # None: host name and a random suffix
    prometheus_url: str | None = None
    # host:port of /metrics, /healthz and /readyz; None: no HTTP server (in-process tests)
    metrics_address: str | None = METRICS_ADDRESS
    max_concurrent_rollouts: int | None = None
    cluster_name: str = ""
    slack_base_url: str | None = None
    resync_seconds: float = 600.0
    egress_allow: str = ""
    max_concurrent_rollouts_per_namespace: int | None = None
    max_workers_per_namespace: int | None = None  # None: all workers but one
    max_probes_per_namespace: int = 20
    http_max_connections: int = 64
    #: None: learned from the Prometheus servers in use (their targets' scrape interval,
    #: clamped to 1-10 s; 10 s until known); 0: no fast path
    fast_interval: float | None = None

    def workers_per_namespace(self) -> int | None:
        """``--max-workers-per-namespace``, by default all workers but one (so one tenant
        whose Prometheus is slow never delays another's rollback); None with one worker."""
        if self.max_workers_per_namespace is not None:
            return self.max_workers_per_namespace
        return max(1, self.workers - 1) if self.workers > 1 else None

    def first_fast_interval(self) -> float:
        """The fast interval to start with: the explicit one, or 10 s until learned."""
        from controller.adapters.metrics.fastpath import DEFAULT_FAST_INTERVAL

        return self.fast_interval if self.fast_interval is not None else DEFAULT_FAST_INTERVAL

    def check(self) -> None:
        """Raise :class:`ConfigError` for a setting the controller cannot run with."""
        from controller.adapters import egress

        for option, value in (("--workers", self.workers),
                              ("--max-probes-per-namespace", self.max_probes_per_namespace),
                              ("--http-max-connections", self.http_max_connections),
                              ("--max-concurrent-rollouts", self.max_concurrent_rollouts),
                              ("--max-concurrent-rollouts-per-namespace",
                               self.max_concurrent_rollouts_per_namespace),
                              ("--max-workers-per-namespace", self.max_workers_per_namespace)):
            if value is not None and value < 1:
                raise ConfigError(option, f"must be at least 1, not {value}")
        if self.fast_interval is not None and self.fast_interval < 0:
            raise ConfigError("--fast-interval", "must be 0 (off) or more seconds")
        if self.metrics_address is not None:
            _check_bind_address(self.metrics_address)
        try:
            egress.EgressPolicy.parse(self.egress_allow)
        except ValueError as exc:
            raise ConfigError("--egress-allow", str(exc)) from None


def _check_bind_address(text: str) -> None:
    from controller.runtime.http import parse_bind_address

    try:
        _, port = parse_bind_address(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError("--metrics-address", f"{text!r} is not host:port (e.g. "
                          f"{METRICS_ADDRESS}, or :PORT for every interface)")


class _Sources:
    """One Prometheus client per (URL, timeout, trusted), shared by every plan and policy
    that use it; the platform's ``--prometheus-url`` for policies without their own."""

    def __init__(self, default_url: str | None, registry: CollectorRegistry) -> None:
        self._default_url = default_url
        self._registry = registry
        self._sources: dict[tuple[str, float, bool], PrometheusSource] = {}
        self._lock = threading.Lock()

    def for_policy(self, policy: SLOPolicy | None) -> PrometheusSource:
        from controller.adapters.metrics.prometheus import PrometheusSource

        ref = policy.spec.prometheus if policy is not None else None
        url = ref.url if ref is not None else self._default_url
        if url is None:
            url = UNCONFIGURED_PROMETHEUS
        timeout = ref.timeout.seconds if ref is not None else 10.0
        trusted = ref is None  # the platform's --prometheus-url: not a tenant's choice
        with self._lock:
            key = (url, timeout, trusted)
            if key not in self._sources:
                self._sources[key] = PrometheusSource(url, timeout_seconds=timeout,
                                                      registry=self._registry, trusted=trusted)
            return self._sources[key]

    def close(self) -> None:
        with self._lock:
            sources = list(self._sources.values())
        for source in sources:
            source.close()


@dataclass
class App:
    """The controller, built: :meth:`start` / :meth:`stop`, or :meth:`run` (blocking)."""

    config: Config
    identity: str
    registry: CollectorRegistry
    manager: Manager
    dispatcher: Dispatcher
    plan_reconciler: PlanReconciler
    policy_reconciler: PolicyReconciler
    probes: ProbeRegistry
    fast_loop: FastLoop | None
    _sources: _Sources
    _plans_in_run: Callable[[], list[str]]
    _close_api: Callable[[], None] = lambda: None
    _reaping: threading.Event = field(default_factory=threading.Event)
    _reaper: threading.Thread | None = None
    _stopped: bool = False

    def start(self) -> App:
        """Start everything and return at once (the manager runs in its own threads)."""
        self._start_helpers()
        self.manager.start()
        return self

    def run(self) -> None:
        """Start, block until SIGTERM or SIGINT (or ``manager.request_stop()``), then stop:
        what ``rolloutctl run`` does."""
        self._start_helpers()
        try:
            self.manager.run()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop reconciling (in-flight passes finish, the Lease is released), then the fast
        path, the probers and the Prometheus clients. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.manager.stop()
        self._reaping.set()
        if self.fast_loop is not None:
            self.fast_loop.stop()
        self.probes.stop_all()
        self._sources.close()
        self._close_api()

    def _start_helpers(self) -> None:
        log.info("rolloutctl controller %s starting (pid %d, namespaces: %s, leader "
                 "election: %s)", self.identity, os.getpid(),
                 ", ".join(self.config.namespaces) or "all", self.config.leader_elect)
        self._reaper = threading.Thread(target=self._reap_probers, name="probe-reaper",
                                        daemon=True)
        self._reaper.start()
        if self.fast_loop is not None:
            self.fast_loop.start()

    def _reap_probers(self) -> None:
        """Probers of plans that are gone or out of a run stop (every 5 s; each pass of a
        plan also drops the probers it no longer needs)."""
        while not self._reaping.wait(PROBE_REAP_SECONDS):
            self.probes.reap(set(self._plans_in_run()))


def build(config: Config) -> App:
    """The controller for CONFIG, wired and not started. Raises :class:`ConfigError` for a
    bad setting, ``adapters.kube.client.NoCluster`` when there is no cluster to talk to.

    Sets the process's egress policy (``--egress-allow``, read by every outbound call) and
    the API server's address it protects."""
    config.check()
    from prometheus_client import CollectorRegistry

    from controller.adapters import egress
    from controller.adapters.kube.client import ClusterConfig, api_client
    from controller.adapters.metrics.probe import ProbeRegistry
    from controller.adapters.notify import (
        Dispatcher,
        DispatcherConfig,
        KubeNotificationStore,
        NotifyMetrics,
    )
    from controller.clock import SystemClock
    from controller.runtime.manager import Manager, default_identity
    from controller.runtime.workqueue import WorkQueue

    os.environ[egress.ALLOW_ENV] = config.egress_allow  # read by every outbound call
    api = api_client(ClusterConfig(config.kubeconfig, config.context))
    egress.set_api_server(api.configuration.host)
    me = config.identity or default_identity()
    registry = CollectorRegistry()
    manager = Manager(
        api, registry, namespaces=list(config.namespaces) or None, identity=me,
        leader_election=config.leader_elect, workers=config.workers,
        resync_seconds=config.resync_seconds, lease_namespace=config.lease_namespace,
        lease_name=config.lease_name, bind=config.metrics_address,
        max_workers_per_namespace=config.workers_per_namespace(),
        http_max_connections=config.http_max_connections,
    )
    notify_config = DispatcherConfig(cluster_name=config.cluster_name, identity=me)
    if config.slack_base_url:
        notify_config = dataclasses.replace(notify_config, slack_base_url=config.slack_base_url)
    # Notifications are a second controller on the manager: its own work queue (bounded; one
    # namespace's slow webhook or SMTP server never holds every worker), fed by the
    # reconcilers' submits after their status writes.
    clock = SystemClock()
    notify_queue = WorkQueue(
        "notifications", registry, clock=clock.monotonic, max_keys=notify_config.queue_size,
        max_per_namespace=notify_config.workers - 1 if notify_config.workers > 1 else None)
    dispatcher = Dispatcher(KubeNotificationStore(api, reporting_instance=me), notify_config,
                            clock=clock, metrics=NotifyMetrics(registry), queue=notify_queue)
    parts = _Parts(config=config, api=api, identity=me, registry=registry, manager=manager,
                   dispatcher=dispatcher, sources=_Sources(config.prometheus_url, registry),
                   probes=ProbeRegistry(max_per_namespace=config.max_probes_per_namespace))
    plan_reconciler, policy_reconciler, fast_loop = _controllers(parts)
    manager.add_controller("notifications", dispatcher, notify_config.workers,
                           queue=notify_queue)
    return App(config=config, identity=me, registry=registry, manager=manager,
               dispatcher=dispatcher, plan_reconciler=plan_reconciler,
               policy_reconciler=policy_reconciler, probes=parts.probes, fast_loop=fast_loop,
               _sources=parts.sources, _plans_in_run=parts.plans_in_run,
               _close_api=api.close)


@dataclass(frozen=True)
class _Parts:
    """What :func:`build` made so far, for the reconcilers and the fast path."""

    config: Config
    api: Any  # kubernetes.client.ApiClient (only adapters name the client library)
    identity: str
    registry: CollectorRegistry
    manager: Manager
    dispatcher: Dispatcher
    sources: _Sources
    probes: ProbeRegistry

    def policy(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.manager.cache("slopolicies").get(f"{namespace}/{name}")

    def plans_of(self, namespace: str) -> list[dict[str, Any]]:
        return [p for p in self.manager.cache("rolloutplans").objects()
                if p["metadata"].get("namespace") == namespace]

    def plans_in_run(self) -> list[str]:
        """Plans in a run, from the cache's raw status (also read every 5 s by the probe
        reaper: no status model is built per plan)."""
        from controller.api.plan import is_in_run

        active = []
        for obj in self.manager.cache("rolloutplans").objects():
            status = obj.get("status") or {}
            if is_in_run(status.get("phase"), status.get("currentStep")):
                meta = obj["metadata"]
                active.append(f"{meta['namespace']}/{meta['name']}")
        return active


def _controllers(parts: _Parts) -> tuple[PlanReconciler, PolicyReconciler, FastLoop | None]:
    """The plan and policy reconcilers on the manager's queues, and the fast path (when
    ``--fast-interval`` is not 0) feeding the plans' queue."""
    from controller.adapters.kube.events import EventRecorder
    from controller.adapters.kube.objects import ObjectStore
    from controller.adapters.kube.workloads import Workloads
    from controller.adapters.metrics.analysis import measure_gates, probe_specs
    from controller.adapters.traffic.registry import router_for
    from controller.clock import SystemClock
    from controller.reconciler import PlanReconciler, PolicyReconciler, Slots, policy_view
    from controller.runtime.fastpath import FastBoard
    from controller.runtime.manager import is_platform_policy
    from controller.telemetry import Telemetry

    config, api, manager, sources, probes = (parts.config, parts.api, parts.manager,
                                             parts.sources, parts.probes)
    clock = SystemClock()
    telemetry = Telemetry(parts.registry)
    store = ObjectStore(api)
    events = EventRecorder(api, instance=parts.identity)
    # the fast interval: explicit, or learned from Prometheus (10 s until then); the recent
    # window is three fast intervals (30 s at 10 s), at least 10 s, and follows it
    fast_now = [config.first_fast_interval()]

    def recent_seconds() -> float:
        return max(10.0, 3 * (fast_now[0] or 10.0))

    board = FastBoard() if fast_now[0] > 0 else None
    plan_reconciler = PlanReconciler(
        # Deployments are read fresh on every pass: a decision must never rest on a cached
        # copy that predates the controller's own last write (the cache still triggers).
        store=store, workloads=Workloads(api),
        router_for=lambda plan: router_for(plan, api),
        measure_gates=lambda plan, policy, ctx, window, run_s: measure_gates(
            sources.for_policy(policy), plan, policy, ctx, window, run_s,
            probes.for_owner(plan.key, probe_specs(plan, policy, ctx)), recent_seconds()),
        policy_lookup=parts.policy, clock=clock, telemetry=telemetry, events=events,
        submit=parts.dispatcher.submit,
        slots=Slots(config.max_concurrent_rollouts, seed=parts.plans_in_run,
                    per_namespace=config.max_concurrent_rollouts_per_namespace),
        leading=manager.leading, fast_board=board,
        fast_max_age=recent_seconds(),
        platform_policies=lambda ns: [
            p for p in manager.cache("slopolicies").objects()
            if p["metadata"].get("namespace") == ns and is_platform_policy(p)],
    )
    policy_reconciler = PolicyReconciler(
        store=store, metrics_for=sources.for_policy, clock=clock, telemetry=telemetry,
        events=events, submit=parts.dispatcher.submit, leading=manager.leading,
        plans_in=parts.plans_of,
    )
    plans_queue = manager.add_plans_controller(
        plan_reconciler, config.workers, is_own_write=store.is_own_write,
        policy_view=policy_view)
    manager.add_policies_controller(policy_reconciler, max(1, min(2, config.workers)))
    fast_loop = None
    if board is not None:
        def now_every(seconds: float) -> None:
            fast_now[0] = seconds
            plan_reconciler.fast_max_age = recent_seconds()

        fast_loop = _fast_loop(parts, board, plans_queue.add, clock, recent_seconds,
                               fast_now[0], now_every)
    return plan_reconciler, policy_reconciler, fast_loop


def _fast_loop(parts: _Parts, board: FastBoard, enqueue: Callable[[str], None], clock: Clock,
               recent_seconds: Callable[[], float], interval: float,
               on_interval: Callable[[float], None]) -> FastLoop:
    """The fast path: every fast interval (``--fast-interval``, or learned from the scrape
    interval of the Prometheus servers the last round queried), one query per SLO template
    and Prometheus for every plan at a step; a plan whose figures call for it is queued."""
    from controller.adapters.metrics.fastpath import FastTarget, ScrapeIntervals, measure_fast
    from controller.runtime.fastpath import FastLoop

    in_use: dict[str, PrometheusSource] = {}  # the sources the last round queried

    def measure_fast_targets(targets: list[FastTarget], at: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {}
        by_source: dict[int, tuple[PrometheusSource, list[FastTarget]]] = {}
        for t in targets:
            src = parts.sources.for_policy(t.policy)
            by_source.setdefault(id(src), (src, []))[1].append(t)
        in_use.clear()
        for src, group in by_source.values():
            in_use[src.url] = src
            out.update(measure_fast(src, group, at, recent_seconds()))
        return out

    return FastLoop(
        plans=parts.manager.cache("rolloutplans").objects, policy_lookup=parts.policy,
        measure=measure_fast_targets, target=FastTarget, board=board, enqueue=enqueue,
        clock=clock, interval=interval, leading=parts.manager.leading,
        registry=parts.registry,
        learn=ScrapeIntervals(lambda: list(in_use.values()), clock.monotonic),
        on_interval=on_interval, fixed_interval=parts.config.fast_interval is not None)
