"""Gate verdicts: Pass, Fail or Inconclusive, each with a reason and its evidence.

- Pass: the objective is met and there are at least ``minSamples`` events.
- Fail: the objective is missed (``ObjectiveMissed``), a critical burn-rate alert fires on
  both windows (``FastBurn``), or the canary burns more than ``maxRatio`` times what stable
  burns (``WorseThanStable``). With fewer than ``minSamples`` events a gate fails only when
  the errors seen already miss the objective even if every missing event were good.
- Inconclusive: ``PrometheusError``, ``NoData``, ``TooFewSamples``, ``AmbiguousResult``,
  ``Stale``. Never a pass.

``failingSince`` survives Inconclusive verdicts (an outage is not a recovery) and clears
on Pass; ``inconclusiveSince`` marks the start of an unbroken Inconclusive stretch.

Fast burn (``FastBurn``) is any of:

1. the Workbook's multi-window rule: a critical alert's long window (clipped to the run)
   and its short window both burn above its factor;
2. the episode rule, which does not depend on when in the step the fault began: the alert's
   short window *and* the recent window (the last few scrape intervals, measured by the fast
   path and by every analysis) both burn above the factor at two evaluations in a row
   (``burningSince`` holds the first; any evaluation without it clears it). The short window
   proves the budget spent (as much as the factor spends over the short window), the recent
   window that it is still being spent now, the second evaluation that it is no one-off
   answer. A burn too severe to be noise acts at its first evaluation (``severe_burn``).
   A late fault is no longer diluted by the step's healthy past in the long window;
3. ``analysis.errorRatioCeiling``: the canary's bad ratio over the recent window above the
   ceiling (at least ``RECENT_MIN_EVENTS`` events), at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from controller.api.plan import Analysis, Gate, GateKind, GateReason, GateStatus, Verdict
from controller.api.policy import SLO, AlertSeverity, SLIKind
from controller.api.types import Duration
from controller.engine import budget, severe_burn
from controller.engine.measurements import GateMeasurement, Measurement, MeasurementStatus

MIN_PROBES = 3
#: events the recent window needs before the episode rule or the ceiling may fire
RECENT_MIN_EVENTS = 10

_INCONCLUSIVE_REASON = {
    MeasurementStatus.ERROR: GateReason.PROMETHEUS_ERROR,
    MeasurementStatus.NO_DATA: GateReason.NO_DATA,
    MeasurementStatus.AMBIGUOUS: GateReason.AMBIGUOUS_RESULT,
    MeasurementStatus.STALE: GateReason.STALE,
}


def initial(gate: Gate) -> GateStatus:
    return GateStatus(name=gate.name, kind=gate.kind)


def _percent_good(bad_ratio: float) -> float:
    return round(100.0 * (1.0 - bad_ratio), 6)


def _unusable(m: Measurement, track: str) -> tuple[GateReason, str] | None:
    if m.ok:
        return None
    reason = _INCONCLUSIVE_REASON.get(m.status, GateReason.NO_DATA)
    detail = f": {m.message}" if m.message else ""
    return reason, f"{track} {m.status.value.replace('_', ' ')}{detail}"


def _fast_burn(slo: SLO, m: GateMeasurement, min_samples: int) -> tuple[float, str] | None:
    """The highest firing critical alert's long-window burn rate, with a message."""
    if slo.objective is None:
        return None
    for burn in m.burn_rates:
        if burn.alert >= len(slo.burn_rate_alerts):
            continue
        alert = slo.burn_rate_alerts[burn.alert]
        if alert.severity != AlertSeverity.CRITICAL:
            continue
        if not (burn.long.ok and burn.short.ok):
            continue
        if (burn.long.samples or 0) < min_samples:
            continue
        assert burn.long.value is not None and burn.short.value is not None
        long_burn = budget.burn_rate(burn.long.value, slo.objective)
        short_burn = budget.burn_rate(burn.short.value, slo.objective)
        if budget.alert_fires(long_burn, short_burn, alert.factor):
            return long_burn, (
                f"fast burn: {long_burn:.1f}x over "
                f"{Duration.of_seconds(round(burn.long_seconds))} and {short_burn:.1f}x over "
                f"{Duration.of_seconds(round(burn.short_seconds))} exceed "
                f"{alert.factor:g}x"
            )
    return None


