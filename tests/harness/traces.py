"""Synthetic Prometheus histories for backfill, with their ground truth.

A :class:`Trace` describes one service over a time range: for each track (``canary``,
``stable``) a :class:`TrackShape` gives the request rate, the error ratio and the latency
distribution as functions of time, plus series that vanish, counter resets and a memory
gauge. :meth:`Trace.series` turns it into the cumulative series an instrumented service
exposes, sampled every ``step`` seconds, as ``tests.harness.prometheus.Series`` ready
for ``backfill`` / the ``prometheus_backfilled`` fixture (``promtool tsdb
create-blocks-from openmetrics``):

* ``http_requests_total{service,track,code}`` (counter; ``code`` 200 or ``error_code``)
* ``http_request_duration_seconds_bucket{service,track,le}``, ``_count`` and ``_sum``
* ``process_resident_memory_bytes{service,track}`` (gauge, when the shape sets it)

The histogram parts are written as three gauge families, because ``Series`` of
``tests.harness.prometheus`` has counter and gauge types only (its ``untyped`` is not
valid OpenMetrics for promtool 2.42, which wants ``unknown``). PromQL ignores metric types,
so ``rate()`` and ``increase()`` treat them exactly as scraped histogram series.

Counts are deterministic: each step's events are the expected number (rate x step) carried
over between steps, so a trace holds exactly the events it promises and
:meth:`Trace.truth` returns them for any interval. ``noise`` adds seeded random variation
to the rate (``seed``), still deterministic.

Time in shapes is seconds since the trace's ``start``. ``start`` is unix seconds.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tests.harness.prometheus import Series, write_openmetrics

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_LATENCY",
    "Counts",
    "Trace",
    "TrackShape",
    "after",
    "between",
    "series_of",
]

Shape = float | Callable[[float], float]
LatencyShape = Mapping[float, float] | Callable[[float], Mapping[float, float]]

DEFAULT_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0, 2.5)
# Cumulative share of requests at or under each bound: 98 % under 200 ms.
DEFAULT_LATENCY: Mapping[float, float] = {
    0.05: 0.50, 0.1: 0.80, 0.2: 0.98, 0.5: 0.995, 1.0: 0.999, 2.5: 1.0,
}


def after(t0: float, value: float, before: float = 0.0) -> Callable[[float], float]:
    """``before`` until ``t0`` seconds, ``value`` from then on (a step function)."""
    return lambda t: value if t >= t0 else before


def between(t0: float, t1: float, value: float, otherwise: float = 0.0) -> Callable[[float], float]:
    """``value`` in ``[t0, t1)``, ``otherwise`` elsewhere (a blip)."""
    return lambda t: value if t0 <= t < t1 else otherwise


def _at(shape: Shape, t: float) -> float:
    return float(shape(t)) if callable(shape) else float(shape)


@dataclass(frozen=True)
class TrackShape:
    """How one track behaves over time (``t`` = seconds since the trace's start).

    ``latency`` maps bucket bounds to the cumulative share of requests at or under them
    (bounds not listed are interpolated from the next listed one, the largest is 1.0).
    ``absent`` lists ``[from, to)`` intervals without any sample (``to`` may be ``inf``:
    the series vanish). ``resets`` are times when the process restarts and every counter
    starts again from 0. With ``lazy_error_series`` the ``code=<error_code>`` series
    appears only with the first error, as client libraries create label children on first
    use; otherwise it is exported (as 0) from the start.
    """

    rate: Shape = 10.0
    error_ratio: Shape = 0.0
    latency: LatencyShape = field(default_factory=lambda: dict(DEFAULT_LATENCY))
    absent: Sequence[tuple[float, float]] = ()
    resets: Sequence[float] = ()
    memory_bytes: Shape | None = None
    lazy_error_series: bool = False
    noise: float = 0.0

    def present(self, t: float) -> bool:
        return not any(a <= t < b for a, b in self.absent)


@dataclass(frozen=True)
class Counts:
    """Events in an interval: requests, errors and requests at or under each bound."""

    requests: int
    errors: int
    at_or_under: Mapping[float, int]

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    def slow_ratio(self, le: float) -> float:
        """Share of requests slower than ``le`` (the latency SLI's bad ratio)."""
        if not self.requests:
            return math.nan
        return 1.0 - self.at_or_under[le] / self.requests


@dataclass
class _Cumulative:
    """Per-step cumulative counts of one track (ground truth, never reset)."""

    times: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    buckets: list[list[int]] = field(default_factory=list)  # [step][bucket]
    duration_sum: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Trace:
    """One service's history: ``tracks`` by name (``canary``, ``stable``)."""

    service: str
    start: float
    duration: float
    tracks: Mapping[str, TrackShape]
    step: float = 15.0
    seed: int = 0
    buckets: Sequence[float] = DEFAULT_BUCKETS
    error_code: str = "500"
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    _memo: dict[str, _Cumulative] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.step <= 0 or self.duration < 0:
            raise ValueError("step must be positive and duration not negative")
        if list(self.buckets) != sorted(self.buckets):
            raise ValueError("buckets must be sorted")

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def times(self) -> list[float]:
        """Sample times: ``start``, ``start + step``, ... up to ``end`` inclusive."""
        n = math.floor(self.duration / self.step + 1e-9)
        return [self.start + i * self.step for i in range(n + 1)]

    # ------------------------------------------------------------------ simulation

    def _shares(self, shape: TrackShape, t: float) -> list[float]:
        latency = shape.latency(t) if callable(shape.latency) else shape.latency
        known = sorted(latency.items())
        out = []
        for le in self.buckets:
            share = next((s for bound, s in known if bound >= le), 1.0)
            out.append(min(1.0, max(0.0, share)))
        for i in range(1, len(out)):  # cumulative shares never decrease
            out[i] = max(out[i], out[i - 1])
        return out

    def _simulate(self, name: str) -> _Cumulative:
        if name not in self._memo:
            self._memo[name] = self._run(name)
        return self._memo[name]

    def _run(self, name: str) -> _Cumulative:
        shape = self.tracks[name]
        rng = random.Random(f"{self.seed}:{self.service}:{name}")
        out = _Cumulative()
        requests = errors = 0
        exp_requests = exp_errors = 0.0
        exp_buckets = [0.0] * len(self.buckets)
        duration_sum = 0.0
        for i, ts in enumerate(self.times):
            t = ts - self.start
            n = 0
            if i > 0:
                rate = max(0.0, _at(shape.rate, t))
                if shape.noise:
                    rate *= max(0.0, 1.0 + shape.noise * rng.gauss(0.0, 1.0))
                exp_requests += rate * self.step
                n = math.floor(exp_requests + 1e-9) - requests
            requests += n
            ratio = min(1.0, max(0.0, _at(shape.error_ratio, t)))
            exp_errors += n * ratio
            errors = min(requests, math.floor(exp_errors + 1e-9))
            shares = self._shares(shape, t)
            previous = out.buckets[-1] if out.buckets else [0] * len(self.buckets)
            counts = []
            for b, share in enumerate(shares):
                exp_buckets[b] += n * share
                counts.append(min(requests, math.floor(exp_buckets[b] + 1e-9)))
            # the sum of durations: each new request at its bucket's midpoint, those
            # over the largest bound at twice that bound
            new_at_or_under = [counts[b] - previous[b] for b in range(len(counts))]
            lower, below = 0.0, 0
            for b, le in enumerate(self.buckets):
                duration_sum += (new_at_or_under[b] - below) * (lower + le) / 2
                lower, below = le, new_at_or_under[b]
            duration_sum += (n - below) * 2 * (self.buckets[-1] if self.buckets else 1.0)
            out.times.append(ts)
            out.requests.append(requests)
            out.errors.append(errors)
            out.buckets.append(counts)
            out.duration_sum.append(duration_sum)
        return out

    def truth(self, track: str, t0: float, t1: float) -> Counts:
        """Events of ``track`` in ``(t0, t1]`` (unix seconds), at the trace's step."""
        c = self._simulate(track)

        def index(t: float) -> int:  # the last sample at or before t, -1 before the first
            return bisect.bisect_right(c.times, t + 1e-9) - 1

        i0, i1 = index(t0), index(t1)
        if i1 < 0:
            return Counts(0, 0, dict.fromkeys(self.buckets, 0))
        r0 = c.requests[i0] if i0 >= 0 else 0
        e0 = c.errors[i0] if i0 >= 0 else 0
        b0 = c.buckets[i0] if i0 >= 0 else [0] * len(self.buckets)
        return Counts(
            requests=c.requests[i1] - r0,
            errors=c.errors[i1] - e0,
            at_or_under={
                le: c.buckets[i1][b] - b0[b] for b, le in enumerate(self.buckets)
            },
        )

    # ------------------------------------------------------------------ series

    def series(self) -> list[Series]:
        """The exposed series of every track, as a scraper would have stored them."""
        out: list[Series] = []
        for name in self.tracks:
            out.extend(self._track_series(name))
        return out

    def _track_series(self, name: str) -> list[Series]:
        shape = self.tracks[name]
        c = self._simulate(name)
        base = {**self.extra_labels, "service": self.service, "track": name}
        ok: list[tuple[float, float]] = []
        bad: list[tuple[float, float]] = []
        count: list[tuple[float, float]] = []
        total_sum: list[tuple[float, float]] = []
        buckets: list[list[tuple[float, float]]] = [[] for _ in self.buckets]
        inf: list[tuple[float, float]] = []
        memory: list[tuple[float, float]] = []
        resets = sorted(shape.resets)
        # Offsets subtracted from the truth since the latest reset (the restarted process
        # counts from 0 again).
        base_req = base_err = 0
        base_sum = 0.0
        base_buckets = [0] * len(self.buckets)
        next_reset = 0
        error_seen = not shape.lazy_error_series
        for i, ts in enumerate(c.times):
            t = ts - self.start
            while next_reset < len(resets) and resets[next_reset] <= t and i > 0:
                # the restart happened just after the previous sample
                base_req, base_err = c.requests[i - 1], c.errors[i - 1]
                base_sum = c.duration_sum[i - 1]
                base_buckets = list(c.buckets[i - 1])
                next_reset += 1
                if shape.lazy_error_series:
                    error_seen = False
            req = c.requests[i] - base_req
            err = c.errors[i] - base_err
            if err > 0:
                error_seen = True
            if not shape.present(t):
                continue
            ok.append((ts, req - err))
            if error_seen:
                bad.append((ts, err))
            count.append((ts, req))
            inf.append((ts, req))
            total_sum.append((ts, round(c.duration_sum[i] - base_sum, 6)))
            for b in range(len(self.buckets)):
                buckets[b].append((ts, c.buckets[i][b] - base_buckets[b]))
            if shape.memory_bytes is not None:
                memory.append((ts, _at(shape.memory_bytes, t)))
        requests = "http_requests_total"
        hist = "http_request_duration_seconds"
        out = [Series(requests, ok, {**base, "code": "200"}, type="counter")]
        if bad:
            out.append(Series(requests, bad, {**base, "code": self.error_code}, type="counter"))
        for b, le in enumerate(self.buckets):
            out.append(Series(f"{hist}_bucket", buckets[b], {**base, "le": _le(le)}))
        out.append(Series(f"{hist}_bucket", inf, {**base, "le": "+Inf"}))
        out.append(Series(f"{hist}_count", count, base))
        out.append(Series(f"{hist}_sum", total_sum, base))
        if memory:
            out.append(Series("process_resident_memory_bytes", memory, base))
        return [s for s in out if s.samples]

    def openmetrics(self) -> str:
        return write_openmetrics(self.series())


def _le(bound: float) -> str:
    """A bucket bound as client libraries write it: ``0.2``, ``1.0``, ``2.5``."""
    return repr(float(bound))


def series_of(traces: Iterable[Trace]) -> list[Series]:
    """The series of several traces, for one backfill."""
    out: list[Series] = []
    for trace in traces:
        out.extend(trace.series())
    return out
