"""The fast path's measurements: many plans' canaries with one query per SLO template.

Every few seconds (``rolloutctl run --fast-interval``) the fast path measures, for every
plan at a step, what must never wait for the next analysis: each SLO gate's canary over the
*recent* window (a few fast intervals) and over the short window of each of the SLO's
critical burn-rate alerts (clipped to the run, like an analysis: see :func:`ladder`). The
engine judges them (``verdicts.judge_fast``); this module
only measures.

Plans that share an SLO template share its queries. A template whose plan-specific
variables appear only as equality matchers (``service="{{service}}"``, likewise
``namespace`` and ``revision``) and whose outer aggregation is ``sum(...)`` is rewritten
once per window::

    sum(rate(http_requests_total{service="{{service}}",track="{{track}}",code=~"5.."}[{{window}}]))
    -> (sum by (service, track) (rate(http_requests_total{track="canary",code=~"5.."}[30s]))) * 30

and each plan reads its own series from the answer (by the labels its values fill). No plan
value is ever written into the query. Every group's counts (bad and total, or good and
total) go out in one batched request (``PrometheusSource.query_vectors``). A template that
cannot be rewritten that way is measured per plan (``measure_all``), as analyses are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.adapters.metrics.queries import prom_window, window_seconds_of
from controller.api.plan import GateKind, RolloutPlan
from controller.api.policy import SLO, AlertSeverity, SLIKind, SLOPolicy
from controller.engine.measurements import (
    NOT_MEASURED,
    BurnRateMeasurement,
    GateMeasurement,
    Measurement,
    MeasurementStatus,
    Track,
)
from controller.ports import IntervalSource, QueryContext, VectorSource

__all__ = ["Cadence", "FastTarget", "GroupedQuery", "ScrapeIntervals", "best_phase",
           "fast_interval_from", "group_query", "measure_fast", "typical_scrape_interval"]

#: the fast interval when no Prometheus in use has told its scrape interval
DEFAULT_FAST_INTERVAL = 10.0
#: a learned scrape interval is clamped to this range (a 1-minute scrape still gets a
#: check every 10 s: the recent window then holds the last scrape)
FAST_INTERVAL_RANGE = (1.0, 10.0)

_MATCHER_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"\{\{\s*(\w+)\s*\}\}"')
_PER_PLAN = ("service", "namespace", "revision")


@dataclass(frozen=True, slots=True)
class Cadence:
    """When the fast path measures: every ``interval`` seconds, at Unix times congruent to
    ``phase`` modulo the interval (just after the targets' scrapes are in), or at any phase."""

    interval: float
    phase: float | None = None


class ScrapeIntervals:
    """The default cadence, learned from the Prometheus servers the fast path queries: the
    interval from ``fast_interval_from``, and when that is the scrape interval itself, the
    phase that puts each round just after the scrapes are in (``best_phase``): a round
    started just before a scrape lands would see the failure a whole interval later.
    Each server is asked once, then every ``every`` seconds; a call costs nothing in
    between. None until a server in use has been asked."""

    def __init__(self, sources: Callable[[], Iterable[IntervalSource]],
                 monotonic: Callable[[], float], every: float = 600.0) -> None:
        self.sources = sources
        self.monotonic = monotonic
        self.every = every
        # url -> (asked at, typical interval, the ready times of its targets at it)
        self._seen: dict[str, tuple[float, float | None, list[float]]] = {}

    def __call__(self) -> Cadence | None:
        now = self.monotonic()
        urls = []
        for source in self.sources():
            urls.append(source.url)
            seen = self._seen.get(source.url)
            if seen is None or now - seen[0] >= self.every:
                timing = source.scrape_timing() or []
                typical = typical_scrape_interval([i for i, _ in timing])
                ready = [r for i, r in timing if i == typical and r is not None]
                self._seen[source.url] = (now, typical, ready)
        if not urls:
            return None
        interval = fast_interval_from([self._seen[u][1] for u in urls])
        ready = [r for u in urls if self._seen[u][1] == interval for r in self._seen[u][2]]
        return Cadence(interval, best_phase(ready, interval) if ready else None)


def best_phase(ready: Sequence[float], interval: float, margin: float = 0.1) -> float:
    """The phase (Unix seconds modulo INTERVAL) of a round that waits least, on average,
    for the latest scrape of each target to be in (READY: when one was), plus MARGIN of the
    interval for clocks that differ a little. With one target, just after its scrapes; with
    targets spread over the interval, any phase is as good."""
    step = max(1, len(ready) // 200)
    points = [r % interval for r in ready[::step]]
    best, cost = 0.0, float("inf")
    for p in points:
        c = (p + margin * interval) % interval
        total = sum((c - q) % interval for q in points)
        if total < cost:
            best, cost = c, total
    return best


@dataclass(frozen=True, slots=True)
class FastTarget:
    """One plan the fast path measures now."""

    key: str
    plan: RolloutPlan
    policy: SLOPolicy

    @property
    def values(self) -> dict[str, str]:
        return {"service": self.plan.spec.service_name,
                "namespace": self.plan.metadata.namespace,
                "revision": self.plan.status.revision or "none", "track": Track.CANARY.value}


@dataclass(frozen=True, slots=True)
class GroupedQuery:
    """A template rewritten for all plans: the query, and which label holds which variable."""

    expr: str
    labels: tuple[tuple[str, str], ...]  # (label, variable)

    def key_of(self, values: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(values[var] for _, var in self.labels)


def group_query(template: str, seconds: int) -> GroupedQuery | None:
    """The counts of TEMPLATE (a rate over ``{{window}}``) over SECONDS for every plan at
    once, or None when the template is not of the shape described in the module doc."""
    text = template.strip()
    if not (text.startswith("sum(") and _closes_at_end(text, 3)):
        return None
    labels: list[tuple[str, str]] = []

    def matcher(m: re.Match[str]) -> str:
        label, var = m.group(1), m.group(2)
        if var == "track":
            labels.append((label, var))
            return f'{label}="{Track.CANARY.value}"'
        if var in _PER_PLAN:
            labels.append((label, var))
            return ""
        return m.group(0)

    body = _MATCHER_RE.sub(matcher, text[4:-1])
    body = re.sub(r"\{\s*,", "{", body)
    body = re.sub(r",\s*,", ",", body)
    body = re.sub(r",\s*\}", "}", body)
    rest = re.findall(r"\{\{\s*(\w+)\s*\}\}", body)
    if any(v != "window" for v in rest) or len({lab for lab, _ in labels}) != len(labels):
        return None  # a variable used other than as a matcher, or one label twice
    body = re.sub(r"\{\{\s*window\s*\}\}", prom_window(seconds), body)
    by = ", ".join(lab for lab, _ in labels)
    return GroupedQuery(f"(sum by ({by}) ({body})) * {seconds}", tuple(labels))


def _closes_at_end(text: str, open_at: int) -> bool:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i == len(text) - 1
    return False


def _count_templates(slo: SLO) -> tuple[str, str, bool] | None:
    """(numerator, total, numerator counts good events) templates of a ratio or latency SLI."""
    if slo.sli.kind == SLIKind.RATIO and slo.sli.ratio is not None:
        return slo.sli.ratio.bad, slo.sli.ratio.total, False
    if slo.sli.kind == SLIKind.LATENCY and slo.sli.latency is not None:
        lat = slo.sli.latency
        sel = ",".join(p.strip().strip(",") for p in (lat.track_selector, lat.selector)
                       if p.strip().strip(","))
        bucket = ",".join(p for p in (sel, f'le="{lat.le}"') if p)
        return (f"sum(rate({lat.histogram}_bucket{{{bucket}}}[{{{{window}}}}]))",
                f"sum(rate({lat.histogram}_count{{{sel}}}[{{{{window}}}}]))", True)
    return None


def ladder(short_seconds: float, recent_seconds: float) -> list[int]:
    """The window sizes a short window is measured at, largest first: the short window,
    then halves of it down to the recent window. A plan whose run is younger than the short
    window reads the largest size its run covers (as an analysis clips the window to the
    run), so a fixed set of sizes still serves every plan with one query each."""
    sizes = [window_seconds_of(short_seconds)]
    while sizes[-1] // 2 >= recent_seconds:
        sizes.append(sizes[-1] // 2)
    return sizes


def fast_windows(slo: SLO, recent_seconds: float, ceiling: bool,
                 run_seconds: float = float("inf")) -> list[tuple[int, float]]:
    """(alert index or -1 for the recent window, seconds) the fast path measures for a plan
    whose run started RUN_SECONDS ago."""
    out: list[tuple[int, float]] = []
    if run_seconds < recent_seconds:
        return out  # the window would reach into the previous run's traffic
    critical = [(i, a.short.seconds) for i, a in enumerate(slo.burn_rate_alerts)
                if a.severity == AlertSeverity.CRITICAL]
    if critical or ceiling:
        out.append((-1, recent_seconds))
    for i, short in critical:
        fits = [w for w in ladder(short, recent_seconds) if w <= run_seconds]
        out.append((i, float(fits[0]) if fits else recent_seconds))
    return out


def measure_fast(source: VectorSource, targets: Sequence[FastTarget], at: datetime,
                 recent_seconds: float) -> dict[str, tuple[GateMeasurement, ...]]:
    """Each target's fast measurements (plan key -> one per SLO gate that has any)."""
    # (template, total template, good?, seconds) -> grouped queries; then per target
    groups: dict[tuple[str, str, bool, int], tuple[GroupedQuery, GroupedQuery] | None] = {}
    plans: list[tuple[FastTarget, str, SLO, list[tuple[int, float]]]] = []
    counted: dict[int, tuple[str, str, bool] | None] = {}  # id(SLO) -> its count templates

    def count_templates(slo: SLO) -> tuple[str, str, bool] | None:
        # the policies are parsed once per version: many plans share one SLO object
        found = counted.get(id(slo), counted)
        if found is counted:
            found = counted[id(slo)] = _count_templates(slo)
        return found  # type: ignore[return-value]
    for t in targets:
        ceiling = t.plan.spec.analysis.error_ratio_ceiling is not None
        for gate in t.plan.spec.gates:
            if gate.kind != GateKind.SLO or gate.slo_name is None:
                continue
            slo = t.policy.spec.slo(gate.slo_name)
            if slo is None or slo.objective is None or count_templates(slo) is None:
                continue
            started = t.plan.status.run_started_at
            run = (at - started).total_seconds() if started is not None else float("inf")
            windows = fast_windows(slo, recent_seconds, ceiling, run)
            if not windows:
                continue
            plans.append((t, gate.name, slo, windows))
            num, total, good = count_templates(slo)  # type: ignore[misc]
            for _, secs in windows:
                gk = (num, total, good, window_seconds_of(secs))
                if gk not in groups:
                    a, b = group_query(num, gk[3]), group_query(total, gk[3])
                    groups[gk] = (a, b) if a is not None and b is not None else None
    exprs = list(dict.fromkeys(q.expr for g in groups.values() if g for q in g))
    answers = dict(zip(exprs, source.query_vectors(exprs, at.timestamp()), strict=True))
    indexed: dict[str, dict[tuple[str, ...], float] | None] = {}
    for g in groups.values():
        for q in g or ():
            if q.expr not in indexed:
                indexed[q.expr] = _index(q, answers.get(q.expr))

    out: dict[str, list[GateMeasurement]] = {}
    for t, gate_name, slo, windows in plans:
        num, total, good = count_templates(slo)  # type: ignore[misc]
        by_window: dict[int, Measurement] = {}
        fallback: list[tuple[SLO, Track, float]] = []
        for _, secs in windows:
            seconds = window_seconds_of(secs)
            g = groups[(num, total, good, seconds)]
            if g is None:
                fallback.append((slo, Track.CANARY, float(seconds)))
                continue
            by_window[seconds] = _measurement(g, indexed, t.values, good)
        if fallback:
            ctx = QueryContext(service=t.plan.spec.service_name,
                               namespace=t.plan.metadata.namespace,
                               revision=t.plan.status.revision or "none", at=at)
            for (_, _, secs), m in zip(fallback, source.measure_all(fallback, ctx),
                                       strict=True):
                by_window[window_seconds_of(secs)] = m
        recent = by_window.get(window_seconds_of(recent_seconds))
        burns = tuple(
            BurnRateMeasurement(alert=i, long=NOT_MEASURED,
                                short=by_window[window_seconds_of(secs)],
                                long_seconds=0.0, short_seconds=float(window_seconds_of(secs)))
            for i, secs in windows if i >= 0)
        out.setdefault(t.key, []).append(GateMeasurement(
            gate=gate_name, canary=NOT_MEASURED, burn_rates=burns, recent=recent,
            recent_seconds=float(window_seconds_of(recent_seconds)) if recent else 0.0))
    return {k: tuple(v) for k, v in out.items()}


def _index(q: GroupedQuery, result: list[dict[str, Any]] | None
           ) -> dict[tuple[str, ...], float] | None:
    if result is None:
        return None
    out: dict[tuple[str, ...], float] = {}
    for series in result:
        metric = series.get("metric") or {}
        try:
            value = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        out[tuple(str(metric.get(label, "")) for label, _ in q.labels)] = value
    return out


def _measurement(g: tuple[GroupedQuery, GroupedQuery],
                 indexed: Mapping[str, dict[tuple[str, ...], float] | None],
                 values: Mapping[str, str], good: bool) -> Measurement:
    num_q, total_q = g
    nums, totals = indexed.get(num_q.expr), indexed.get(total_q.expr)
    if nums is None or totals is None:
        return Measurement(MeasurementStatus.ERROR, query=total_q.expr,
                           message="the fast path's query failed")
    total = totals.get(total_q.key_of(values))
    if total is None or total != total or total <= 0:
        return Measurement(MeasurementStatus.NO_DATA, query=total_q.expr,
                           message="no canary traffic in the window")
    num = nums.get(num_q.key_of(values))
    if num is None or num != num:
        if good:
            return Measurement(MeasurementStatus.NO_DATA, query=total_q.expr,
                               message="no bucket with this le")
        num = 0.0
    bad = max(0.0, total - num) if good else max(0.0, num)
    return Measurement(MeasurementStatus.OK, value=min(1.0, bad / total), samples=total,
                       numerator=bad, denominator=total,
                       query=f"{num_q.expr}\n{total_q.expr}")


def typical_scrape_interval(intervals: Sequence[float]) -> float | None:
    """The scrape interval most of one Prometheus's active targets have (the smaller one
    on a tie), or None without any: a few special jobs do not set it."""
    counts: dict[float, int] = {}
    for seconds in intervals:
        if seconds > 0 and seconds == seconds:
            counts[seconds] = counts.get(seconds, 0) + 1
    if not counts:
        return None
    return min(counts, key=lambda v: (-counts[v], v))


def fast_interval_from(typical: Sequence[float | None]) -> float:
    """The default fast interval from each Prometheus in use's typical scrape interval:
    the largest of them (an SLOPolicy's Prometheus can slow the fast path down to the
    default, never speed it up for every plan), clamped to ``FAST_INTERVAL_RANGE``;
    ``DEFAULT_FAST_INTERVAL`` when none is known."""
    known = [t for t in typical if t is not None]
    if not known:
        return DEFAULT_FAST_INTERVAL
    low, high = FAST_INTERVAL_RANGE
    return min(high, max(low, max(known)))