def judge(
    gate: Gate,
    slo: SLO | None,
    m: GateMeasurement | None,
    previous: GateStatus | None,
    analysis: Analysis,
    now: datetime,
) -> GateStatus:
    """The gate's verdict at ``now`` from this pass's measurement."""
    episode = burning(gate, slo, m, analysis.min_samples)
    burning_since = _burning_since(episode, previous, now)
    confirmed = _acting(episode, burning_since, now, m, slo)
    verdict, reason, message, evidence = _verdict(
        gate, slo, m, analysis.min_samples, _ceiling(analysis), confirmed)
    failing_since = None
    inconclusive_since = None
    prev_failing = previous.failing_since if previous is not None else None
    prev_inconclusive = previous.inconclusive_since if previous is not None else None
    if verdict == Verdict.FAIL:
        failing_since = prev_failing or now
    elif verdict == Verdict.INCONCLUSIVE:
        failing_since = prev_failing
        inconclusive_since = prev_inconclusive or now
    return GateStatus(
        name=gate.name,
        kind=gate.kind,
        verdict=verdict,
        reason=reason,
        message=message,
        evaluated_at=now,
        failing_since=failing_since,
        inconclusive_since=inconclusive_since,
        burning_since=burning_since,
        window=Duration.of_seconds(round(m.window_seconds)) if m and m.window_seconds else None,
        **evidence,
    )


def judge_fast(
    gate: Gate,
    slo: SLO | None,
    m: GateMeasurement,
    previous: GateStatus,
    analysis: Analysis,
    now: datetime,
) -> GateStatus:
    """A fast-path evaluation: only the recent and short windows are measured. A fast burn
    (episode rule confirmed, or the ceiling) fails the gate with ``FastBurn``; otherwise the
    gate keeps the verdict of its last analysis and only ``burningSince`` follows."""
    episode = burning(gate, slo, m, analysis.min_samples)
    burning_since = _burning_since(episode, previous, now)
    confirmed = _acting(episode, burning_since, now, m, slo)
    fired = _fast_fail(slo, m, _ceiling(analysis), confirmed) if slo is not None else None
    if fired is None:
        if burning_since == previous.burning_since:
            return previous
        return previous.model_copy(update={"burning_since": burning_since})
    burn, message, value = fired
    recent = m.recent
    return GateStatus(
        name=gate.name, kind=gate.kind, verdict=Verdict.FAIL, reason=GateReason.FAST_BURN,
        message=message, value=value, objective=slo.objective if slo else None,
        burn_rate=round(burn, 6),
        samples=recent.samples if recent else None,
        numerator=recent.numerator if recent else None,
        denominator=recent.denominator if recent else None,
        query=(recent.query or None) if recent else None,
        window=Duration.of_seconds(round(m.recent_seconds)) if m.recent_seconds else None,
        evaluated_at=now, failing_since=previous.failing_since or now,
        burning_since=burning_since,
    )


@dataclass(frozen=True, slots=True)
class Episode:
    """A critical alert's short window and the recent window both above its factor."""

    factor: float
    short_burn: float
    recent_burn: float
    short_seconds: float
    recent_seconds: float
    at_once: bool = False  # severe: acted at its first evaluation (``severe_burn``)


def burning(gate: Gate, slo: SLO | None, m: GateMeasurement | None,
            min_samples: int) -> Episode | None:
    """The episode rule's condition at this evaluation (see the module doc), or None."""
    if (m is None or slo is None or slo.objective is None or gate.kind != GateKind.SLO
            or m.recent is None or not m.recent.ok
            or (m.recent.samples or 0) < RECENT_MIN_EVENTS):
        return None
    assert m.recent.value is not None
    recent_burn = budget.burn_rate(m.recent.value, slo.objective)
    for burn in m.burn_rates:
        if burn.alert >= len(slo.burn_rate_alerts):
            continue
        alert = slo.burn_rate_alerts[burn.alert]
        if alert.severity != AlertSeverity.CRITICAL or not burn.short.ok:
            continue
        if (burn.short.samples or 0) < min_samples:
            continue
        assert burn.short.value is not None
        short_burn = budget.burn_rate(burn.short.value, slo.objective)
        if short_burn > alert.factor and recent_burn > alert.factor:
            return Episode(alert.factor, short_burn, recent_burn, burn.short_seconds,
                           m.recent_seconds)
    return None


def ceiling_breached(analysis: Analysis, m: GateMeasurement | None) -> bool:
    """The recent window's bad ratio is above ``analysis.errorRatioCeiling``."""
    ceiling = _ceiling(analysis)
    return ceiling is not None and m is not None and _over_ceiling(m, ceiling) is not None


def _ceiling(analysis: Analysis) -> float | None:
    c = analysis.error_ratio_ceiling
    return c.value / 100.0 if c is not None else None


def _burning_since(episode: Episode | None, previous: GateStatus | None,
                   now: datetime) -> datetime | None:
    if episode is None:
        return None
    prev = previous.burning_since if previous is not None else None
    return prev if prev is not None and prev <= now else now


def _confirmed(burning_since: datetime | None, now: datetime) -> bool:
    """Two evaluations in a row: the stretch began at an earlier one."""
    return burning_since is not None and (now - burning_since).total_seconds() >= 0.5


