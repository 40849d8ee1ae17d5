"""PromQL for an SLO, built only through :func:`controller.api.templates.render`.

Pure: no I/O. Every value substituted into a template is checked by ``render`` (label-value
safe; ``window`` a Prometheus duration), so ``service='a"} or vector(1) #'`` is refused with
a :class:`~controller.api.templates.TemplateError` before any query exists.

Windows are rounded to whole seconds (at least ``1s``) and written as ``<n>s``.

Counts from rates
-----------------
Ratio templates are rates over ``{{window}}`` (``sum(rate(x[{{window}}]))``). The number of
events in the window is that rate times the window's length in seconds: Prometheus
defines ``increase(x[w])`` as exactly ``rate(x[w]) * w`` (same samples, same
extrapolation, same handling of counter resets), so ``(sum(rate(x[300s]))) * 300`` *is*
the ``increase()``-based count ``sum(increase(x[300s]))``. We multiply rather than rewrite
``rate(`` into ``increase(`` in the user's text: that rewrite is not sound in general
(``irate(`` contains ``rate(``, a label value may too, and a template may divide or scale a
rate), whereas multiplying the whole expression by the window is correct for any template
that honours the documented contract "a rate over ``{{window}}``". Latency SLIs are built
here, so their counts are multiplied the same way.

What is queried per SLI kind (for one track)
--------------------------------------------
* ratio: ``bad`` and ``total`` counts; value = bad / total.
* latency: ``total`` = ``<h>_count`` and ``good`` = ``<h>_bucket{le="<le>"}`` counts;
  value = 1 - good / total (the share slower than ``le``). Not ``histogram_quantile``.
* throughput and gauge: ``value``, the query's own result (a rate, or the gauge).
* probe: nothing here; probes are HTTP checks (``probe.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.api import templates
from controller.api.policy import SLO, SLIKind
from controller.engine.measurements import Track
from controller.ports import QueryContext

__all__ = [
    "QueryError",
    "SLIQueries",
    "budget_queries",
    "freshness_query",
    "prom_window",
    "sli_queries",
    "template_values",
    "window_seconds_of",
]


class QueryError(ValueError):
    """The SLO cannot be turned into PromQL (wrong kind, or an unsafe template value)."""


def window_seconds_of(window_seconds: float) -> int:
    """The window rounded to whole seconds, at least one."""
    return max(1, round(window_seconds))


def prom_window(window_seconds: float) -> str:
    """A Prometheus range duration for the window: ``300s``."""
    return f"{window_seconds_of(window_seconds)}s"


def template_values(ctx: QueryContext, track: Track, window_seconds: float) -> dict[str, str]:
    """Every template variable's value; ``render`` checks each one before substituting."""
    return {
        "service": ctx.service,
        "namespace": ctx.namespace,
        "track": track.value,
        "revision": ctx.revision,
        "window": prom_window(window_seconds),
    }


@dataclass(frozen=True, slots=True)
class SLIQueries:
    """The instant queries that measure one SLI for one track over one window.

    Ratio: ``bad`` and ``total``. Latency: ``good`` and ``total`` (bad = total - good).
    Throughput and gauge: ``value``. Counts are events in the window (see the module doc).
    ``freshness`` is the denominator over a short trailing window, used by the source to
    tell live series from series that stopped reporting (``None`` when not applicable).
    """

    kind: SLIKind
    window_seconds: int
    total: str | None = None
    bad: str | None = None
    good: str | None = None
    value: str | None = None

    @property
    def text(self) -> str:
        """The queries as evidence for status: one line per query."""
        parts = [
            f"{name}: {q}"
            for name, q in (("bad", self.bad), ("good", self.good), ("total", self.total))
            if q is not None
        ]
        if self.value is not None:
            parts.append(self.value)
        return "\n".join(parts)


def _render(template: str, values: dict[str, str]) -> str:
    # ``templates.render`` checks values with ``re.match(...$)``, which lets one trailing
    # newline through; refuse it here too until that check uses ``fullmatch``.
    for name, value in values.items():
        if value != value.rstrip("\n"):
            raise QueryError(
                f"refusing to substitute {name}={value!r}: only letters, digits, '-', '_' "
                "and '.' (at most 63) are allowed in template values"
            )
    try:
        return templates.render(template, values)
    except templates.TemplateError as exc:
        raise QueryError(str(exc)) from None


def _count(rate_query: str, seconds: int) -> str:
    """Events in the window from a rate over it: ``(rate) * seconds`` (= increase)."""
    return f"({rate_query}) * {seconds}"


def _matchers(*parts: str) -> str:
    return ",".join(p.strip().strip(",") for p in parts if p.strip().strip(","))


