"""A work queue with client-go semantics (``k8s.io/client-go/util/workqueue``).

* A key queued several times before a worker takes it is processed once (the dirty set).
* A key is never handed to two workers at once (the processing set): a key added while it
  is being processed waits, and is queued again when its worker calls :meth:`done`.
* :meth:`add_after` queues a key later; of two delays for one key the earlier one wins.
* ``max_keys``: at most this many distinct keys wait to be processed; one more is dropped
  (:meth:`try_add` returns False: the caller counts it and asks again later).
* ``max_per_namespace``: at most this many keys of one namespace (the part of ``ns/name``
  before the slash) are processed at once; a worker then takes the next key of another
  namespace, so one tenant whose calls are slow cannot hold every worker.
* :meth:`add_rate_limited` queues a key after a per-key exponential backoff (client-go's
  ``ItemExponentialFailureRateLimiter``: base 0.1 s doubling up to 5 min); :meth:`forget`
  resets it once the key succeeds.

Delayed keys wait in a heap; the getters wait on one condition variable with a timeout up
to the earliest due time, so no timer thread is needed. All times are monotonic.

Metrics (``rolloutctl_workqueue_*``, label ``name``) go to the registry given; the most
recent queue latencies (add to get, seconds; for a delayed key, from the moment it became
due) are also kept in a bounded ring buffer for benchmarks (:meth:`WorkQueue.latencies`).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ExponentialBackoff", "QueueMetrics", "WorkQueue", "queue_metrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
)


@dataclass(frozen=True)
class QueueMetrics:
    """The work-queue metric families of one registry (shared by its queues via ``name``)."""

    depth: Gauge
    adds: Counter
    queue_latency: Histogram
    work_duration: Histogram
    retries: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> QueueMetrics:
        return cls(
            depth=Gauge(
                "rolloutctl_workqueue_depth", "Keys waiting in the queue now.",
                ["name"], registry=registry,
            ),
            adds=Counter(
                "rolloutctl_workqueue_adds", "Keys added to the queue.",
                ["name"], registry=registry,
            ),
            queue_latency=Histogram(
                "rolloutctl_workqueue_queue_duration_seconds",
                "Time a key waits in the queue between add and get.",
                ["name"], registry=registry, buckets=_LATENCY_BUCKETS,
            ),
            work_duration=Histogram(
                "rolloutctl_workqueue_work_duration_seconds",
                "Time between get and done for a key.",
                ["name"], registry=registry, buckets=_LATENCY_BUCKETS,
            ),
            retries=Counter(
                "rolloutctl_workqueue_retries", "Keys re-queued after a backoff.",
                ["name"], registry=registry,
            ),
        )


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, QueueMetrics] = (
    weakref.WeakKeyDictionary()
)
_METRICS_LOCK = threading.Lock()


def queue_metrics(registry: CollectorRegistry) -> QueueMetrics:
    """The work-queue metrics of REGISTRY, registered on first use."""
    with _METRICS_LOCK:
        metrics = _METRICS.get(registry)
        if metrics is None:
            metrics = _METRICS[registry] = QueueMetrics.create(registry)
        return metrics


@dataclass(frozen=True)
class ExponentialBackoff:
    """Per-key delay ``base * 2**failures``, capped (client-go's defaults: 5 ms / 1000 s;
    ours: 0.1 s / 5 min)."""

    base: float = 0.1
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        if failures >= 64:  # far beyond any cap; keeps the float product from overflowing
            return self.cap
        return float(min(self.cap, self.base * (2**failures)))


def _condition_wait(cond: threading.Condition, timeout: float | None) -> bool:
    return cond.wait(timeout)


class WorkQueue:
    """A thread-safe, deduplicating, delaying, rate-limited queue of string keys."""

    def __init__(
        self,
        name: str,
        registry: CollectorRegistry | None = None,
        *,
        backoff: ExponentialBackoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Condition, float | None], object] | None = None,
        latency_samples: int = 4096,
        on_latency: Callable[[str, float], None] | None = None,
        max_per_namespace: int | None = None,
        max_keys: int | None = None,
    ) -> None:
        self.name = name
        self._max_keys = max_keys
        self._max_per_namespace = max_per_namespace
        self._busy: dict[str, int] = {}  # namespace -> keys being processed
        self._backoff = backoff or ExponentialBackoff()
        self._clock = clock
        # how a getter waits (COND held, a timeout or None): a fake clock's wait in tests
        self._wait = wait or _condition_wait
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._added_at: dict[str, float] = {}
        self._started_at: dict[str, float] = {}
        self._waiting: list[tuple[float, int, str]] = []  # (due, seq, key): a min-heap
        self._due: dict[str, float] = {}  # key -> its earliest due time in the heap
        self._seq = itertools.count()
        self._failures: dict[str, int] = {}
        self._shutting_down = False
        self._latencies: deque[float] = deque(maxlen=latency_samples)
        self._on_latency = on_latency
        metrics = queue_metrics(registry) if registry is not None else None
        self._depth = metrics.depth.labels(name) if metrics else None
        self._adds = metrics.adds.labels(name) if metrics else None
        self._queue_latency = metrics.queue_latency.labels(name) if metrics else None
        self._work_duration = metrics.work_duration.labels(name) if metrics else None
        self._retries = metrics.retries.labels(name) if metrics else None

    # ------------------------------------------------------------------ adding

    def add(self, key: str) -> None:
        """Queue KEY now (a no-op when it is already queued or the queue is shut down)."""
        with self._cond:
            self._add_locked(key)

    def try_add(self, key: str) -> bool:
        """:meth:`add`, saying whether KEY is queued: False when the queue is shut down or
        holds ``max_keys`` keys already."""
        with self._cond:
            return self._add_locked(key)

    def _add_locked(self, key: str, at: float | None = None) -> bool:
        """Queue KEY, waiting since AT (default now: a delayed key waits since it was due)."""
        if self._shutting_down:
            return False
        if key in self._dirty:
            return True
        if self._max_keys is not None and len(self._dirty) >= self._max_keys:
            return False
        self._dirty.add(key)
        self._added_at[key] = self._clock() if at is None else at
        if self._adds is not None:
            self._adds.inc()
        if key in self._processing:
            return True  # queued again by done(key)
        self._queue.append(key)
        self._set_depth()
        self._cond.notify()
        return True

    def add_unless_scheduled(self, key: str) -> bool:
        """Queue KEY now unless it is already queued, being processed, or waiting for a
        delayed requeue: a resync's add. Every key a reconciler asked to see again is
        already scheduled, so a periodic resync of N objects does not dump N keys at once
        in front of the ones that are due. Returns whether KEY was queued."""
        with self._cond:
            if (self._shutting_down or key in self._dirty or key in self._processing
                    or key in self._due):
                return False
            self._add_locked(key)
            return True

    def add_after(self, key: str, seconds: float) -> None:
        """Queue KEY after SECONDS; if KEY already waits for an earlier time, that one wins."""
        if seconds <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutting_down:
                return
            due = self._clock() + seconds
            current = self._due.get(key)
            if current is not None and current <= due:
                return
            self._due[key] = due
            heapq.heappush(self._waiting, (due, next(self._seq), key))
            self._cond.notify_all()  # a getter may have to wake earlier now

    def add_rate_limited(self, key: str) -> None:
        """Queue KEY after its backoff (0.1 s, 0.2 s, 0.4 s, ... up to 5 min)."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        if self._retries is not None:
            self._retries.inc()
        self.add_after(key, self._backoff.delay(failures))

    def forget(self, key: str) -> None:
        """KEY succeeded: its next failure starts the backoff from the base again."""
        with self._cond:
            self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        """How many times KEY was re-queued with backoff since it was last forgotten."""
        with self._cond:
            return self._failures.get(key, 0)

    # ------------------------------------------------------------------ taking

    def get(self, timeout: float | None = None) -> str | None:
        """The next key to process, blocking up to TIMEOUT seconds (None: forever).

        Returns None on timeout or once the queue is shut down. The caller must call
        :meth:`done` with the key when finished with it.
        """
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shutting_down:
                    return None
                now = self._clock()
                self._promote_due_locked(now)
                index = self._eligible_locked()
                if index is not None:
                    key, latency = self._take_locked(now, index)
                    break
                wait = None if deadline is None else deadline - now
                if wait is not None and wait <= 0:
                    return None
                if self._waiting:
                    until_due = max(0.0, self._waiting[0][0] - now)
                    wait = until_due if wait is None else min(wait, until_due)
                self._wait(self._cond, wait)
        if self._on_latency is not None:
            self._on_latency(key, latency)
        return key

    def _eligible_locked(self) -> int | None:
        """The position of the first queued key its namespace may start now."""
        if not self._queue:
            return None
        if self._max_per_namespace is None:
            return 0
        for i, key in enumerate(self._queue):
            if self._busy.get(_namespace(key), 0) < self._max_per_namespace:
                return i
        return None

    def _take_locked(self, now: float, index: int = 0) -> tuple[str, float]:
        key = self._queue[index]
        del self._queue[index]
        self._dirty.discard(key)
        self._processing.add(key)
        ns = _namespace(key)
        self._busy[ns] = self._busy.get(ns, 0) + 1
        self._started_at[key] = now
        added = self._added_at.pop(key, now)
        latency = max(0.0, now - added)
        self._latencies.append(latency)
        if self._queue_latency is not None:
            self._queue_latency.observe(latency)
        self._set_depth()
        return key, latency

    def _promote_due_locked(self, now: float) -> None:
        while self._waiting and self._waiting[0][0] <= now:
            due, _, key = heapq.heappop(self._waiting)
            if self._due.get(key) == due:  # else superseded by an earlier add_after
                del self._due[key]
                # Its queue latency counts from when it became due, as client-go's does:
                # a due key moves here only when a worker asks for work, so with every
                # worker busy its wait would otherwise go unmeasured.
                self._add_locked(key, at=due)

    def done(self, key: str) -> None:
        """The worker has finished with KEY; if KEY was added meanwhile it is queued again."""
        with self._cond:
            if key in self._processing:
                ns = _namespace(key)
                left = self._busy.get(ns, 1) - 1
                if left > 0:
                    self._busy[ns] = left
                else:
                    self._busy.pop(ns, None)
                if self._max_per_namespace is not None:
                    self._cond.notify_all()  # a key of this namespace may start now
            self._processing.discard(key)
            started = self._started_at.pop(key, None)
            if started is not None and self._work_duration is not None:
                self._work_duration.observe(max(0.0, self._clock() - started))
            if key in self._dirty and not self._shutting_down:
                self._queue.append(key)
                self._set_depth()
                self._cond.notify()

    # ------------------------------------------------------------------ state

    def shutdown(self) -> None:
        """Stop handing out keys: every blocked and later :meth:`get` returns None."""
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()

    def is_shutting_down(self) -> bool:
        with self._cond:
            return self._shutting_down

    def __len__(self) -> int:
        """Keys queued now (not counting the ones waiting for a delay or being processed)."""
        with self._cond:
            self._promote_due_locked(self._clock())
            return len(self._queue)

    def waiting(self) -> int:
        """Keys waiting for a delay to pass."""
        with self._cond:
            return len(self._due)

    def processing(self) -> frozenset[str]:
        with self._cond:
            return frozenset(self._processing)

    def latencies(self) -> list[float]:
        """The most recent queue latencies (add to get), in seconds, oldest first."""
        with self._cond:
            return list(self._latencies)

    def _set_depth(self) -> None:
        if self._depth is not None:
            self._depth.set(len(self._queue))


def _namespace(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""
