"""The manager: informers feed keys to work queues, workers call reconcilers while leading.

::

    manager = Manager(api_client, registry, namespaces=["shop"], identity="pod-a")
    manager.add_plans_controller(plan_reconciler)        # queue "plans"
    manager.add_policies_controller(policy_reconciler)   # queue "policies"
    manager.run()                                        # until SIGTERM / stop()

* Informers for RolloutPlans, SLOPolicies and Deployments run on every replica (a standby
  keeps warm caches). Their events are mapped to keys and queued on every replica too.
* Workers take keys only while :meth:`Manager.leading` is True (always, without leader
  election) and after every cache has synced. ``leading`` is checked again right before each
  reconcile, and reconcilers get it (``manager.leading``) to re-check between steps.
* Per key: ``reconcile(key)``; success forgets the key's backoff and re-queues it after the
  seconds returned (if any); ``Conflict`` re-queues at once; ``Permanent`` is logged and not
  retried (the key comes back with the object's next change or the resync); ``Transient``
  and anything else are logged (type and reason, no secrets) and re-queued with per-key
  backoff.
* On becoming leader every cached key is queued; on losing it workers stop taking keys at
  once and the in-flight reconciles are waited for (bounded) before the Lease is released.
* Resync: every ``resync_seconds`` the informers re-deliver each object, queueing its keys
  unless they are queued, in progress or waiting for a requeue already (a pass asked to be
  requeued at its next analysis: the resync is a safety net, not a burst of extra passes).
* :meth:`stop` (SIGTERM): stop taking keys, wait for in-flight reconciles, release the Lease,
  stop informers and workers, close the HTTP server; a few seconds in all.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.adapters.kube.lease import KubeLeaseStore
from controller.adapters.kube.watch import (
    DEPLOYMENTS,
    ROLLOUT_PLANS,
    SLO_POLICIES,
    ApiClient,
    Cache,
    Informer,
    object_key,
    plan_policy_keys,
    plan_workload_keys,
)
from controller.adapters.notify.redact import redact, redacting_logger
from controller.api.policy import PLATFORM_LABEL
from controller.constants import LEASE_NAME, LEASE_NAMESPACE, METRICS_ADDRESS
from controller.errors import Conflict, ControllerError, Permanent, Transient
from controller.ports import Reconciler
from controller.runtime.http import HealthServer, parse_bind_address
from controller.runtime.leader import ElectionTimings, LeaderElector
from controller.runtime.workqueue import WorkQueue

__all__ = [
    "PLANS_BY_POLICY",
    "PLANS_BY_WORKLOAD",
    "Manager",
    "Mapper",
    "Source",
    "default_identity",
    "own_key",
]

log = redacting_logger(__name__)

Object = dict[str, Any]
#: turns an object event into the keys to queue
Mapper = Callable[[Object], Iterable[str]]

#: indexes of the plans cache: Deployment key -> plans, SLOPolicy key -> plans
PLANS_BY_WORKLOAD = "workload"
PLANS_BY_POLICY = "sloPolicy"

_RECONCILE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                      30.0, 60.0)


def own_key(obj: Object) -> list[str]:
    """The object's own ``namespace/name``."""
    return [object_key(obj)]


def _when_changed(view: Callable[[Object], object], mapper: Mapper) -> Mapper:
    """MAPPER, for an object whose VIEW differs from the one its previous call saw."""
    seen: dict[str, object] = {}
    lock = threading.Lock()

    def mapped(obj: Object) -> Iterable[str]:
        key, current = object_key(obj), view(obj)
        with lock:
            if key in seen and seen[key] == current:
                return []
            seen[key] = current
        return mapper(obj)
    return mapped


def is_platform_policy(obj: Object) -> bool:
    """An SLOPolicy labelled ``rolloutctl.dev/platform: "true"``."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return isinstance(labels, dict) and labels.get(PLATFORM_LABEL) == "true"


def default_identity() -> str:
    """``<hostname>_<random>``: unique per process, so a restarted pod is a new candidate."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Source:
    """An informer and the keys its events queue; ``on_update`` (when given) replaces
    ``mapper`` for updates (adds, deletes and becoming leader always use ``mapper``)."""

    informer: Informer
    mapper: Mapper
    on_update: Mapper | None = None