def _latency_rates(slo: SLO, values: dict[str, str]) -> tuple[str, str]:
    """``(good rate, total rate)`` PromQL of a latency SLI."""
    lat = slo.sli.latency
    assert lat is not None
    selector = _matchers(lat.track_selector, lat.selector)
    w = values["window"]
    # The histogram name and ``le`` are pattern-checked by the API model; the selectors are
    # rendered, so their template values are checked.
    bucket = _matchers(selector, f'le="{lat.le}"')
    good = f"sum(rate({lat.histogram}_bucket{{{bucket}}}[{w}]))"
    total = f"sum(rate({lat.histogram}_count{{{selector}}}[{w}]))"
    return _render(good, values), _render(total, values)


def sli_queries(
    slo: SLO, track: Track, window_seconds: float, ctx: QueryContext
) -> SLIQueries:
    """The queries measuring ``slo`` on ``track`` over the window ending at ``ctx.at``.

    Raises :class:`QueryError` for a probe SLI (not a Prometheus query) or an unsafe value.
    """
    seconds = window_seconds_of(window_seconds)
    values = template_values(ctx, track, seconds)
    kind = slo.sli.kind
    if kind == SLIKind.RATIO:
        ratio = slo.sli.ratio
        assert ratio is not None
        return SLIQueries(
            kind=kind,
            window_seconds=seconds,
            bad=_count(_render(ratio.bad, values), seconds),
            total=_count(_render(ratio.total, values), seconds),
        )
    if kind == SLIKind.LATENCY:
        good, total = _latency_rates(slo, values)
        return SLIQueries(
            kind=kind,
            window_seconds=seconds,
            good=_count(good, seconds),
            total=_count(total, seconds),
        )
    if kind == SLIKind.THROUGHPUT:
        assert slo.sli.throughput is not None
        return SLIQueries(
            kind=kind, window_seconds=seconds, value=_render(slo.sli.throughput.query, values)
        )
    if kind == SLIKind.GAUGE:
        assert slo.sli.gauge is not None
        return SLIQueries(
            kind=kind, window_seconds=seconds, value=_render(slo.sli.gauge.query, values)
        )
    raise QueryError(f"SLO {slo.name} has a {kind} SLI: it is measured by probes, not PromQL")


def freshness_query(
    queries: SLIQueries, slo: SLO, track: Track, ctx: QueryContext, seconds: float
) -> str | None:
    """The query that carries the traffic, over only the last ``seconds`` (None: not used).

    That is the denominator (ratio: ``total``; latency: ``<h>_count``) or, for throughput and
    gauge, the query itself when it has a ``{{window}}``. A counter still being scraped has
    at least two samples in a trailing window of a few scrape intervals, so this returns a
    series (possibly 0) while the data is live, and nothing once the series stopped
    reporting, even though the full window still holds its older samples. A query without
    ``{{window}}`` reads instant samples, which Prometheus itself drops after its lookback
    (5m by default).
    """
    values = template_values(ctx, track, seconds)
    kind = queries.kind
    if kind == SLIKind.LATENCY:
        return _latency_rates(slo, values)[1]
    template = {
        SLIKind.RATIO: slo.sli.ratio.total if slo.sli.ratio else None,
        SLIKind.THROUGHPUT: slo.sli.throughput.query if slo.sli.throughput else None,
        SLIKind.GAUGE: slo.sli.gauge.query if slo.sli.gauge else None,
    }.get(kind)
    if template is None or "window" not in templates.variables(template):
        return None
    return _render(template, values)


def budget_queries(slo: SLO, ctx: QueryContext, window_seconds: float) -> list[SLIQueries]:
    """Bad-and-total (or good-and-total) counts over an SLO window, one entry per track.

    For the error budget (issue #9): budget remaining = 1 - (bad / total) / (1 - objective)
    where bad and total are **sums over the whole window** (the ratio of sums, never an
    average of ratios). Each count is ``(sum(rate(x[<window>s]))) * <window>``, which is
    ``sum(increase(x[<window>s]))`` (see the module doc for why we multiply rather than
    rewrite ``rate(`` into ``increase(``).

    The budget is the service's: canary and stable traffic together. Add the counts of the
    entries (a track with no series has no events). When the SLI's templates do not use
    ``{{track}}`` the single query already covers all traffic, so only one entry is given
    (adding two identical queries would count every event twice).
    """
    kind = slo.sli.kind
    if kind not in (SLIKind.RATIO, SLIKind.LATENCY):
        raise QueryError(f"SLO {slo.name} has a {kind} SLI, which has no error budget in PromQL")
    uses_track = any("track" in templates.variables(t) for t in slo.sli.templates().values())
    tracks = (Track.STABLE, Track.CANARY) if uses_track else (Track.STABLE,)
    return [sli_queries(slo, track, window_seconds, ctx) for track in tracks]
