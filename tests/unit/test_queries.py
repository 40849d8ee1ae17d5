"""PromQL built from an SLO: what Prometheus is asked, for each SLI kind, track and window."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.adapters.metrics.queries import (
    QueryError,
    budget_queries,
    freshness_query,
    prom_window,
    sli_queries,
)
from controller.api.policy import SLO, SLIKind
from controller.engine.measurements import Track
from controller.ports import QueryContext

CTX = QueryContext(
    service="checkout", namespace="shop", revision="7d9f8c", at=datetime(2026, 1, 1, tzinfo=UTC)
)

BAD = (
    'sum(rate(http_requests_total{service="{{service}}",track="{{track}}",code=~"5.."}'
    "[{{window}}]))"
)
TOTAL = 'sum(rate(http_requests_total{service="{{service}}",track="{{track}}"}[{{window}}]))'


def slo(sli: dict[str, Any], **extra: Any) -> SLO:
    return SLO.model_validate({"name": "s", "objective": 99.9, "sli": sli, **extra})


RATIO = slo({"ratio": {"bad": BAD, "total": TOTAL}})
LATENCY = slo({"latency": {"histogram": "http_request_duration_seconds", "le": "0.2",
                           "selector": 'handler="/api/auth/login"'}})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(300, "300s"), (299.6, "300s"), (90.4, "90s"), (0.2, "1s"), (0, "1s"), (2592000, "2592000s")],
)
def test_windows_are_whole_seconds_and_at_least_one(seconds: float, text: str) -> None:
    assert prom_window(seconds) == text


def test_ratio_counts_are_the_rates_times_the_window() -> None:
    q = sli_queries(RATIO, Track.CANARY, 300, CTX)
    assert q.kind == SLIKind.RATIO and q.window_seconds == 300
    assert q.bad == (
        '(sum(rate(http_requests_total{service="checkout",track="canary",code=~"5.."}[300s])))'
        " * 300"
    )
    assert q.total == (
        '(sum(rate(http_requests_total{service="checkout",track="canary"}[300s]))) * 300'
    )
    assert q.good is None and q.value is None
    assert q.text.splitlines() == [f"bad: {q.bad}", f"total: {q.total}"]


@pytest.mark.parametrize("track", [Track.CANARY, Track.STABLE])
def test_each_track_is_queried_with_its_own_label(track: Track) -> None:
    q = sli_queries(RATIO, track, 60, CTX)
    assert q.total is not None and f'track="{track.value}"' in q.total
    other = Track.STABLE if track == Track.CANARY else Track.CANARY
    assert f'track="{other.value}"' not in q.total


def test_latency_is_the_bucket_ratio_not_a_quantile() -> None:
    q = sli_queries(LATENCY, Track.CANARY, 120, CTX)
    selector = 'service="checkout",track="canary",handler="/api/auth/login"'
    assert q.good == (
        f'(sum(rate(http_request_duration_seconds_bucket{{{selector},le="0.2"}}[120s]))) * 120'
    )
    assert q.total == (
        f"(sum(rate(http_request_duration_seconds_count{{{selector}}}[120s]))) * 120"
    )
    assert q.bad is None
    assert "histogram_quantile" not in q.text


def test_latency_without_selector_and_with_a_custom_track_selector() -> None:
    s = slo({"latency": {"histogram": "db_query_duration_seconds", "le": "+Inf",
                         "trackSelector": 'app="{{service}}",rollout_track="{{track}}"'}})
    q = sli_queries(s, Track.STABLE, 60, CTX)
    assert q.good == (
        '(sum(rate(db_query_duration_seconds_bucket{app="checkout",rollout_track="stable",'
        'le="+Inf"}[60s]))) * 60'
    )
    assert q.total == (
        '(sum(rate(db_query_duration_seconds_count{app="checkout",rollout_track="stable"}'
        "[60s]))) * 60"
    )


@pytest.mark.parametrize(
    ("sli", "expected"),
    [
        ({"throughput": {"query": 'sum(rate(tasks_total{service="{{service}}",'
                                  'track="{{track}}"}[{{window}}]))', "min": 20}},
         'sum(rate(tasks_total{service="checkout",track="canary"}[45s]))'),
        ({"gauge": {"query": 'max(process_resident_memory_bytes{namespace="{{namespace}}",'
                             'revision="{{revision}}"})', "max": 1e9}},
         'max(process_resident_memory_bytes{namespace="shop",revision="7d9f8c"})'),
    ],
)
def test_throughput_and_gauge_ask_for_the_query_itself(sli: dict[str, Any], expected: str) -> None:
    q = sli_queries(slo(sli, objective=None), Track.CANARY, 45, CTX)
    assert q.value == expected
    assert q.bad is None and q.good is None and q.total is None
    assert q.text == expected


def test_a_probe_sli_is_not_promql() -> None:
    s = slo({"probe": {"url": "http://{{service}}.{{namespace}}:8080/healthz"}})
    with pytest.raises(QueryError, match="probe"):
        sli_queries(s, Track.CANARY, 60, CTX)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("service", 'a"} or vector(1) #'),
        ("service", "a\"}[5m]) or on() vector(1)"),
        ("namespace", "shop\n"),
        ("revision", "x{y}"),
        ("service", "a" * 64),
    ],
)
def test_unsafe_values_are_refused_before_a_query_exists(field: str, value: str) -> None:
    values: dict[str, Any] = {field: value}
    ctx = dataclasses.replace(CTX, **values)
    gauge = slo({"gauge": {"query": 'up{namespace="{{namespace}}",rev="{{revision}}"}',
                           "max": 1}}, objective=None)
    for s in (RATIO, LATENCY, gauge):
        with pytest.raises(QueryError, match="refusing to substitute"):
            sli_queries(s, Track.CANARY, 60, ctx)


def test_a_template_naming_an_unknown_variable_is_refused() -> None:
    s = slo({"ratio": {"bad": "sum(rate(x{pod=\"{{pod}}\"}[{{window}}]))", "total": TOTAL}})
    with pytest.raises(QueryError, match="unknown template variable"):
        sli_queries(s, Track.CANARY, 60, CTX)


def test_freshness_is_the_denominator_over_a_short_window() -> None:
    q = sli_queries(RATIO, Track.CANARY, 300, CTX)
    assert freshness_query(q, RATIO, Track.CANARY, CTX, 180) == (
        'sum(rate(http_requests_total{service="checkout",track="canary"}[180s]))'
    )
    lq = sli_queries(LATENCY, Track.CANARY, 300, CTX)
    fresh = freshness_query(lq, LATENCY, Track.CANARY, CTX, 180)
    assert fresh is not None and fresh.startswith("sum(rate(http_request_duration_seconds_count{")
    assert fresh.endswith("[180s]))")


def test_no_freshness_query_for_an_instant_gauge() -> None:
    gauge = slo({"gauge": {"query": 'max(mem{service="{{service}}"})', "max": 1}},
                objective=None)
    q = sli_queries(gauge, Track.CANARY, 300, CTX)
    assert freshness_query(q, gauge, Track.CANARY, CTX, 180) is None


def test_budget_counts_cover_the_slo_window_for_both_tracks() -> None:
    per_track = budget_queries(RATIO, CTX, 30 * 86400)
    assert [q.window_seconds for q in per_track] == [2592000, 2592000]
    stable, canary = per_track
    assert stable.bad == (
        '(sum(rate(http_requests_total{service="checkout",track="stable",code=~"5.."}'
        "[2592000s]))) * 2592000"
    )
    assert canary.total == (
        '(sum(rate(http_requests_total{service="checkout",track="canary"}[2592000s])))'
        " * 2592000"
    )


def test_budget_of_a_template_without_track_counts_each_event_once() -> None:
    s = slo({"ratio": {"bad": 'sum(rate(errs{service="{{service}}"}[{{window}}]))',
                       "total": 'sum(rate(reqs{service="{{service}}"}[{{window}}]))'}})
    per_track = budget_queries(s, CTX, 7 * 86400)
    assert len(per_track) == 1
    assert per_track[0].bad == '(sum(rate(errs{service="checkout"}[604800s]))) * 604800'


def test_budget_of_a_latency_slo_counts_good_and_total() -> None:
    stable, canary = budget_queries(LATENCY, CTX, 86400)
    assert stable.good is not None and 'le="0.2"' in stable.good and "[86400s]" in stable.good
    assert canary.total is not None and 'track="canary"' in canary.total


@pytest.mark.parametrize(
    "sli",
    [{"throughput": {"query": "sum(rate(x[{{window}}]))", "min": 1}},
     {"gauge": {"query": "max(x)", "max": 1}}],
)
def test_thresholds_have_no_budget(sli: dict[str, Any]) -> None:
    with pytest.raises(QueryError, match="no error budget"):
        budget_queries(slo(sli, objective=None), CTX, 86400)
