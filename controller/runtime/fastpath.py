"""The fast path: what must never wait for a plan's next analysis, checked every few seconds.

Every ``interval`` (``rolloutctl run --fast-interval``; by default the scrape interval the
Prometheus servers in use report for their targets, clamped to 1-10 s, and 10 s until they
have told it) and only while leading, the loop takes every plan at a step
from the informer's cache, measures all of them with one grouped query per SLO template and
window (``adapters.metrics.fastpath``), and leaves each plan's measurement on the
:class:`FastBoard`. It queues a plan's key only when the engine says the measurement needs a
pass (``engine.decide.fast_path_wants``: a ceiling breached, an episode of fast burn, or an
episode remembered in status). The reconcile of that key takes the measurement from the
board and the engine decides: the same ``FastBurn`` rollback, evidence, notifications and
status write as an analysis. Healthy plans cost no reconcile and no write.

The loop holds no decision state: an episode's start lives in the gate's status
(``burningSince``), so a restart or a new leader carries on where the last one was.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from controller.api.plan import RolloutPlan, RolloutPlanStatus
from controller.api.policy import SLOPolicy
from controller.engine.decide import STEPPING_PHASES, fast_path_wants, is_stepping
from controller.engine.measurements import GateMeasurement
from controller.ports import Clock

log = logging.getLogger(__name__)

Object = dict[str, Any]
_STEPPING = {p.value for p in STEPPING_PHASES}
_STATUS_FIELDS = ("phase", "run", "revision", "currentStep", "canaryWeight", "runStartedAt",
                  "stepStartedAt", "lastAnalysisAt")
Measured = dict[str, tuple[GateMeasurement, ...]]


class FastBoard:
    """Each plan's latest fast measurement, taken by the next reconcile of that plan."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[datetime, tuple[GateMeasurement, ...]]] = {}

    def put(self, key: str, at: datetime, measured: tuple[GateMeasurement, ...]) -> None:
        with self._lock:
            self._latest[key] = (at, measured)

    def take(self, key: str, now: datetime, max_age: float
             ) -> tuple[GateMeasurement, ...] | None:
        """The measurement, once, if it is no older than MAX_AGE seconds."""
        with self._lock:
            found = self._latest.pop(key, None)
        if found is None:
            return None
        at, measured = found
        age = (now - at).total_seconds()
        return measured if -1.0 <= age <= max_age else None


