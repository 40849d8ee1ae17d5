"""Leader election on a Lease, judged on this replica's monotonic clock (as client-go does).

* A replica **acquires** the Lease when nobody holds it (no holder: it was released) or when
  the record has stayed unchanged, as observed here, for longer than its
  ``leaseDurationSeconds``. The wall-clock ``renewTime`` in the Lease is for people and
  tools; clocks of different machines are never compared.
* The leader **renews** every ``retry_period`` and **gives up** (``on_stopped_leading``)
  when no renewal has succeeded for ``renew_deadline``. :meth:`LeaderElector.is_leader` is
  computed from the clock on each call, so it turns False at the deadline even while the
  elector's thread is stuck in a slow API call.
* **Why two replicas never both lead:** a renewal counts from the moment its request was
  *sent*, and a standby's lease-duration wait starts no earlier than the moment the server
  wrote that renewal; the renew deadline (10 s) is shorter than the lease duration (15 s),
  so the leader stops at least 5 s before anyone else may start. Every write carries the
  resourceVersion it was based on, so of two replicas acting on one read only one wins.
* :meth:`LeaderElector.stop` steps down first (``on_stopped_leading``, where the manager
  drains its workers) and then **releases** the Lease (no holder, duration 1 s), so a
  standby takes over on its next attempt instead of waiting out the lease.

``kubernetes.leaderelection`` (client 37.x) is not used: it measures expiry and the renew
deadline with ``time.time()`` (a wall-clock jump can make two leaders), calls ``sys.exit``
on a bad configuration, cannot be stopped, never releases the Lease, takes no timeout on
its API calls, and builds its API object from the global default configuration.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from controller.clock import SystemClock
from controller.errors import Conflict, ControllerError, Permanent
from controller.ports import Clock, LeaseRecord, LeaseStore

__all__ = ["ElectionTimings", "LeaderElector", "LeaseStore", "SystemClock"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ElectionTimings:
    """client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("lease_duration must be longer than renew_deadline")
        if not self.renew_deadline > self.retry_period > 0:
            raise ValueError("renew_deadline must be longer than retry_period, which is > 0")
        if self.lease_duration < 1:
            raise ValueError("lease_duration must be at least 1 s (the Lease stores seconds)")


Callback = Callable[[], None]