def _acting(episode: Episode | None, burning_since: datetime | None, now: datetime,
            m: GateMeasurement | None, slo: SLO | None) -> Episode | None:
    """The episode, when it fails the gate: confirmed at a second evaluation in a row, or
    at once when the recent window is severe (``severe_burn``)."""
    if episode is None:
        return None
    if _confirmed(burning_since, now):
        return episode
    if (m is not None and slo is not None and slo.objective is not None
            and severe_burn.is_severe(m.recent, episode.factor, slo.objective)):
        return replace(episode, at_once=True)
    return None


def _over_ceiling(m: GateMeasurement, ceiling: float) -> tuple[float, str] | None:
    r = m.recent
    if r is None or not r.ok or (r.samples or 0) < RECENT_MIN_EVENTS:
        return None
    assert r.value is not None
    if r.value <= ceiling:
        return None
    return r.value, (f"error ratio {100 * r.value:.3g}% over the last "
                     f"{Duration.of_seconds(round(m.recent_seconds))} exceeds the ceiling "
                     f"{100 * ceiling:g}% (analysis.errorRatioCeiling)")


def _episode_message(e: Episode, since: str = "") -> str:
    when = (f"; {severe_burn.SEVERE_MULTIPLE:g}x the threshold or more: severe, at once"
            if e.at_once else " at two evaluations in a row")
    return (f"fast burn: {e.short_burn:.1f}x over "
            f"{Duration.of_seconds(round(e.short_seconds))} and {e.recent_burn:.1f}x over the "
            f"last {Duration.of_seconds(round(e.recent_seconds))} exceed {e.factor:g}x"
            f"{when}{since}")


def _fast_fail(slo: SLO, m: GateMeasurement, ceiling: float | None,
               episode: Episode | None) -> tuple[float, str, float | None] | None:
    """(burn rate, message, percent good) of a fast-path failure: the ceiling first, then a
    confirmed episode."""
    if ceiling is not None:
        over = _over_ceiling(m, ceiling)
        if over is not None:
            burn = (budget.burn_rate(over[0], slo.objective) if slo.objective is not None
                    else 0.0)
            return burn, over[1], _percent_good(over[0])
    if episode is not None:
        value = m.recent.value if m.recent is not None else None
        return (episode.short_burn, _episode_message(episode),
                _percent_good(value) if value is not None else None)
    return None


Evidence = dict[str, float | str | None]


def _verdict(
    gate: Gate, slo: SLO | None, m: GateMeasurement | None, min_samples: int,
    ceiling: float | None = None, episode: Episode | None = None,
) -> tuple[Verdict, GateReason, str, Evidence]:
    if m is None:
        return Verdict.INCONCLUSIVE, GateReason.NO_DATA, "not measured", {}
    c = m.canary
    evidence: Evidence = {
        "query": c.query or None,
        "samples": c.samples,
        "numerator": c.numerator,
        "denominator": c.denominator,
    }
    if gate.kind == GateKind.PROBE:
        assert gate.probe is not None
        return _ratio_verdict(c, gate.probe.objective, MIN_PROBES, evidence, "probes")
    if slo is None:
        return Verdict.INCONCLUSIVE, GateReason.NO_DATA, "SLO not found in the policy", evidence
    if gate.kind == GateKind.CANARY_VS_STABLE:
        assert gate.canary_vs_stable is not None
        return _versus_stable(slo, m, gate.canary_vs_stable.max_ratio, min_samples, evidence)

    kind = slo.sli.kind
    if kind == SLIKind.THROUGHPUT:
        return _throughput_verdict(slo, c, evidence)
    if kind == SLIKind.GAUGE:
        return _gauge_verdict(slo, c, evidence)

    # ratio, latency, probe SLIs: judged by the bad ratio against the error budget
    assert slo.objective is not None
    fast = _fast_burn(slo, m, min_samples)
    if fast is None:
        extra = _fast_fail(slo, m, ceiling, episode)
        fast = (extra[0], extra[1]) if extra is not None else None
    if fast is not None:
        evidence |= {"burn_rate": round(fast[0], 6), "objective": slo.objective}
        if c.ok and c.value is not None:
            evidence["value"] = _percent_good(c.value)
        return Verdict.FAIL, GateReason.FAST_BURN, fast[1], evidence
    return _ratio_verdict(c, slo.objective, min_samples, evidence, "events")


Judged = tuple[Verdict, GateReason, str, Evidence]


