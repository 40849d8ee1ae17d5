"""What to measure for a plan's gates in one analysis pass: the reconciler and
``rolloutctl simulate`` both call :func:`measure_gates`. It measures; it does not judge
(verdicts are the engine's, ``controller.engine.verdicts``).

Per gate:

* ``slo``: the canary over the evaluation window and, for each *critical* burn-rate alert
  of the SLO, the canary's bad ratio over the alert's long and short windows, each clipped
  to the time since the run started (DESIGN.md: a long window longer than the run so far is
  clipped to the run's start, the best estimate available).
* ``canaryVsStable``: canary and stable over the evaluation window.
* ``probe``: the probe's failure ratio over the evaluation window.

SLOs whose SLI is a probe are measured by probes too (the URL rendered per track). Without
a :class:`ProbeRegistry` (the simulator replays history; probes have none) probe
measurements are ``error`` with a message saying so: never a pass.

Within one call each (SLO, track, window) is measured once, even when several gates need it,
and a source that can measure several at once (``measure_all``, as ``PrometheusSource``
does with one batched request) gets them all in one call.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.adapters.metrics.probe import ProbeRegistry, ProbeSpec
from controller.adapters.metrics.queries import template_values
from controller.api import templates
from controller.api.plan import Gate, GateKind, RolloutPlan
from controller.api.policy import SLO, AlertSeverity, SLOPolicy
from controller.engine.measurements import (
    BurnRateMeasurement,
    GateMeasurement,
    Measurement,
    MeasurementStatus,
    Track,
)
from controller.ports import BatchingSource, MetricsSource, QueryContext

__all__ = ["measure_gates", "probe_specs"]

#: the recent window of the fast-burn episode rule and the ceiling: 3 fast intervals of 10 s
DEFAULT_RECENT_SECONDS = 30.0

NO_PROBES = "probes are not run here (no probe runner): a probe gate cannot pass"


_PENDING = Measurement(MeasurementStatus.ERROR, message="not measured yet")


def _error(message: str) -> Measurement:
    return Measurement(MeasurementStatus.ERROR, message=message)


def _render_url(url: str, ctx: QueryContext, track: Track) -> str:
    return templates.render(url, template_values(ctx, track, 1))


def _gate_probe_spec(gate: Gate, ctx: QueryContext) -> ProbeSpec:
    probe = gate.probe
    assert probe is not None
    return ProbeSpec(
        url=_render_url(probe.url, ctx, Track.CANARY),
        interval_seconds=probe.interval.seconds,
        timeout_seconds=probe.timeout.seconds,
    )


def _slo_probe_spec(slo: SLO, ctx: QueryContext, track: Track) -> ProbeSpec:
    probe = slo.sli.probe
    assert probe is not None
    return ProbeSpec(
        url=_render_url(probe.url, ctx, track),
        interval_seconds=probe.interval.seconds,
        timeout_seconds=probe.timeout.seconds,
    )


def probe_specs(plan: RolloutPlan, policy: SLOPolicy | None, ctx: QueryContext) -> list[ProbeSpec]:
    """Every probe the plan's gates need now (for ``ProbeRegistry.retain``)."""
    specs: list[ProbeSpec] = []
    for gate in plan.spec.gates:
        try:
            if gate.kind == GateKind.PROBE:
                specs.append(_gate_probe_spec(gate, ctx))
                continue
            slo = policy.spec.slo(gate.slo_name) if policy and gate.slo_name else None
            if slo is None or slo.sli.probe is None:
                continue
            tracks = [Track.CANARY]
            if gate.kind == GateKind.CANARY_VS_STABLE:
                tracks.append(Track.STABLE)
            specs.extend(_slo_probe_spec(slo, ctx, t) for t in tracks)
        except (templates.TemplateError, ValueError):
            continue
    return list(dict.fromkeys(specs))