class FastLoop:
    """See the module doc. ``tick`` is one round (tests call it with a fake clock)."""

    def __init__(
        self,
        plans: Callable[[], Iterable[Object]],
        policy_lookup: Callable[[str, str], Object | None],
        measure: Callable[[list[Any], datetime], Measured],
        target: Callable[[str, RolloutPlan, SLOPolicy], Any],
        board: FastBoard,
        enqueue: Callable[[str], None],
        clock: Clock,
        interval: float,
        leading: Callable[[], bool] = lambda: True,
        registry: CollectorRegistry | None = None,
        learn: Callable[[], Any] | None = None,
        on_interval: Callable[[float], None] | None = None,
        fixed_interval: bool = False,
    ) -> None:
        self.plans = plans
        self.policy_lookup = policy_lookup
        self.measure = measure
        self.target = target
        self.board = board
        self.enqueue = enqueue
        self.clock = clock
        self.interval = interval
        self.leading = leading
        # without an explicit --fast-interval: the cadence learned after each round
        # (adapters.metrics.fastpath.ScrapeIntervals: an object with ``interval`` and
        # ``phase``, or None to keep the current one)
        self.learn = learn
        self.on_interval = on_interval
        self.phase: float | None = None  # rounds at Unix times = phase (mod interval)
        # an explicit --fast-interval wins: only the phase is learned, when the scrape
        # interval is that interval
        self.fixed_interval = fixed_interval
        self._parsed: dict[tuple[str, str], Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self._round_seconds: Histogram | None = None
        self._queued: Counter | None = None
        if registry is not None:
            self._round_seconds = Histogram(
                "rolloutctl_fastpath_round_seconds",
                "One fast-path round: every plan at a step measured (grouped queries).",
                registry=registry,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
            self._queued = Counter(
                "rolloutctl_fastpath_plans_queued",
                "Plans the fast path handed a measurement to (a rule fired or may fire).",
                registry=registry)

    def _plan(self, obj: Object) -> RolloutPlan | None:
        """The plan with only the status fields the fast path reads: its spec is parsed
        once per generation, and a status written at every analysis (1,000 plans: about
        170 per round at a 60 s interval) costs a few fields, not the whole history."""
        meta = obj.get("metadata") or {}
        name = f"{meta.get('namespace')}/{meta.get('name')}"
        # the object unchanged since the last round (most plans: a status is written once
        # per analysis): the plan built then
        rv = str(meta.get("resourceVersion"))
        built = self._parsed.get(("plan", name))
        if built is not None and built[0] == rv and rv != "None":
            return built[1]  # type: ignore[no-any-return]
        plan = self._build_plan(obj, name, meta)
        self._parsed[("plan", name)] = (rv, plan)
        return plan

    def _build_plan(self, obj: Object, name: str, meta: Object) -> RolloutPlan | None:
        key = ("spec", name)
        version = f"{meta.get('generation')}/{meta.get('uid')}"
        cached = self._parsed.get(key)
        if cached is None or cached[0] != version:
            try:
                bare = RolloutPlan.model_validate({k: v for k, v in obj.items()
                                                   if k != "status"})
            except ValueError:
                bare = None
            cached = self._parsed[key] = (version, bare)
        bare = cached[1]
        if bare is None:
            return None
        st = obj.get("status") or {}
        if st.get("phase") not in _STEPPING or st.get("currentStep") is None:
            return None
        light: dict[str, Any] = {k: st[k] for k in _STATUS_FIELDS if k in st}
        light["gates"] = [{"name": g.get("name"), "kind": g.get("kind"),
                           "burningSince": g["burningSince"]}
                          for g in st.get("gates") or () if g.get("burningSince")]
        light["drills"] = (st.get("drills") or [])[-1:]
        try:
            status = RolloutPlanStatus.model_validate(light)
        except ValueError:
            return None
        return bare.model_copy(update={"status": status})

    def _parse(self, kind: str, obj: Object, model: Any) -> Any:
        meta = obj.get("metadata") or {}
        key = (kind, f"{meta.get('namespace')}/{meta.get('name')}")
        rv = str(meta.get("resourceVersion"))
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == rv:
            return cached[1]
        try:
            parsed = model.model_validate(obj)
        except ValueError:
            parsed = None
        self._parsed[key] = (rv, parsed)
        return parsed

    def tick(self) -> list[str]:
        """One round: measure every plan at a step, queue those that need a pass."""
        if not self.leading():
            return []
        now = self.clock.now()
        targets = []
        for obj in self.plans():
            plan = self._plan(obj)
            if (plan is None or plan.spec.slo_policy_ref is None or not plan.spec.gates
                    or not is_stepping(plan.status) or plan.status.step_started_at is None):
                continue
            raw = self.policy_lookup(plan.metadata.namespace, plan.spec.slo_policy_ref.name)
            policy = self._parse("policy", raw, SLOPolicy) if raw is not None else None
            if policy is None:
                continue
            targets.append(self.target(plan.key, plan, policy))
        if not targets:
            return []
        measured = self.measure(targets, now)
        queued = []
        for t in targets:
            fast = measured.get(t.key)
            if not fast:
                continue
            self.board.put(t.key, now, fast)
            if fast_path_wants(t.plan, t.policy, fast):
                self.enqueue(t.key)
                queued.append(t.key)
                # one line per plan queued (rare: a rule fired or an episode is open);
                # bench.rollback_latency reads "measured at" to split its latency
                log.info("fast path: %s needs a pass (measured at %s, round %.3f s)", t.key,
                         now.isoformat(timespec="milliseconds"),
                         (self.clock.now() - now).total_seconds())
        self.rounds += 1
        return queued

    # ------------------------------------------------------------------ thread

    def start(self) -> FastLoop:
        self._thread = threading.Thread(target=self._run, name="fast-path", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        next_at = self.clock.monotonic()
        while not self._stop.is_set():
            started = self.clock.monotonic()
            started_wall = self.clock.now().timestamp()
            try:
                queued = self.tick()
                if self._queued is not None and queued:
                    self._queued.inc(len(queued))
            except Exception as exc:  # never let one bad round stop the loop
                log.error("fast path round failed: %s", type(exc).__name__)
            if self._round_seconds is not None:
                self._round_seconds.observe(self.clock.monotonic() - started)
            self.relearn()
            aligned = self.delay_to_phase(started_wall)
            if aligned is not None:
                next_at = self.clock.monotonic() + aligned
                self._stop.wait(aligned)
                continue
            next_at += self.interval
            delay = next_at - self.clock.monotonic()
            if delay < 0:  # fell behind: skip the missed rounds
                next_at = self.clock.monotonic()
                delay = 0.0
            self._stop.wait(delay)

    def delay_to_phase(self, started_wall: float) -> float | None:
        """Seconds until the next round on the learned phase, at least half an interval
        after the round that started at STARTED_WALL (Unix seconds); None without one."""
        if self.phase is None:
            return None
        earliest = started_wall + 0.5 * self.interval
        at = earliest + (self.phase - earliest) % self.interval
        return max(0.0, at - self.clock.now().timestamp())

    def relearn(self) -> None:
        """Take the learned cadence, if any, and tell ``on_interval`` when the interval
        changed."""
        if self.learn is None:
            return
        try:
            learned = self.learn()
        except Exception as exc:  # the interval stays as it is
            log.warning("fast path: could not learn the scrape interval: %s",
                        type(exc).__name__)
            return
        if learned is None:
            return
        interval, phase = float(learned.interval), learned.phase
        if self.fixed_interval:
            if interval != self.interval:
                phase = None
            interval = self.interval
        if phase != self.phase and (phase is None or self.phase is None
                                    or abs(phase - self.phase) > 0.01):
            log.info("fast path: rounds at %s", "any phase" if phase is None else
                     f"{phase:.3f} s past every {interval:g} s (just after the scrapes)")
            self.phase = phase
        if interval == self.interval:
            return
        log.info("fast path: every %g s (was %g s), from the scrape interval Prometheus "
                 "reports for its targets", interval, self.interval)
        self.interval = interval
        if self.on_interval is not None:
            self.on_interval(interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