class LeaderElector:
    """One candidate for one Lease. :meth:`start` runs it in a thread; :meth:`step` is one
    attempt (what the thread does every retry period), for tests with a fake clock."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        timings: ElectionTimings | None = None,
        *,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        on_new_leader: Callable[[str], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not identity:
            raise ValueError("a leader-election identity must not be empty")
        self.identity = identity
        self.timings = timings or ElectionTimings()
        self._store = store
        self._clock: Clock = clock or SystemClock()
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._lock = threading.RLock()
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0  # monotonic: when the observed record last changed
        self._leading = False
        self._renewed_at = 0.0  # monotonic: when the last successful write was *sent*
        self._last_contact: float | None = None  # monotonic: last successful API call
        self._problem = ""  # why the last attempt failed, for /readyz ("" after a success)
        self._leader = ""
        self._stop = threading.Event()
        self._release_on_stop = True
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ queries

    def is_leader(self) -> bool:
        """True while this replica may act: it holds the Lease and renewed it less than
        ``renew_deadline`` ago (on the monotonic clock)."""
        with self._lock:
            return self._leading and (
                self._clock.monotonic() - self._renewed_at < self.timings.renew_deadline
            )

    def leader(self) -> str:
        """The identity of the leader last observed ("" when none is known)."""
        with self._lock:
            return self._leader

    def is_healthy(self) -> bool:
        """Leading, or a standby that reached the API server within the renew deadline (the
        same patience a leader gets before it must step down)."""
        with self._lock:
            if self.is_leader():
                return True
            return self._last_contact is not None and (
                self._clock.monotonic() - self._last_contact < self.timings.renew_deadline
            )

    def problem(self) -> str:
        """Why the last attempt to read or write the Lease failed ("" if it did not)."""
        with self._lock:
            return self._problem

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ one attempt

    def step(self) -> float:
        """Try to acquire or renew once, step down if the renew deadline has passed, fire
        the callbacks; returns the seconds to wait before the next step."""
        success = self._try_acquire_or_renew()
        with self._lock:
            now = self._clock.monotonic()
            was_leading = self._leading
            lost_deadline = now - self._renewed_at >= self.timings.renew_deadline
            held_by_other = (
                self._observed is not None
                and self._observed.holder_identity not in ("", self.identity)
            )
            if success and not was_leading:
                self._leading = True
                started = True
                stopped = False
            elif was_leading and not success and (lost_deadline or held_by_other):
                self._leading = False
                started = False
                stopped = True
            else:
                started = stopped = False
            wait = self._next_wait(now)
        if started:
            log.info("leader election: %s started leading", self.identity)
            self._call(self._on_started, "on_started_leading")
        if stopped:
            log.warning("leader election: %s stopped leading (%s)", self.identity,
                        "another replica holds the Lease" if held_by_other
                        else "renew deadline passed")
            self._call(self._on_stopped, "on_stopped_leading")
        return wait

    def _next_wait(self, now: float) -> float:
        retry = self.timings.retry_period
        observed = self._observed
        if self._leading or observed is None or not observed.holder_identity or self._problem:
            return retry  # (after a failed attempt too: never spin against a down API server)
        # a standby looks again exactly when the holder's lease would expire, if sooner
        expires_in = self._observed_at + observed.lease_duration_seconds - now
        return min(retry, max(0.0, expires_in) + 0.01)

    def _try_acquire_or_renew(self) -> bool:
        sent = self._clock.monotonic()
        wall = self._clock.now()
        try:
            current = self._store.get()
        except ControllerError as exc:
            self._failed(exc)
            return False
        read_at = self._clock.monotonic()
        with self._lock:
            new_leader = self._observe(current) if current is not None else None
        self._announce(new_leader)
        duration = max(1, round(self.timings.lease_duration))
        if current is None:
            record = LeaseRecord(self.identity, duration, wall, wall, 0)
            return self._write(self._store.create, record, sent, read_at)
        if current.holder_identity and current.holder_identity != self.identity:
            with self._lock:
                expired = (
                    self._clock.monotonic() - self._observed_at
                    > current.lease_duration_seconds
                )
            if not expired:  # a healthy standby
                with self._lock:
                    self._last_contact = read_at
                    self._problem = ""
                return False
        if current.holder_identity == self.identity:
            record = replace(current, renew_time=wall, lease_duration_seconds=duration)
        else:
            record = replace(
                current,
                holder_identity=self.identity,
                lease_duration_seconds=duration,
                acquire_time=wall,
                renew_time=wall,
                lease_transitions=current.lease_transitions + 1,
            )
        return self._write(self._store.update, record, sent, read_at)

    def _write(self, write: Callable[[LeaseRecord], LeaseRecord], record: LeaseRecord,
               sent: float, read_at: float) -> bool:
        try:
            written = write(record)
        except ControllerError as exc:
            if isinstance(exc, Conflict):  # a lost race is not a problem
                with self._lock:
                    self._last_contact = read_at
                    self._problem = ""
            else:
                self._failed(exc, read_at)
            return False
        with self._lock:
            self._last_contact = self._clock.monotonic()
            self._problem = ""
            new_leader = self._observe(written)
            self._renewed_at = sent
        self._announce(new_leader)
        return True

    def _failed(self, exc: ControllerError, read_at: float | None = None) -> None:
        """An attempt failed with EXC (after a successful read at READ_AT, if any)."""
        with self._lock:
            self._problem = exc.message
            if isinstance(exc, Permanent):  # e.g. forbidden, no such namespace: not healthy
                self._last_contact = None
            elif read_at is not None:
                self._last_contact = read_at
        level = logging.WARNING if isinstance(exc, Permanent) else logging.INFO
        log.log(level, "leader election: %s: %s", self.identity, exc.message)

    def _observe(self, record: LeaseRecord) -> str | None:
        """Remember RECORD (lock held); its lease-duration wait starts now if it changed.
        Returns the holder when it is a new leader."""
        if self._observed is None or record.resource_version != self._observed.resource_version:
            self._observed = record
            self._observed_at = self._clock.monotonic()
        holder = record.holder_identity
        if holder == self._leader:
            return None
        self._leader = holder
        return holder or None

    def _announce(self, new_leader: str | None) -> None:
        if not new_leader:
            return
        log.info("leader election: the leader is now %s", new_leader)
        if self._on_new_leader is not None:
            try:
                self._on_new_leader(new_leader)
            except Exception as exc:
                log.error("leader election: on_new_leader raised %s", type(exc).__name__)

    def _call(self, callback: Callback | None, name: str) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception as exc:  # a callback's failure must not stop the election
            log.error("leader election: %s raised %s", name, type(exc).__name__)

    # ------------------------------------------------------------------ stepping down

    def release(self) -> bool:
        """Step down (``on_stopped_leading``) and give the Lease up (no holder, 1 s), if we
        hold it. True when the Lease was released."""
        with self._lock:
            was_leading = self._leading
            self._leading = False
            observed = self._observed
        if was_leading:
            log.info("leader election: %s stepping down", self.identity)
            self._call(self._on_stopped, "on_stopped_leading")
        if observed is None or observed.holder_identity != self.identity:
            return False
        wall = self._clock.now()
        record = replace(
            observed, holder_identity="", lease_duration_seconds=1,
            acquire_time=wall, renew_time=wall,
        )
        try:
            written = self._store.update(record)
        except ControllerError as exc:
            log.info("leader election: could not release the Lease: %s", exc.reason)
            return False
        with self._lock:
            self._observe(written)
        log.info("leader election: %s released the Lease", self.identity)
        return True

    # ------------------------------------------------------------------ the thread

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a LeaderElector is started once")
        self._thread = threading.Thread(
            target=self._run, name=f"leader-elector-{self.identity}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.step()
            except Exception as exc:  # keep electing whatever a store does
                log.error("leader election: step failed: %s", type(exc).__name__)
                wait = self.timings.retry_period
            self._pause(wait)
        if self._release_on_stop:
            self.release()

    def _pause(self, seconds: float) -> None:
        """Wait SECONDS; a standby wakes early when the Lease changes (a release is taken
        over at once, and a renewal is observed when it is written, not at the next poll)."""
        with self._lock:
            observed = None if self._leading else self._observed
        if observed is None or seconds <= 0 or self._stop.is_set():
            self._stop.wait(seconds)
            return
        started = self._clock.monotonic()
        try:
            self._store.wait_for_change(observed.resource_version, seconds)
        except ControllerError as exc:
            log.debug("leader election: cannot watch the Lease: %s", exc.reason)
            left = seconds - (self._clock.monotonic() - started)
            self._stop.wait(max(0.0, left))

    def stop(self, timeout: float = 10.0) -> None:
        """Step down, release the Lease and end the thread (the SIGTERM path)."""
        self._stop.set()
        self._store.cancel_wait()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self.release()

    def abandon(self, timeout: float = 10.0) -> None:
        """End the thread without stepping down or releasing: what a crash (SIGKILL) looks
        like to the other replicas. :meth:`is_leader` still turns False at the deadline."""
        self._release_on_stop = False
        self._stop.set()
        self._store.cancel_wait()
        if self._thread is not None:
            self._thread.join(timeout)
