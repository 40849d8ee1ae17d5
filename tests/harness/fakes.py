"""Fakes of one layer each, for unit tests of the reconciler (never the end-to-end proof)."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.engine.observation import MISSING, WorkloadState
from controller.errors import Conflict

#: where a FakeClock starts when not told
CLOCK_START = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """The one fake clock of the tests (``controller.ports.Clock``, and a plain
    ``Callable[[], float]`` of monotonic seconds for the work queue): it moves only when
    told, or when the code under test sleeps or waits with a timeout on it (``sleep``,
    ``wait``: the time passes at once instead). Unit tests never sleep."""

    def __init__(self, start: datetime = CLOCK_START, monotonic: float = 1000.0) -> None:
        self._now = start
        self._mono = monotonic
        self._changed = threading.Condition()
        self.blocked = 0  #: threads in ``wait`` without a timeout (blocked until notified)

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def __call__(self) -> float:
        return self._mono

    def time(self) -> float:
        """Wall-clock seconds since the epoch (``time.time``)."""
        return self._now.timestamp()

    def advance(self, seconds: float) -> None:
        """Both clocks move on by SECONDS."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def advance_to(self, monotonic: float) -> None:
        """The monotonic clock reads exactly MONOTONIC (the wall clock moves alike)."""
        self._now += timedelta(seconds=monotonic - self._mono)
        self._mono = monotonic

    def step_wall(self, seconds: float) -> None:
        """Only the wall clock jumps (an NTP step, a VM resumed); monotonic time does not."""
        self._now += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        """``time.sleep`` on this clock: the time passes at once."""
        self.advance(max(0.0, seconds))

    def wait(self, cond: threading.Condition, timeout: float | None) -> bool:
        """``cond.wait(timeout)`` on this clock (COND held by the caller): with a timeout
        the time passes at once and the wait times out (the caller looks again); without
        one the thread really blocks until notified (see :meth:`until_blocked`)."""
        if timeout is not None:
            self.advance(max(0.0, timeout))
            return False
        with self._changed:
            self.blocked += 1
            self._changed.notify_all()
        try:
            return cond.wait()
        finally:
            with self._changed:
                self.blocked -= 1

    def until_blocked(self, threads: int, deadline_seconds: float = 30.0) -> bool:
        """Wait until THREADS threads are blocked in :meth:`wait` (True), or give up after
        DEADLINE_SECONDS of real time (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.blocked >= threads, deadline_seconds)


class MemoryStore:
    """Objects with resourceVersion semantics: a stale status write raises Conflict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.version = 0
        self.writes = 0
        self._lock = threading.Lock()

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.version += 1
            obj = copy.deepcopy(obj)
            meta = obj["metadata"]
            meta["resourceVersion"] = str(self.version)
            meta.setdefault("uid", f"uid-{meta['name']}")
            meta.setdefault("generation", 1)
            self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
            return copy.deepcopy(obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def write_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        with self._lock:
            current = self.objects.get((obj["kind"], meta["namespace"], meta["name"]))
            if current is None or current["metadata"]["resourceVersion"] != meta[
                    "resourceVersion"]:
                raise Conflict("stale resourceVersion")
            self.version += 1
            self.writes += 1
            current["status"] = copy.deepcopy(status)
            current["metadata"]["resourceVersion"] = str(self.version)
            return copy.deepcopy(current)

    def update_spec(self, kind: str, namespace: str, name: str, **spec: Any) -> None:
        with self._lock:
            current = self.objects[(kind, namespace, name)]
            current["spec"].update(copy.deepcopy(spec))
            self.version += 1
            current["metadata"]["resourceVersion"] = str(self.version)
            current["metadata"]["generation"] += 1


@dataclass
class FakeWorkloads:
    """Deployments that become ready at once (or after ``ready_after`` observations)."""

    states: dict[tuple[str, str], WorkloadState] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def set(self, namespace: str, name: str, state: WorkloadState) -> None:
        self.states[(namespace, name)] = state

    def observe(self, namespace: str, name: str) -> WorkloadState:
        return self.states.get((namespace, name), MISSING)

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        self.calls.append(("scale", name, str(replicas)))
        s = self.states[(namespace, name)]
        self.states[(namespace, name)] = replace(s, replicas=replicas, ready_replicas=replicas,
                                                 updated_replicas=replicas)

    def promote(self, namespace: str, stable: str, canary: str) -> None:
        self.calls.append(("promote", stable, canary))
        s = self.states[(namespace, stable)]
        self.states[(namespace, stable)] = replace(
            s, revision=self.states[(namespace, canary)].revision)


class RecordingEvents:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, str, str]] = []
        self.names: set[str] = set()

    def record(self, obj: dict[str, Any], seq: int, run: int, type_: str, reason: str,
               message: str, at: datetime) -> None:
        name = f"{obj['metadata']['name']}.{run}.{seq}"
        if name in self.names:  # the API server's AlreadyExists
            return
        self.names.add(name)
        self.events.append((obj["metadata"]["name"], seq, type_, reason))
