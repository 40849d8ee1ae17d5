"""The probe SLI: HTTP GET a URL at an interval in a background thread, keep the results,
and report the failure ratio over a window as a ``Measurement``.

* Success is an answer with status 2xx or 3xx. Redirects are not followed (a 3xx is the
  answer), and no proxy is used: the probe measures the URL itself.
* Each probe is bounded by ``timeout`` in total (connect, headers and body: a server that
  drips its answer is cut at the deadline); the body is read up to 64 KiB and dropped.
  The URL goes through the egress check (``controller.adapters.egress``): a refused host
  is a failed probe whose error names the field and the rule.
* ``measure(window, at)``: ``value`` = failed / probes in ``(at - window, at]``,
  ``samples`` = probes, ``numerator`` = failed, ``denominator`` = probes. ``no_data`` when no
  probe finished in the window; ``stale`` when the newest probe is older than three
  intervals plus the timeout (the prober stopped or is stuck).
* A URL the egress policy refuses is never sent; its measurement is an ``error`` naming the
  field and the rule (a configuration problem holds the plan; it is not a failing canary).
* Results are kept for ``retention`` (default 7 h, enough for a 6 h burn-rate window).

Sent with :func:`controller.adapters.egress.fetch` (``http.client`` with a total deadline).
Messages carry the status or the kind of failure, never the URL's credentials or query.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.adapters.egress import DeadlineExceeded, EgressRefused, fetch
from controller.adapters.metrics.redact import safe_url
from controller.clock import SystemClock
from controller.engine.measurements import Measurement, MeasurementStatus
from controller.ports import Clock

__all__ = ["ProbeRegistry", "ProbeResult", "ProbeSpec", "Prober", "SystemClock"]

DEFAULT_RETENTION_SECONDS = 7 * 3600.0
_BODY_LIMIT = 64 * 1024



@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """What to probe and how often. ``url`` is already rendered (no template variables)."""

    url: str
    interval_seconds: float = 10.0
    timeout_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("a probe URL starts with http:// or https://")
        if self.interval_seconds <= 0 or self.timeout_seconds <= 0:
            raise ValueError("probe interval and timeout must be positive")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    at: float  # unix seconds when the probe finished
    ok: bool
    status: int | None = None  # HTTP status, None when no answer
    error: str = ""  # why it failed: "HTTP 5xx", "timed out after 2s", ...
    seconds: float = 0.0
    refused: bool = False  # not sent: the egress policy refused the URL


def _failure(exc: BaseException, timeout: float) -> str:
    reason: Any = exc
    if isinstance(reason, EgressRefused):
        return f"{reason.field}: refused by the egress policy ({reason.rule})"
    if isinstance(reason, DeadlineExceeded | TimeoutError | socket.timeout):
        return f"timed out after {timeout:g}s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if isinstance(reason, socket.gaierror):
        return "host not found"
    if isinstance(reason, ssl.SSLError):
        return "TLS error"
    if isinstance(reason, http.client.HTTPException):
        return "invalid HTTP answer"
    if isinstance(reason, OSError):
        return "connection failed"
    return "failed"


class Prober:
    """Probes one URL every ``interval`` in a daemon thread until ``stop()``."""

    def __init__(
        self,
        spec: ProbeSpec,
        *,
        clock: Clock | None = None,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        field_name: str = "spec.gates[].probe.url",
    ) -> None:
        self.spec = spec
        self.clock: Clock = clock or SystemClock()
        self.retention_seconds = retention_seconds
        self._results: deque[ProbeResult] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.field_name = field_name

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Prober:
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"probe {safe_url(self.spec.url)}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop probing; waits for an in-flight probe (at most its timeout)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(self.spec.timeout_seconds + 1.0 if timeout is None else timeout)
        self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.probe_once()
            elapsed = time.monotonic() - started
            self._stop.wait(max(0.0, self.spec.interval_seconds - elapsed))

    def probe_once(self) -> ProbeResult:
        """One GET, recorded and returned."""
        timeout = self.spec.timeout_seconds
        started = time.monotonic()
        status: int | None = None
        error = ""
        try:
            reply = fetch(self.spec.url, timeout=timeout, field_name=self.field_name,
                          headers={"User-Agent": "rolloutctl-probe"},
                          max_bytes=_BODY_LIMIT, truncate=True)
            status = reply.status  # a 3xx is the answer: redirects are not followed
        except (EgressRefused, OSError, http.client.HTTPException, ValueError) as exc:
            error = _failure(exc, timeout)
        refused = error.endswith(")") and "refused by the egress policy" in error
        ok = status is not None and 200 <= status < 400
        if status is not None and not ok:
            error = f"HTTP {status // 100}xx"  # the class only: a probe is no port scanner
        result = ProbeResult(
            at=self.clock.now().timestamp(),
            ok=ok,
            status=status,
            error=error,
            seconds=time.monotonic() - started,
            refused=refused,
        )
        self._record(result)
        return result

    def _record(self, result: ProbeResult) -> None:
        with self._lock:
            self._results.append(result)
            horizon = result.at - self.retention_seconds
            while self._results and self._results[0].at < horizon:
                self._results.popleft()

    def results(self) -> list[ProbeResult]:
        with self._lock:
            return list(self._results)

    @property
    def stale_after_seconds(self) -> float:
        return 3 * self.spec.interval_seconds + self.spec.timeout_seconds

    def measure(self, window_seconds: float, at: datetime) -> Measurement:
        """The failure ratio of the probes that finished in ``(at - window, at]``."""
        end = at.timestamp()
        start = end - window_seconds
        results = self.results()
        query = f"GET {safe_url(self.spec.url)} every {self.spec.interval_seconds:g}s"
        in_window = [r for r in results if start < r.at <= end]
        if not in_window:
            return Measurement(
                MeasurementStatus.NO_DATA,
                query=query,
                message=f"no probe finished in the last {window_seconds:g}s",
            )
        newest = max(r.at for r in results if r.at <= end)
        if end - newest > self.stale_after_seconds:
            return Measurement(
                MeasurementStatus.STALE,
                query=query,
                message=f"the newest probe is {end - newest:.0f}s old (prober stopped?)",
            )
        if in_window[-1].refused:  # a configuration error, not a failing canary
            return Measurement(MeasurementStatus.ERROR, query=query,
                               message=f"not probed: {in_window[-1].error}")
        failed = [r for r in in_window if not r.ok]
        message = ""
        if failed:
            message = f"{len(failed)} of {len(in_window)} probes failed; last: {failed[-1].error}"
        return Measurement(
            MeasurementStatus.OK,
            value=len(failed) / len(in_window),
            samples=float(len(in_window)),
            numerator=float(len(failed)),
            denominator=float(len(in_window)),
            query=query,
            message=message,
        )


class ProbeRegistry:
    """The running probers, one per spec: started on first use, stopped when no longer
    wanted (``retain``) or at shutdown (``stop_all``).

    Owners (``ns/plan`` keys): each pass of a plan states the specs it needs
    (:meth:`for_owner`); a prober no owner needs any more is stopped then, and
    :meth:`reap` stops those of owners that are gone (deleted plans, runs that ended). One
    namespace runs at most ``max_per_namespace`` probers; a spec beyond that is measured as
    an error naming the cap and never started.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        max_per_namespace: int | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.retention_seconds = retention_seconds
        self.max_per_namespace = max_per_namespace
        self._probers: dict[ProbeSpec, Prober] = {}
        self._owners: dict[str, set[ProbeSpec]] = {}
        self._refused: set[ProbeSpec] = set()
        self._lock = threading.Lock()

    def for_owner(self, owner: str, specs: Iterable[ProbeSpec]) -> ProbeRegistry:
        """OWNER needs SPECS now (and no other): probers only it needed stop; specs beyond
        the namespace's cap are refused. Returns the registry, to measure with."""
        wanted = list(dict.fromkeys(specs))
        namespace = owner.split("/", 1)[0] + "/"
        with self._lock:
            self._owners.pop(owner, None)
            mine: set[ProbeSpec] = set()
            if self.max_per_namespace is not None:
                others = {s for o, specs_ in self._owners.items() if o.startswith(namespace)
                          for s in specs_}
                for spec in wanted:
                    if spec in others or len(others | mine) < self.max_per_namespace:
                        mine.add(spec)
                        self._refused.discard(spec)
                    elif spec not in others:
                        self._refused.add(spec)
            else:
                mine = set(wanted)
            if mine:
                self._owners[owner] = mine
        self._stop_unowned()
        return self

    def reap(self, live_owners: set[str]) -> None:
        """Forget every owner not in LIVE_OWNERS and stop the probers no one needs."""
        with self._lock:
            for owner in [o for o in self._owners if o not in live_owners]:
                del self._owners[owner]
            self._refused.clear()  # judged again at the owners' next pass
        self._stop_unowned()

    def _stop_unowned(self) -> None:
        with self._lock:
            owned: set[ProbeSpec] = set().union(*self._owners.values())
            gone = [s for s in self._probers if s not in owned]
            stopping = [self._probers.pop(s) for s in gone]
        for prober in stopping:
            prober.stop(timeout=0)  # its thread ends after the in-flight probe (bounded)

    def ensure(self, spec: ProbeSpec) -> Prober:
        """The prober for ``spec``, started if it was not running."""
        with self._lock:
            prober = self._probers.get(spec)
            if prober is None:
                prober = Prober(spec, clock=self.clock, retention_seconds=self.retention_seconds)
                self._probers[spec] = prober
            return prober.start()

    def measure(self, spec: ProbeSpec, window_seconds: float, at: datetime) -> Measurement:
        """Measure ``spec`` over the window; starts its prober on first use (no data yet)."""
        if spec in self._refused:
            return Measurement(
                MeasurementStatus.ERROR, query=f"GET {safe_url(spec.url)}",
                message=f"not probed: the namespace already runs {self.max_per_namespace} "
                "probes (the controller's --max-probes-per-namespace)")
        return self.ensure(spec).measure(window_seconds, at)

    def retain(self, specs: Iterable[ProbeSpec]) -> None:
        """Stop and forget every prober whose spec is not in ``specs``."""
        wanted = set(specs)
        with self._lock:
            gone = [s for s in self._probers if s not in wanted]
            stopping = [self._probers.pop(s) for s in gone]
        for prober in stopping:
            prober.stop()

    def owners(self) -> dict[str, set[ProbeSpec]]:
        with self._lock:
            return {o: set(s) for o, s in self._owners.items()}

    def specs(self) -> list[ProbeSpec]:
        with self._lock:
            return list(self._probers)

    def stop_all(self) -> None:
        self.retain(())