def measure_gates(
    source: MetricsSource,
    plan: RolloutPlan,
    policy: SLOPolicy | None,
    ctx: QueryContext,
    window_seconds: float,
    run_seconds: float,
    probes: ProbeRegistry | None = None,
    recent_seconds: float = DEFAULT_RECENT_SECONDS,
) -> list[GateMeasurement]:
    """This pass's measurements for every gate of ``plan``, in the plan's order.

    ``window_seconds`` is the evaluation window, already clipped by the caller so it never
    reaches back before the current step started; ``run_seconds`` is the time since the
    run started (burn-rate windows are clipped to it). Evaluation time is ``ctx.at``.
    """
    run = max(1.0, run_seconds)
    window = max(1.0, min(window_seconds, run))
    recent = max(1.0, min(recent_seconds, run))
    ceiling = plan.spec.analysis.error_ratio_ceiling is not None
    memo: dict[tuple[str, Track, int], Measurement] = {}
    if isinstance(source, BatchingSource):
        # First learn what the gates will ask for, then measure it all at once.
        wanted: dict[tuple[str, Track, int], tuple[SLO, Track, float]] = {}

        def want(slo: SLO, track: Track, seconds: float) -> Measurement:
            if slo.sli.probe is None:
                wanted.setdefault((slo.name, track, round(seconds)), (slo, track, seconds))
            return _PENDING

        for gate in plan.spec.gates:
            _measure_gate(gate, policy, ctx, window, run, probes, want, recent, ceiling)
        if wanted:
            memo.update(zip(wanted, source.measure_all(list(wanted.values()), ctx),
                            strict=True))

    def measure(slo: SLO, track: Track, seconds: float) -> Measurement:
        key = (slo.name, track, round(seconds))
        if key not in memo:
            memo[key] = _measure_slo(source, slo, track, seconds, ctx, probes)
        return memo[key]

    out: list[GateMeasurement] = []
    for gate in plan.spec.gates:
        out.append(_measure_gate(gate, policy, ctx, window, run, probes, measure, recent,
                                 ceiling))
    return out


def _measure_gate(
    gate: Gate,
    policy: SLOPolicy | None,
    ctx: QueryContext,
    window: float,
    run: float,
    probes: ProbeRegistry | None,
    measure: Callable[[SLO, Track, float], Measurement],
    recent: float = DEFAULT_RECENT_SECONDS,
    ceiling: bool = False,
) -> GateMeasurement:
    if gate.kind == GateKind.PROBE:
        return GateMeasurement(
            gate=gate.name, canary=_measure_probe_gate(gate, ctx, window, probes),
            window_seconds=window,
        )
    name = gate.slo_name
    assert name is not None
    slo = policy.spec.slo(name) if policy is not None else None
    if slo is None:
        where = f"SLOPolicy {policy.metadata.name}" if policy is not None else "no SLOPolicy"
        return GateMeasurement(
            gate=gate.name, canary=_error(f"SLO {name} not found ({where})"),
            window_seconds=window,
        )
    canary = measure(slo, Track.CANARY, window)
    if gate.kind == GateKind.CANARY_VS_STABLE:
        return GateMeasurement(
            gate=gate.name, canary=canary, stable=measure(slo, Track.STABLE, window),
            window_seconds=window,
        )
    burn_rates = []
    for i, alert in enumerate(slo.burn_rate_alerts):
        if alert.severity != AlertSeverity.CRITICAL:
            continue
        long_s = min(alert.long.seconds, run)
        short_s = min(alert.short.seconds, run)
        burn_rates.append(BurnRateMeasurement(
            alert=i,
            long=measure(slo, Track.CANARY, long_s),
            short=measure(slo, Track.CANARY, short_s),
            long_seconds=long_s,
            short_seconds=short_s,
        ))
    wants_recent = (burn_rates or ceiling) and slo.objective is not None
    return GateMeasurement(
        gate=gate.name, canary=canary, burn_rates=tuple(burn_rates), window_seconds=window,
        recent=measure(slo, Track.CANARY, recent) if wants_recent else None,
        recent_seconds=recent if wants_recent else 0.0,
    )


def _measure_probe_gate(
    gate: Gate, ctx: QueryContext, window: float, probes: ProbeRegistry | None
) -> Measurement:
    if probes is None:
        return _error(NO_PROBES)
    try:
        spec = _gate_probe_spec(gate, ctx)
    except (templates.TemplateError, ValueError) as exc:
        return _error(f"not probed: {exc}")
    return probes.measure(spec, window, ctx.at)


def _measure_slo(
    source: MetricsSource,
    slo: SLO,
    track: Track,
    seconds: float,
    ctx: QueryContext,
    probes: ProbeRegistry | None,
) -> Measurement:
    if slo.sli.probe is None:
        return source.measure(slo, track, seconds, ctx)
    if probes is None:
        return _error(NO_PROBES)
    try:
        spec = _slo_probe_spec(slo, ctx, track)
    except (templates.TemplateError, ValueError) as exc:
        return _error(f"not probed: {exc}")
    return probes.measure(spec, seconds, ctx.at)