def _throughput_verdict(slo: SLO, c: Measurement, evidence: Evidence) -> Judged:
    assert slo.sli.throughput is not None
    bad = _unusable(c, "canary")
    if bad:
        return Verdict.INCONCLUSIVE, bad[0], bad[1], evidence
    assert c.value is not None
    minimum = slo.sli.throughput.min
    evidence |= {"value": c.value, "objective": minimum}
    if c.value >= minimum:
        return Verdict.PASS, GateReason.OBJECTIVE_MET, f"{c.value:g}/s >= {minimum:g}/s", (
            evidence)
    return Verdict.FAIL, GateReason.OBJECTIVE_MISSED, f"{c.value:g}/s < {minimum:g}/s", (
        evidence)


def _gauge_verdict(slo: SLO, c: Measurement, evidence: Evidence) -> Judged:
    g = slo.sli.gauge
    assert g is not None
    bad = _unusable(c, "canary")
    if bad:
        return Verdict.INCONCLUSIVE, bad[0], bad[1], evidence
    assert c.value is not None
    evidence |= {"value": c.value, "objective": g.max if g.max is not None else g.min}
    missed = GateReason.OBJECTIVE_MISSED
    if g.max is not None and g.exclusive_max and c.value >= g.max:
        return Verdict.FAIL, missed, f"{c.value:g} >= {g.max:g} (must stay below)", evidence
    if g.max is not None and c.value > g.max:
        return Verdict.FAIL, missed, f"{c.value:g} > max {g.max:g}", evidence
    if g.min is not None and c.value < g.min:
        return Verdict.FAIL, missed, f"{c.value:g} < min {g.min:g}", evidence
    return Verdict.PASS, GateReason.OBJECTIVE_MET, f"{c.value:g} within bounds", evidence


def _ratio_verdict(
    c: Measurement, objective: float, min_samples: int, evidence: Evidence, unit: str
) -> tuple[Verdict, GateReason, str, Evidence]:
    bad = _unusable(c, "canary")
    if bad:
        return Verdict.INCONCLUSIVE, bad[0], bad[1], evidence
    assert c.value is not None
    allowed = 1.0 - objective / 100.0
    samples = c.samples or 0.0
    burn = c.value / allowed if allowed > 0 else None
    evidence |= {
        "value": _percent_good(c.value),
        "objective": objective,
        "burn_rate": round(burn, 6) if burn is not None else None,
    }
    good = f"{_percent_good(c.value):g}% good"
    if samples < min_samples:
        errors = c.numerator if c.numerator is not None else c.value * samples
        if min_samples > 0 and errors / min_samples > allowed:
            return Verdict.FAIL, GateReason.OBJECTIVE_MISSED, (
                f"{errors:g} bad {unit} already miss {objective:g}% even at {min_samples} {unit}"
            ), evidence
        return Verdict.INCONCLUSIVE, GateReason.TOO_FEW_SAMPLES, (
            f"{samples:g} {unit} in the window, need {min_samples}"
        ), evidence
    if c.value <= allowed:
        return Verdict.PASS, GateReason.OBJECTIVE_MET, f"{good} >= {objective:g}%", evidence
    return Verdict.FAIL, GateReason.OBJECTIVE_MISSED, f"{good} < {objective:g}%", evidence


def _versus_stable(
    slo: SLO, m: GateMeasurement, max_ratio: float, min_samples: int, evidence: Evidence
) -> tuple[Verdict, GateReason, str, Evidence]:
    c, s = m.canary, m.stable
    if s is None:
        return Verdict.INCONCLUSIVE, GateReason.NO_DATA, "stable not measured", evidence
    for track, meas in (("canary", c), ("stable", s)):
        bad = _unusable(meas, track)
        if bad:
            return Verdict.INCONCLUSIVE, bad[0], bad[1], evidence
    assert c.value is not None and s.value is not None and slo.objective is not None
    canary_burn = budget.burn_rate(c.value, slo.objective)
    stable_burn = budget.burn_rate(s.value, slo.objective)
    evidence |= {
        "value": round(canary_burn, 6),
        "stable_value": round(stable_burn, 6),
        "burn_rate": round(canary_burn, 6),
        "objective": max_ratio,
    }
    for track, meas in (("canary", c), ("stable", s)):
        if (meas.samples or 0) < min_samples:
            return Verdict.INCONCLUSIVE, GateReason.TOO_FEW_SAMPLES, (
                f"{meas.samples or 0:g} {track} events in the window, need {min_samples}"
            ), evidence
    limit = max(max_ratio * stable_burn, 1.0)
    if canary_burn <= limit:
        return Verdict.PASS, GateReason.OBJECTIVE_MET, (
            f"canary burns {canary_burn:.2f}x, stable {stable_burn:.2f}x (limit {limit:.2f}x)"
        ), evidence
    return Verdict.FAIL, GateReason.WORSE_THAN_STABLE, (
        f"canary burns {canary_burn:.2f}x, more than {max_ratio:g} x stable's "
        f"{stable_burn:.2f}x and more than the budget allows"
    ), evidence
