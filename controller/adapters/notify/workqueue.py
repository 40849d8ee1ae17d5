"""A keyed work queue in the controller-runtime manner, small enough for the notifier.

A key queued twice is processed once; a key is never processed by two workers at once (a
key added while being processed is queued again when its worker is done); keys can be
added after a delay; the number of distinct waiting keys is bounded; with ``group`` and
``max_per_group``, at most that many keys of one group (a namespace: one tenant) are
processed at once, so one tenant's slow endpoints cannot hold every worker. ``add`` takes a lock
and appends: it never waits for a worker.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyQueue(Generic[K]):
    def __init__(self, maxsize: int = 1000, *, group: Callable[[K], str] | None = None,
                 max_per_group: int | None = None) -> None:
        self._maxsize = maxsize
        self._group = group
        self._max_per_group = max_per_group if group is not None else None
        self._busy: dict[str, int] = {}
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._delayed_due: dict[K, float] = {}
        self._seq = itertools.count()
        self._shutdown = False

    def add(self, key: K) -> bool:
        """Queue KEY now; False when the queue is full (the key is not queued)."""
        with self._cond:
            return self._add_locked(key)

    def _add_locked(self, key: K) -> bool:
        if self._shutdown:
            return False
        if key in self._dirty:
            return True
        if len(self._dirty) >= self._maxsize:
            return False
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()
        return True

    def add_after(self, key: K, delay: float) -> None:
        """Queue KEY after DELAY seconds (the earliest of several requests wins)."""
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        with self._cond:
            if self._shutdown:
                return
            current = self._delayed_due.get(key)
            if current is not None and current <= due:
                return
            self._delayed_due[key] = due
            heapq.heappush(self._delayed, (due, next(self._seq), key))
            self._cond.notify_all()

    def get(self) -> K | None:
        """The next key to process (blocks); None once shut down."""
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                self._promote_due_locked()
                index = self._eligible_locked()
                if index is not None:
                    key = self._queue[index]
                    del self._queue[index]
                    self._dirty.discard(key)
                    self._processing.add(key)
                    if self._group is not None:
                        g = self._group(key)
                        self._busy[g] = self._busy.get(g, 0) + 1
                    return key
                timeout = None
                if self._delayed:
                    timeout = max(0.0, self._delayed[0][0] - time.monotonic())
                self._cond.wait(timeout)

    def _eligible_locked(self) -> int | None:
        if not self._queue:
            return None
        if self._max_per_group is None or self._group is None:
            return 0
        for i, key in enumerate(self._queue):
            if self._busy.get(self._group(key), 0) < self._max_per_group:
                return i
        return None

    def _promote_due_locked(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            due, _, key = heapq.heappop(self._delayed)
            if self._delayed_due.get(key) == due:
                del self._delayed_due[key]
                self._add_locked(key)

    def done(self, key: K) -> None:
        with self._cond:
            if key in self._processing and self._group is not None:
                g = self._group(key)
                left = self._busy.get(g, 1) - 1
                if left > 0:
                    self._busy[g] = left
                else:
                    self._busy.pop(g, None)
                self._cond.notify_all()
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()
            else:
                self._cond.notify_all()  # wake idle waiters

    def idle(self) -> bool:
        """Nothing queued now and nothing being processed (delayed keys may wait)."""
        with self._cond:
            self._promote_due_locked()
            return not self._queue and not self._processing

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._promote_due_locked()
                if not self._queue and not self._processing:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))

    def __len__(self) -> int:
        with self._cond:
            return len(self._dirty) + len(self._delayed_due)

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