@dataclass
class _Controller:
    name: str
    reconciler: Reconciler
    workers: int
    queue: WorkQueue
    sources: list[Source]
    threads: list[threading.Thread] = field(default_factory=list)


class Manager:
    def __init__(
        self,
        api_client: ApiClient,
        registry: CollectorRegistry,
        namespaces: Sequence[str] | None = None,
        identity: str | None = None,
        leader_election: bool = True,
        workers: int = 2,
        resync_seconds: float = 600.0,
        lease_namespace: str = LEASE_NAMESPACE,
        lease_name: str = LEASE_NAME,
        *,
        bind: str | None = METRICS_ADDRESS,
        timings: ElectionTimings | None = None,
        watch_timeout_seconds: int = 300,
        drain_seconds: float = 5.0,
        max_workers_per_namespace: int | None = None,
        http_max_connections: int = 64,
    ) -> None:
        self.registry = registry
        # keys of one namespace take at most this many workers at once (None: no bound)
        self.max_workers_per_namespace = max_workers_per_namespace
        self.identity = identity or default_identity()
        self.default_workers = workers
        self._drain_seconds = drain_seconds
        self._informers: dict[str, Informer] = {
            r.plural: Informer(
                api_client, r, namespaces, resync_seconds=resync_seconds,
                watch_timeout_seconds=watch_timeout_seconds,
            )
            for r in (ROLLOUT_PLANS, SLO_POLICIES, DEPLOYMENTS)
        }
        plans = self._informers[ROLLOUT_PLANS.plural].cache
        plans.add_index(PLANS_BY_WORKLOAD, plan_workload_keys)
        plans.add_index(PLANS_BY_POLICY, plan_policy_keys)
        self._controllers: dict[str, _Controller] = {}
        self._lock = threading.Condition()
        self._in_flight = 0
        self._stopping = threading.Event()  # no new reconciles
        self._stop_requested = threading.Event()
        self._stopped = threading.Event()
        self._started = False
        self._leading_event = threading.Event()
        self._elector: LeaderElector | None = None
        if leader_election:
            self._elector = LeaderElector(
                KubeLeaseStore(api_client, lease_namespace, lease_name),
                self.identity,
                timings,
                on_started_leading=self._started_leading,
                on_stopped_leading=self._stopped_leading,
            )
        else:
            self._leading_event.set()
        self._reconciles = Counter(
            "rolloutctl_reconcile", "Reconciles by controller and result "
            "(success, conflict, transient, permanent, error).",
            ["controller", "result"], registry=registry,
        )
        self._reconcile_seconds = Histogram(
            "rolloutctl_reconcile_seconds", "Time spent in one reconcile.",
            ["controller"], registry=registry, buckets=_RECONCILE_BUCKETS,
        )
        leader = Gauge("rolloutctl_leader", "1 while this replica acts (holds the Lease).",
                       registry=registry)
        leader.set_function(lambda: 1.0 if self.leading() else 0.0)
        self._http: HealthServer | None = None
        if bind is not None:
            self._http = HealthServer(
                registry, liveness=self.healthz, readiness=self.readyz,
                address=parse_bind_address(bind), max_connections=http_max_connections,
            )

    # ------------------------------------------------------------------ wiring

    def informer(self, plural: str) -> Informer:
        """The informer of ``rolloutplans``, ``slopolicies`` or ``deployments``."""
        return self._informers[plural]

    def cache(self, plural: str) -> Cache:
        """The cache of ``rolloutplans``, ``slopolicies`` or ``deployments`` (read-only:
        ``get(key)``, ``objects()``, ``keys()``, ``index_keys(index, value)``)."""
        return self._informers[plural].cache

    def plans_for(self, index: str) -> Mapper:
        """A mapper from an object to the keys of the plans that refer to it."""
        plans = self.cache(ROLLOUT_PLANS.plural)
        return lambda obj: plans.index_keys(index, object_key(obj))

    def add_controller(
        self,
        name: str,
        reconciler: Reconciler,
        workers: int | None = None,
        sources: Sequence[tuple[Informer, Mapper] | Source] = (),
        queue: WorkQueue | None = None,
    ) -> WorkQueue:
        """Register a controller: a work queue NAME fed by SOURCES (``(informer, mapper)``
        or a :class:`Source`), drained by WORKERS threads calling RECONCILER. Returns the
        queue (for metrics and benchmarks). QUEUE: one built by the caller (a controller
        fed by another's submits rather than by informers: notifications)."""
        if self._started:
            raise RuntimeError("add controllers before start()")
        if name in self._controllers:
            raise ValueError(f"controller {name!r} exists already")
        n = workers or self.default_workers
        cap = self.max_workers_per_namespace
        if cap is not None and n > 1:
            cap = min(cap, n - 1)  # at least one worker is always free for other namespaces
        if queue is None:
            queue = WorkQueue(name, self.registry, max_per_namespace=cap)
        ctl = _Controller(name, reconciler, workers or self.default_workers, queue,
                          [s if isinstance(s, Source) else Source(*s) for s in sources])
        self._controllers[name] = ctl
        for source in ctl.sources:
            enqueue = self._enqueuer(queue, source.mapper)
            update = (enqueue if source.on_update is None
                      else self._enqueuer(queue, source.on_update))
            source.informer.add_handlers(enqueue, update, enqueue,
                                         self._enqueuer(queue, source.mapper, resync=True))
        return queue

    def add_plans_controller(self, reconciler: Reconciler, workers: int | None = None, *,
                             is_own_write: Callable[[Object], bool] | None = None,
                             policy_view: Callable[[Object], object] | None = None,
                             ) -> WorkQueue:
        """``plans``: a plan's own events, its Deployments' and its SLOPolicy's.

        Two filters keep a steady controller from reconciling for nothing (each would
        otherwise add one pass per plan and interval):

        * ``is_own_write(plan)``: the event is the echo of the reconciler's own status
          write; it is not queued (the pass that wrote it already asked for its next look).
        * ``policy_view(policy)``: what of an SLOPolicy its plans read; an update of the
          policy queues its plans only when that changed since the policy's last event (an
          evaluation rewrites its budget figures every interval). Adding or deleting a
          policy always queues them.
        """
        def plan_keys(obj: Object) -> list[str]:
            return [] if is_own_write is not None and is_own_write(obj) else own_key(obj)

        named = self.plans_for(PLANS_BY_POLICY)
        plans = self.cache(ROLLOUT_PLANS.plural)

        def policy_plans(obj: Object) -> list[str]:
            """The plans naming the policy; for a platform policy, every plan of its
            namespace (its freeze applies to them all)."""
            keys = list(named(obj))
            if is_platform_policy(obj):
                prefix = f"{(obj.get('metadata') or {}).get('namespace') or ''}/"
                every = plans.keys()
                keys += [k for k in every if k.startswith(prefix) and k not in keys]
            return keys

        on_policy_update: Mapper | None = None
        if policy_view is not None:
            on_policy_update = _when_changed(policy_view, policy_plans)
        return self.add_controller("plans", reconciler, workers, [
            (self.informer(ROLLOUT_PLANS.plural), plan_keys),
            (self.informer(DEPLOYMENTS.plural), self.plans_for(PLANS_BY_WORKLOAD)),
            Source(self.informer(SLO_POLICIES.plural), policy_plans, on_policy_update),
        ])

    def add_policies_controller(self, reconciler: Reconciler, workers: int | None = None
                                ) -> WorkQueue:
        """``policies``: an SLOPolicy's own events, and the plans it governs (the services
        it guards follow them): a plan added, deleted, or changing its service, target or
        sloPolicyRef queues the policy it names and its namespace's platform policies."""
        policies = self.cache(SLO_POLICIES.plural)

        def governing(plan: Object) -> list[str]:
            namespace = (plan.get("metadata") or {}).get("namespace") or ""
            keys = list(plan_policy_keys(plan))
            keys += [object_key(p) for p in policies.objects()
                     if is_platform_policy(p)
                     and (p.get("metadata") or {}).get("namespace") == namespace
                     and object_key(p) not in keys]
            return keys

        def guarded_view(plan: Object) -> object:
            spec = plan.get("spec") or {}
            return (spec.get("service"), repr(spec.get("target")), repr(spec.get("sloPolicyRef")))

        return self.add_controller("policies", reconciler, workers, [
            (self.informer(SLO_POLICIES.plural), own_key),
            Source(self.informer(ROLLOUT_PLANS.plural), governing,
                   _when_changed(guarded_view, governing)),
        ])

    def queue(self, name: str) -> WorkQueue:
        return self._controllers[name].queue

    @staticmethod
    def _enqueuer(queue: WorkQueue, mapper: Mapper, *, resync: bool = False
                  ) -> Callable[[Object], None]:
        """Queue the keys MAPPER gives for an object; on a resync only the keys nobody has
        scheduled (:meth:`WorkQueue.add_unless_scheduled`)."""
        add = queue.add_unless_scheduled if resync else queue.add

        def enqueue(obj: Object) -> None:
            for key in mapper(obj):
                add(key)
        return enqueue

    # ------------------------------------------------------------------ state

    def leading(self) -> bool:
        """May this replica act now? Reconcilers call it before each write."""
        if self._stopping.is_set():
            return False
        return self._elector.is_leader() if self._elector is not None else True

    def has_synced(self) -> bool:
        return all(i.has_synced() for i in self._informers.values())

    def healthz(self) -> tuple[bool, str]:
        """The process's threads are alive."""
        if not self._started:
            return False, "not started"
        if self._stopping.is_set():
            return True, "stopping"
        dead = [repr(i) for i in self._informers.values() if not i.is_alive()]
        dead += [f"workers of {c.name}" for c in self._controllers.values()
                 if not all(t.is_alive() for t in c.threads)]
        if self._elector is not None and not self._elector.is_running():
            dead.append("leader election")
        if dead:
            return False, "not running: " + ", ".join(dead)
        return True, "ok"

    def readyz(self) -> tuple[bool, str]:
        """Caches synced, and leading or a standby that can reach the API server."""
        if self._stopping.is_set():
            return False, "stopping"
        unsynced = [repr(i) for i in self._informers.values() if not i.has_synced()]
        if unsynced:
            return False, "caches not synced: " + ", ".join(unsynced)
        if self._elector is None:
            return True, "ok (leader election off)"
        if self._elector.is_leader():
            return True, f"ok (leader {self.identity})"
        if self._elector.is_healthy():
            leader = self._elector.leader() or "unknown"
            return True, f"ok (standby; leader {leader})"
        problem = self._elector.problem() or "no answer from the API server"
        return False, f"leader election: {problem}"

    @property
    def http_url(self) -> str | None:
        return self._http.url if self._http is not None else None

    # ------------------------------------------------------------------ leadership

    def _started_leading(self) -> None:
        log.info("%s is the leader: queueing every cached object", self.identity)
        self._leading_event.set()
        self.enqueue_all()

    def _stopped_leading(self) -> None:
        log.warning("%s is no longer the leader: no more reconciles", self.identity)
        self._leading_event.clear()
        self._wait_in_flight(self._drain_seconds)

    def enqueue_all(self) -> None:
        """Queue the keys of every cached object of every controller's sources."""
        for ctl in self._controllers.values():
            for source in ctl.sources:
                for obj in source.informer.cache.objects():
                    for key in source.mapper(obj):
                        ctl.queue.add(key)

    # ------------------------------------------------------------------ workers

    def _work(self, ctl: _Controller) -> None:
        while not self._stopping.is_set():
            if not (self.leading() and self.has_synced()):
                if self._leading_event.is_set():
                    self._stopping.wait(0.05)  # the Lease is late or caches are syncing
                else:
                    self._leading_event.wait(0.25)
                continue
            key = ctl.queue.get(timeout=0.25)
            if key is None:
                continue
            with self._lock:
                admitted = self.leading()
                if admitted:
                    self._in_flight += 1
            try:
                if admitted:
                    self._reconcile(ctl, key)
                else:
                    ctl.queue.add(key)  # kept for when this replica leads again
            finally:
                ctl.queue.done(key)
                if admitted:
                    with self._lock:
                        self._in_flight -= 1
                        self._lock.notify_all()

    def _reconcile(self, ctl: _Controller, key: str) -> None:
        started = time.monotonic()
        result = "success"
        try:
            requeue = ctl.reconciler.reconcile(key)
        except Conflict:
            result = "conflict"
            log.info("%s %s: conflict, retrying now", ctl.name, key)
            ctl.queue.add(key)
        except Permanent as exc:
            result = "permanent"
            ctl.queue.forget(key)  # retrying cannot help: wait for the object to change
            log.warning("%s %s: %s: %s (not retried)", ctl.name, key, exc.reason,
                        redact(exc.message))
        except Transient as exc:
            result = "transient"
            ctl.queue.add_rate_limited(key)
            log.warning("%s %s: %s: %s (retry %d)", ctl.name, key, exc.reason,
                        redact(exc.message), ctl.queue.num_requeues(key))
        except Exception as exc:
            result = "error"
            ctl.queue.add_rate_limited(key)
            # the traceback's frames, not its message: a library's message may quote a
            # server's answer
            frames = "".join(traceback.format_tb(exc.__traceback__)[-5:])
            reason = exc.reason if isinstance(exc, ControllerError) else type(exc).__name__
            log.error("%s %s: reconcile failed with %s (retry %d)\n%s", ctl.name, key,
                      reason, ctl.queue.num_requeues(key), frames)
        else:
            ctl.queue.forget(key)
            if requeue is not None:
                ctl.queue.add_after(key, max(0.0, requeue))
        finally:
            self._reconciles.labels(ctl.name, result).inc()
            self._reconcile_seconds.labels(ctl.name).observe(time.monotonic() - started)

    def _wait_in_flight(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("%d reconciles still running after %.1f s",
                                self._in_flight, timeout)
                    return False
                self._lock.wait(left)
        return True

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the HTTP server, informers, workers and the elector; returns at once."""
        if self._started:
            raise RuntimeError("a Manager is started once")
        self._started = True
        if self._http is not None:
            self._http.start()
        for informer in self._informers.values():
            informer.start()
        for ctl in self._controllers.values():
            for n in range(ctl.workers):
                t = threading.Thread(target=self._work, args=(ctl,),
                                     name=f"worker-{ctl.name}-{n}", daemon=True)
                ctl.threads.append(t)
                t.start()
        if self._elector is not None:
            self._elector.start()
        log.info("manager %s started (%d controllers)", self.identity, len(self._controllers))

    def run(self) -> None:
        """Start, and block until :meth:`request_stop`, SIGTERM or SIGINT; then stop."""
        if threading.current_thread() is threading.main_thread():
            self.install_signal_handlers()
        self.start()
        try:
            while not self._stop_requested.wait(0.5):
                pass
        finally:
            self.stop()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            self._stop_requested.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def request_stop(self) -> None:
        """Make :meth:`run` stop and return (safe from any thread or a signal handler)."""
        self._stop_requested.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reconciling, wait for in-flight reconciles, release the Lease, stop the
        informers, workers and HTTP server. Idempotent."""
        if self._stopping.is_set():
            self._stopped.wait(timeout)
            return
        started = time.monotonic()
        self._stopping.set()
        self._stop_requested.set()
        self._leading_event.set()  # wake idle workers so they see _stopping
        self._wait_in_flight(self._drain_seconds)
        if self._elector is not None:
            self._elector.stop(timeout=5.0)  # steps down and releases the Lease
        for ctl in self._controllers.values():
            ctl.queue.shutdown()
        for informer in self._informers.values():
            informer.stop(timeout=2.0)
        for ctl in self._controllers.values():
            for t in ctl.threads:
                t.join(max(0.1, timeout - (time.monotonic() - started)))
        if self._http is not None:
            self._http.stop()
        self._stopped.set()
        log.info("manager %s stopped in %.2f s", self.identity, time.monotonic() - started)
