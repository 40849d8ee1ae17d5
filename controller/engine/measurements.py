"""What a metrics source reports: measurements are data, never exceptions.

A ``Measurement`` carries a status (ok, no data, error, ambiguous, stale) and, when ok,
the value with its evidence. For ratio-like SLIs (ratio, latency, probe) ``value`` is the
*bad* ratio in [0, 1] (errors / requests, slower-than-``le`` / requests, failed probes /
probes) and ``samples`` the number of events in the window; for throughput it is the rate
per second and for gauge the value itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class MeasurementStatus(StrEnum):
    OK = "ok"
    NO_DATA = "no_data"
    ERROR = "error"
    AMBIGUOUS = "ambiguous"
    STALE = "stale"


class Track(StrEnum):
    CANARY = "canary"
    STABLE = "stable"


@dataclass(frozen=True, slots=True)
class Measurement:
    status: MeasurementStatus
    value: float | None = None
    samples: float | None = None
    numerator: float | None = None
    denominator: float | None = None
    query: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == MeasurementStatus.OK and self.value is not None


@dataclass(frozen=True, slots=True)
class BurnRateMeasurement:
    """The canary's bad ratio over one burn-rate alert's long and short windows."""

    alert: int  # index into the SLO's burnRateAlerts
    long: Measurement
    short: Measurement
    long_seconds: float
    short_seconds: float


@dataclass(frozen=True, slots=True)
class GateMeasurement:
    """This pass's measurements for one gate, over the evaluation window."""

    gate: str
    canary: Measurement
    stable: Measurement | None = None
    burn_rates: tuple[BurnRateMeasurement, ...] = field(default_factory=tuple)
    window_seconds: float = 0.0
    # the canary over the fast path's recent window (a few scrape intervals): is it burning
    # right now? (the fast-burn episode rule and ``analysis.errorRatioCeiling``)
    recent: Measurement | None = None
    recent_seconds: float = 0.0


#: a window the fast path does not measure (the alert's long window)
NOT_MEASURED = Measurement(MeasurementStatus.NO_DATA, message="not measured by the fast path")
