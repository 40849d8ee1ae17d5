"""``PrometheusSource``: the ``MetricsSource`` port over ``prometheus-api-client``.

Instant queries at the evaluation time (``ctx.at``), each with a timeout. Problems with
the data or with Prometheus are measurements, never exceptions:

* ``ok``: the value with its evidence (numerator, denominator, samples, query).
* ``no_data``: the denominator is empty, NaN or 0 (no traffic in the window).
* ``error``: connection refused, timeout, HTTP 4xx/5xx, a bad query, an unsafe template
  value (refused before anything is sent). Messages name the host, never credentials.
* ``ambiguous``: a query that must return one series returned several (e.g. a template
  without ``sum``).
* ``stale``: the series behind the denominator stopped reporting (see below).

A missing numerator (no series of errors) with traffic present is 0 errors.

Staleness rule
--------------
Prometheus already hides an instant sample older than its lookback (5m), but a range
function such as ``rate(x[5m])`` still answers from the old samples of a series that
stopped three minutes ago, as if it were current. So when the window is longer than
``stale_after`` (default 180 s, three scrape intervals of 60 s), the source also evaluates
the denominator over only the last ``stale_after`` seconds (``freshness_query``): a series
that is still scraped has samples there and answers (possibly 0); one that stopped does
not, and the measurement is ``stale``. The check is one extra query, independent of how the
template is written, and its answer is reused for the other windows measured at the same
evaluation time (the burn-rate windows of a pass). When the window is no longer than
``stale_after`` the window itself bounds the age of the data. A throughput or gauge query
without ``{{window}}`` reads instant samples, which Prometheus keeps answering for its
lookback (5 m) after the series stopped and then drops (``no_data``); write
``max_over_time(x[{{window}}])`` to get the freshness check for a gauge.

The environment (proxy variables, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, ~/.netrc) is read
once, when the source is built, for its URL (``requests`` would re-read it per query).

Retries and timeouts
--------------------
Requests go through ``egress.GuardedAdapter`` (mounted over the client's urllib3 adapter):
one total deadline of ``timeout + 1`` s covers connect, headers and the whole answer (a
server dripping its answer is cut there), the answer is read up to 8 MiB, a redirect is an
error (never followed), and the URL of an SLOPolicy (``spec.prometheus.url``) is checked by
the egress policy after DNS resolution and connected to at the address checked; the
platform's ``--prometheus-url`` is trusted. Nothing is retried here: the next pass asks
again. The query also asks Prometheus to give up after ``timeout`` (the ``timeout``
parameter), so a slow query comes back as Prometheus's own "query timed out" error.
``timeout`` is at most 60 s.

Batches
-------
``measure_all`` measures several (SLO, track, window) at one evaluation time with one
request: every instant query they need becomes a part of one query, labelled with its
position by ``label_replace`` and joined with ``or`` (:func:`batch_query`), and the answer is
split back per part. Each measurement is the one ``measure`` returns. A batch Prometheus
cannot answer (a part that is a scalar or does not parse, a timeout) is not an answer: its
parts are then sent one by one, so their errors read as they always did. The analysis of a
pass (``analysis.measure_gates``) uses it: the default plan's 17 queries are one request.

Every request is counted in ``rolloutctl_prometheus_queries_total{status}`` (``ok``,
``empty``, ``ambiguous``, ``error``; a batch counts once, ``ok`` or ``error``) and timed in
``rolloutctl_prometheus_query_seconds``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from urllib3.util.retry import Retry

from controller.adapters.egress import (
    TRUSTED,
    EgressRefused,
    GuardedAdapter,
    RedirectRefused,
    ResponseTooLarge,
)
from controller.adapters.metrics.queries import (
    QueryError,
    SLIQueries,
    budget_queries,
    freshness_query,
    sli_queries,
)
from controller.adapters.metrics.redact import safe_url
from controller.api.policy import SLO, PrometheusRef
from controller.engine.measurements import Measurement, MeasurementStatus, Track
from controller.ports import QueryContext

__all__ = ["PrometheusSource", "QueryMetrics", "safe_url"]

DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_TIMEOUT_SECONDS = 60.0
#: the largest answer read (a batch of a default plan's 17 queries is a few KiB)
MAX_ANSWER_BYTES = 8 * 1024 * 1024
DEFAULT_STALE_AFTER_SECONDS = 180.0
CONNECT_TIMEOUT_CAP_SECONDS = 3.0
_MAX_MESSAGE = 300
_FRESH_CACHE_SIZE = 64


# --------------------------------------------------------------------------- metrics


class QueryMetrics:
    """The query counter and latency histogram, registered once per registry."""

    _by_registry: weakref.WeakKeyDictionary[CollectorRegistry, QueryMetrics] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queries = Counter(
            "rolloutctl_prometheus_queries",
            "Instant queries sent to Prometheus, by outcome (ok, empty, ambiguous, error).",
            ["status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "rolloutctl_prometheus_query_seconds",
            "Time taken by one Prometheus instant query, retries included.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> QueryMetrics:
        registry = REGISTRY if registry is None else registry
        found = cls._by_registry.get(registry)
        if found is None:
            found = cls._by_registry[registry] = cls(registry)
        return found


# --------------------------------------------------------------------------- one query


class _Outcome(StrEnum):
    OK = "ok"
    EMPTY = "empty"
    AMBIGUOUS = "ambiguous"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class _Answer:
    outcome: _Outcome
    value: float | None = None
    message: str = ""
    #: no answer came at all (timeout, unreachable, refused): sending the parts of a batch
    #: one by one would only wait as long again for each
    transport: bool = False


def _labels(metric: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def _answer_of(result: Any) -> _Answer:
    """Interpret the ``result`` of an instant query (a vector, or a scalar's pair)."""
    if (
        isinstance(result, list)
        and len(result) == 2
        and isinstance(result[0], int | float)
        and isinstance(result[1], str)
    ):  # a scalar (or string) result: [time, "value"]
        try:
            return _Answer(_Outcome.OK, float(result[1]))
        except ValueError:
            return _Answer(_Outcome.ERROR, message="the query returns a string, not a number")
    if not isinstance(result, list):
        return _Answer(_Outcome.ERROR, message="unexpected answer: not a Prometheus result")
    if not result:
        return _Answer(_Outcome.EMPTY)
    if any(not isinstance(r, dict) or "value" not in r for r in result):
        return _Answer(
            _Outcome.ERROR,
            message="the query returns a range vector; an instant vector or scalar is needed",
        )
    if len(result) > 1:
        shown = ", ".join(_labels(r.get("metric", {})) for r in result[:3])
        more = ", ..." if len(result) > 3 else ""
        return _Answer(
            _Outcome.AMBIGUOUS,
            message=f"returned {len(result)} series where one was expected ({shown}{more}); "
            "aggregate it, e.g. sum(...)",
        )
    try:
        return _Answer(_Outcome.OK, float(result[0]["value"][1]))
    except (TypeError, ValueError, IndexError, KeyError):
        return _Answer(_Outcome.ERROR, message="unexpected answer: the sample is not a number")


class PrometheusHttpError(Exception):
    """A non-200 answer: its HTTP status and, when the body is a Prometheus API error
    document (``{"status": "error", "errorType": ..., "error": ...}``), those two fields."""

    def __init__(self, status: int, error_type: str | None, error: str | None) -> None:
        super().__init__(f"HTTP {status}" + (f": {error_type}: {error}" if error_type else ""))
        self.status = status
        self.error_type = error_type
        self.error = error


def _api_error(response: requests.Response) -> PrometheusHttpError:
    """The structured error of a non-200 answer (its JSON ``errorType`` and ``error``)."""
    error_type: str | None = None
    error: str | None = None
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("status") == "error":
        error_type = str(doc.get("errorType") or "error")
        error = str(doc.get("error") or "")
    return PrometheusHttpError(response.status_code, error_type, error)


def api_result(client: PrometheusConnect, path: str, params: Mapping[str, Any],
               timeout: Any) -> Any:
    """The ``data.result`` of the API at PATH (``/api/v1/query``, ``/api/v1/query_range``):
    the request ``custom_query`` and ``custom_query_range`` send, through the client's session
    (its headers, auth, TLS and adapters), but a non-200 answer raises
    :class:`PrometheusHttpError` from the answer's JSON: the client's own exception keeps
    only a message with the body's repr in it (prometheus-api-client 0.7)."""
    session: requests.Session = client._session
    response = session.request(
        method="GET", url=f"{client.url}{path}", params=dict(params), verify=session.verify,
        headers=client.headers, auth=client.auth, cert=session.cert, timeout=timeout)
    if response.status_code != 200:
        raise _api_error(response)
    return response.json()["data"]["result"]


def instant_query(client: PrometheusConnect, query: str, params: Mapping[str, str],
                  timeout: Any) -> Any:
    """An instant query's ``result`` (see :func:`api_result`)."""
    return api_result(client, "/api/v1/query", {"query": str(query), **params}, timeout)


def range_query(client: PrometheusConnect, query: str, start: float, end: float, step: str,
                params: Mapping[str, str], timeout: Any) -> Any:
    """A range query's ``result`` from START to END (unix seconds, rounded as the client
    rounds them) every STEP (see :func:`api_result`)."""
    return api_result(client, "/api/v1/query_range", {
        "query": str(query), "start": round(start), "end": round(end), "step": step,
        **params}, timeout)


def _http_error_message(exc: PrometheusHttpError, where: str) -> str:
    """``HTTP 400 from HOST: bad_data: parse error ...`` from Prometheus's error document."""
    if exc.error_type is None:
        # not a Prometheus API answer: the class of the status only, never the code or the
        # body (a tenant's URL must not make the controller a port scanner)
        return (f"HTTP {str(exc.status)[0]}xx from {where} (not a Prometheus API answer: "
                "check the URL)")
    return _clip(f"HTTP {exc.status} from {where}: {exc.error_type}: {exc.error}")


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


# --------------------------------------------------------------------------- the source


class PrometheusSource:
    """Measures SLIs with instant queries against one Prometheus (see the module doc)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        stale_after_seconds: float = DEFAULT_STALE_AFTER_SECONDS,
        headers: Mapping[str, str] | None = None,
        registry: CollectorRegistry | None = None,
        field_name: str = "spec.prometheus.url",
        trusted: bool = False,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        if not 0 < timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError(f"timeout_seconds must be in (0, {MAX_TIMEOUT_SECONDS:g}]")
        self.url = url.rstrip("/")
        self.where = safe_url(self.url)
        self.timeout_seconds = float(timeout_seconds)
        self.stale_after_seconds = float(stale_after_seconds)
        self._metrics = QueryMetrics.for_registry(registry)
        # Freshness answers by (query, time): the burn-rate windows of one pass share them.
        self._fresh: dict[tuple[str, float], _Answer] = {}
        retry = Retry(
            total=2,
            connect=2,
            read=False,  # re-raise read timeouts as they are: a slow query is not re-run
            status=0,
            other=0,
            backoff_factor=0.2,
            raise_on_status=False,
        )
        session, auth = _session_for(self.url)
        # Every request goes through the guarded transport: a total deadline, a size cap,
        # no redirects, and (unless trusted) the egress check naming the field.
        adapter = GuardedAdapter(field_name, policy=TRUSTED if trusted else None,
                                 max_bytes=max_bytes, default_timeout=self.timeout_seconds + 1)
        self._client = PrometheusConnect(
            url=self.url,
            headers=dict(headers) if headers else None,
            retry=retry,
            timeout=None,  # set per query below
            session=session,
            auth=auth,
        )
        # after the client, which mounts urllib3's adapter on its URL: ours replaces it
        for prefix in ("http://", "https://", self.url):
            session.mount(prefix, adapter)

    @classmethod
    def from_ref(cls, ref: PrometheusRef, **kwargs: Any) -> PrometheusSource:
        """A source for an SLOPolicy's ``spec.prometheus`` (its URL and timeout)."""
        kwargs.setdefault("timeout_seconds", ref.timeout.seconds)
        return cls(ref.url, **kwargs)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the port

    def measure(
        self, slo: SLO, track: Track, window_seconds: float, ctx: QueryContext
    ) -> Measurement:
        """The SLI of ``slo`` for ``track`` over the window ending at ``ctx.at``."""
        planned = self._plan(slo, track, window_seconds, ctx)
        if isinstance(planned, Measurement):
            return planned
        return self._measure_planned(planned, ctx.at.timestamp(), _NO_ANSWERS)

    def measure_all(
        self, wanted: Sequence[tuple[SLO, Track, float]], ctx: QueryContext
    ) -> list[Measurement]:
        """``measure`` of each (SLO, track, window) in WANTED, at ``ctx.at``, with the
        instant queries they need sent together (see :func:`batch_query`): one request
        instead of one per query. Each measurement is the one ``measure`` would return. When
        the batch cannot be answered (an error, a part that is not an instant vector) every
        query is sent on its own, as ``measure`` does, so errors read the same."""
        at = ctx.at.timestamp()
        planned = [self._plan(slo, track, seconds, ctx) for slo, track, seconds in wanted]
        exprs = list(dict.fromkeys(
            expr for p in planned if not isinstance(p, Measurement) for expr in p.exprs()))
        answers = self._batch(exprs, at) if len(exprs) > 1 else _NO_ANSWERS
        return [p if isinstance(p, Measurement) else self._measure_planned(p, at, answers)
                for p in planned]

    def query_vectors(self, exprs: Sequence[str], at: float
                      ) -> list[list[dict[str, Any]] | None]:
        """The instant-vector result (its series, labels kept) of each of EXPRS at AT, sent
        together as batches (:func:`batch_query`); None for an expression Prometheus could
        not answer. The fast path's grouped queries use it."""
        out: dict[str, list[dict[str, Any]] | None] = {}
        for chunk in _chunks(list(dict.fromkeys(exprs)), BATCH_MAX_CHARS):
            started = time.monotonic()
            result = (self._send_result(batch_query(chunk), at) if len(chunk) > 1
                      else self._send_result(chunk[0], at))
            self._metrics.seconds.observe(time.monotonic() - started)
            if len(chunk) == 1:
                ok = isinstance(result, list) and all(isinstance(r, dict) for r in result)
                split = [result] if ok else None
            else:
                split = None if isinstance(result, _Answer) else split_batch(result, len(chunk))
            self._metrics.queries.labels(
                status=(_Outcome.OK if split is not None else _Outcome.ERROR).value).inc()
            for i, expr in enumerate(chunk):
                out[expr] = split[i] if split is not None else None
        return [out.get(e) for e in exprs]

    def scrape_timing(self) -> list[tuple[float, float | None]] | None:
        """Each active target's scrape interval and when its last scrape's samples were in
        (``/api/v1/targets``: ``scrapeInterval``; ``lastScrape`` + ``lastScrapeDuration``, as
        Unix seconds, None if not scraped yet), or None when Prometheus does not say (an
        error, an older version). The fast path learns its default cadence from it
        (``fastpath.ScrapeIntervals``)."""
        from datetime import datetime

        from controller.api.types import parse_duration

        try:
            targets = self._client.get_targets(state="active").get("activeTargets") or ()
        except Exception:  # any failure: the caller keeps its default
            return None
        out: list[tuple[float, float | None]] = []
        for t in targets:
            try:
                interval = parse_duration(str(t["scrapeInterval"]))
            except (KeyError, TypeError, ValueError):
                continue
            ready: float | None = None
            try:
                last = datetime.fromisoformat(str(t["lastScrape"])).timestamp()
                if last > 0:
                    ready = last + float(t.get("lastScrapeDuration") or 0.0)
            except (KeyError, TypeError, ValueError, OverflowError, OSError):
                ready = None
            out.append((interval, ready))
        return out

    def _plan(self, slo: SLO, track: Track, window_seconds: float, ctx: QueryContext
              ) -> _Planned | Measurement:
        try:
            queries = sli_queries(slo, track, window_seconds, ctx)
            fresh = None
            if window_seconds > self.stale_after_seconds:
                fresh = freshness_query(queries, slo, track, ctx, self.stale_after_seconds)
        except QueryError as exc:
            return Measurement(MeasurementStatus.ERROR, message=f"not queried: {exc}")
        return _Planned(queries, fresh)

    def _measure_planned(self, planned: _Planned, at: float, answers: _Answers) -> Measurement:
        if planned.queries.value is not None:
            return self._measure_value(planned.queries, planned.fresh, at, answers)
        return self._measure_counts(planned.queries, planned.fresh, at, answers)

    def _batch(self, exprs: Sequence[str], at: float) -> _Answers:
        """The answer to each of EXPRS from as few requests as possible; an expression
        whose batch failed is left out (it is then queried alone)."""
        answers: dict[str, _Answer] = {}
        for chunk in _chunks(exprs, BATCH_MAX_CHARS):
            if len(chunk) == 1:
                continue
            started = time.monotonic()
            result = self._send_result(batch_query(chunk), at)
            self._metrics.seconds.observe(time.monotonic() - started)
            if isinstance(result, _Answer):  # an error: the parts go alone
                self._metrics.queries.labels(status=result.outcome.value).inc()
                if result.transport:  # unless Prometheus could not be reached at all
                    answers.update((expr, result) for expr in chunk)
                continue
            split = split_batch(result, len(chunk))
            if split is None:
                self._metrics.queries.labels(status=_Outcome.ERROR.value).inc()
                continue
            self._metrics.queries.labels(status=_Outcome.OK.value).inc()
            answers.update(zip(chunk, (_answer_of(part) for part in split), strict=True))
        return answers

    def measure_budget(self, slo: SLO, ctx: QueryContext, window_seconds: float) -> Measurement:
        """The service's bad ratio over an SLO window, canary and stable together.

        ``numerator``/``denominator`` are the bad and total counts summed over the window
        (a ratio of sums); ``value`` = numerator / denominator; ``samples`` = denominator.
        """
        try:
            per_track = budget_queries(slo, ctx, window_seconds)
        except QueryError as exc:
            return Measurement(MeasurementStatus.ERROR, message=f"not queried: {exc}")
        at = ctx.at.timestamp()
        bad_sum = total_sum = 0.0
        text = "\n".join(q.text for q in per_track)
        for queries in per_track:
            counts = self._counts(queries, None, at)
            if isinstance(counts, Measurement):
                no_traffic = not (counts.denominator or 0) > 0
                if counts.status == MeasurementStatus.NO_DATA and no_traffic:
                    continue  # this track had no traffic in the window
                return _with_query(counts, text)
            bad_sum += counts[0]
            total_sum += counts[1]
        if total_sum <= 0:
            return Measurement(
                MeasurementStatus.NO_DATA, query=text,
                message=f"no events in the {per_track[0].window_seconds}s budget window",
            )
        return Measurement(
            MeasurementStatus.OK,
            value=_ratio(bad_sum, total_sum),
            samples=total_sum,
            numerator=bad_sum,
            denominator=total_sum,
            query=text,
        )

    # ------------------------------------------------------------------ internals

    def _measure_value(self, queries: SLIQueries, fresh: str | None, at: float,
                       answers: _Answers = None) -> Measurement:
        assert queries.value is not None
        text = queries.text
        answer = self._query(queries.value, at, answers)
        if answer.outcome != _Outcome.OK or answer.value is None:
            return _unusable(answer, "the query", text)
        if math.isnan(answer.value):
            return Measurement(MeasurementStatus.NO_DATA, query=text, message="the query is NaN")
        stale = self._stale(fresh, at, text, answers)
        if stale is not None:
            return stale
        return Measurement(MeasurementStatus.OK, value=answer.value, query=text)

    def _measure_counts(self, queries: SLIQueries, fresh: str | None, at: float,
                        answers: _Answers = None) -> Measurement:
        counts = self._counts(queries, fresh, at, answers)
        if isinstance(counts, Measurement):
            return _with_query(counts, queries.text)
        bad, total = counts
        return Measurement(
            MeasurementStatus.OK,
            value=_ratio(bad, total),
            samples=total,
            numerator=bad,
            denominator=total,
            query=queries.text,
        )

    def _counts(
        self, queries: SLIQueries, fresh: str | None, at: float, answers: _Answers = None
    ) -> tuple[float, float] | Measurement:
        """``(bad, total)`` events in the window, or the Measurement saying why not."""
        assert queries.total is not None
        total = self._query(queries.total, at, answers)
        if total.outcome != _Outcome.OK or total.value is None:
            return _unusable(total, "the total", "")
        if math.isnan(total.value) or total.value <= 0:
            nan = math.isnan(total.value)
            return Measurement(
                MeasurementStatus.NO_DATA,
                denominator=None if nan else total.value,
                message=f"no traffic: the total is {'NaN' if nan else '0'} "
                f"over {queries.window_seconds}s",
            )
        stale = self._stale(fresh, at, "", answers)
        if stale is not None:
            return stale
        if queries.bad is not None:
            answer = self._query(queries.bad, at, answers)
            if answer.outcome == _Outcome.EMPTY:
                return 0.0, total.value  # no error series with traffic present: 0 errors
            if answer.outcome != _Outcome.OK or answer.value is None:
                return _unusable(answer, "the bad count", "")
            if not math.isfinite(answer.value):
                return Measurement(MeasurementStatus.NO_DATA, message="the bad count is NaN")
            return max(0.0, answer.value), total.value
        assert queries.good is not None
        answer = self._query(queries.good, at, answers)
        if answer.outcome == _Outcome.EMPTY:
            return Measurement(
                MeasurementStatus.NO_DATA,
                denominator=total.value,
                message="the histogram has a count but no bucket with this le: "
                "write le exactly as the bucket label (e.g. \"0.2\", not \"0.20\")",
            )
        if answer.outcome != _Outcome.OK or answer.value is None:
            return _unusable(answer, "the good count", "")
        if not math.isfinite(answer.value):
            return Measurement(MeasurementStatus.NO_DATA, message="the good count is NaN")
        return max(0.0, total.value - answer.value), total.value

    def _stale(self, fresh: str | None, at: float, text: str,
               answers: _Answers = None) -> Measurement | None:
        if fresh is None:
            return None
        answer = self._fresh.get((fresh, at)) or (answers or {}).get(fresh)
        if answer is None:
            answer = self._query(fresh, at)
            if answer.outcome != _Outcome.ERROR:
                if len(self._fresh) >= _FRESH_CACHE_SIZE:
                    self._fresh.pop(next(iter(self._fresh)))
                self._fresh[(fresh, at)] = answer
        if answer.outcome == _Outcome.EMPTY:
            return Measurement(
                MeasurementStatus.STALE,
                query=text,
                message=f"no sample in the last {self.stale_after_seconds:g}s: "
                "the series stopped reporting",
            )
        if answer.outcome == _Outcome.ERROR:
            return _unusable(answer, "the freshness check", text)
        return None

    def _query(self, expr: str, at: float, answers: _Answers = None) -> _Answer:
        if answers and expr in answers:
            return answers[expr]
        started = time.monotonic()
        answer = self._send(expr, at)
        self._metrics.seconds.observe(time.monotonic() - started)
        self._metrics.queries.labels(status=answer.outcome.value).inc()
        return answer

    def _send(self, expr: str, at: float) -> _Answer:
        result = self._send_result(expr, at)
        return result if isinstance(result, _Answer) else _answer_of(result)

    def _send_result(self, expr: str, at: float) -> Any:
        """The ``result`` of an instant query, or an error ``_Answer``."""
        timeout = self.timeout_seconds
        connect = min(timeout, CONNECT_TIMEOUT_CAP_SECONDS)
        try:
            result = instant_query(
                self._client,
                expr,
                params={"time": f"{at:.3f}", "timeout": f"{timeout:g}"},
                timeout=(connect, timeout + 1.0),
            )
        except EgressRefused as exc:
            return _Answer(_Outcome.ERROR, transport=True, message=f"not queried: {exc}")
        except ResponseTooLarge:
            return _Answer(_Outcome.ERROR, transport=True,
                           message=f"the answer from {self.where} is larger than "
                           f"{MAX_ANSWER_BYTES // (1024 * 1024)} MiB")
        except RedirectRefused:
            return _Answer(_Outcome.ERROR, transport=True,
                           message=f"{self.where} answered with a redirect, which is not "
                           "followed: write the final URL")
        except requests.exceptions.ConnectTimeout:
            return _Answer(_Outcome.ERROR, transport=True,
                           message=f"timed out connecting to {self.where} ({connect:g}s)")
        except requests.exceptions.Timeout:
            return _Answer(_Outcome.ERROR, transport=True,
                           message=f"no answer from {self.where} within {timeout + 1:g}s")
        except requests.exceptions.ConnectionError as exc:
            why = "connection refused" if "refused" in str(exc).lower() else "connection failed"
            return _Answer(_Outcome.ERROR, transport=True,
                           message=f"cannot reach {self.where}: {why}")
        except PrometheusHttpError as exc:
            return _Answer(_Outcome.ERROR, message=_http_error_message(exc, self.where))
        except requests.exceptions.RequestException as exc:
            return _Answer(
                _Outcome.ERROR, message=f"request to {self.where} failed ({type(exc).__name__})"
            )
        except (ValueError, KeyError, TypeError):
            return _Answer(
                _Outcome.ERROR,
                message=f"{self.where} did not answer like a Prometheus API (check the URL)",
            )
        return result


@dataclass(frozen=True, slots=True)
class _Planned:
    """The queries of one measurement."""

    queries: SLIQueries
    fresh: str | None

    def exprs(self) -> list[str]:
        q = self.queries
        return [e for e in (q.value, q.total, q.bad, q.good, self.fresh)
                if e is not None]


_Answers = Mapping[str, _Answer] | None
_NO_ANSWERS: _Answers = None

#: the label that tells the parts of a batch apart
PART_LABEL = "rolloutctl_part"
#: expressions per request at most (the request is a GET: its URL stays well under 16 KiB)
BATCH_MAX_CHARS = 8000


def batch_query(exprs: Sequence[str]) -> str:
    """One instant query answering every expression of EXPRS: each one's series labelled
    with its position (``label_replace``), joined with ``or``. The parts never collide (each
    has its own label value), an empty part adds nothing, a part with several series keeps
    them all, and a part that is not an instant vector (a scalar, a string) makes the whole
    query fail with Prometheus's type error."""
    return " or ".join(
        f'label_replace({expr}, "{PART_LABEL}", "{i}", "", "")' for i, expr in enumerate(exprs))


def split_batch(result: Any, parts: int) -> list[list[dict[str, Any]]] | None:
    """The ``result`` of :func:`batch_query` as each part's own result (its series without
    the part label), or None when it is not such an answer."""
    if not isinstance(result, list):
        return None
    out: list[list[dict[str, Any]]] = [[] for _ in range(parts)]
    for series in result:
        metric = series.get("metric") if isinstance(series, dict) else None
        if not isinstance(metric, dict) or "value" not in series:
            return None
        index = metric.get(PART_LABEL)
        if not (isinstance(index, str) and index.isdigit() and int(index) < parts):
            return None
        own = {k: v for k, v in metric.items() if k != PART_LABEL}
        out[int(index)].append({**series, "metric": own})
    return out


def _chunks(exprs: Sequence[str], max_chars: int) -> list[list[str]]:
    chunks: list[list[str]] = []
    size = 0
    for expr in exprs:
        if not chunks or size + len(expr) > max_chars:
            chunks.append([])
            size = 0
        chunks[-1].append(expr)
        size += len(expr)
    return chunks


def _session_for(url: str) -> tuple[requests.Session, Any]:
    """A session for URL with the environment's proxy, CA bundle and netrc credentials
    resolved now, once, rather than re-read by ``requests`` for every query (~0.4 ms each:
    it scans every environment variable and looks for ~/.netrc). Queries behave as they
    would with ``trust_env``: through the proxy the environment names for URL unless
    ``NO_PROXY`` covers its host, verified against ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` when set. Returns the session and the netrc credentials (or None)."""
    session = requests.Session()
    env = session.merge_environment_settings(url, {}, None, True, None)
    session.proxies.update(env["proxies"])
    session.verify = env["verify"]
    session.cert = env["cert"]
    auth = requests.utils.get_netrc_auth(url)
    session.trust_env = False
    return session, auth


def _ratio(bad: float, total: float) -> float:
    return min(1.0, max(0.0, bad / total))


def _unusable(answer: _Answer, what: str, text: str) -> Measurement:
    if answer.outcome == _Outcome.EMPTY:
        return Measurement(
            MeasurementStatus.NO_DATA, query=text, message=f"{what} returned no series"
        )
    if answer.outcome == _Outcome.AMBIGUOUS:
        return Measurement(
            MeasurementStatus.AMBIGUOUS, query=text, message=f"{what} {answer.message}"
        )
    return Measurement(MeasurementStatus.ERROR, query=text, message=answer.message)


def _with_query(m: Measurement, text: str) -> Measurement:
    return dataclasses.replace(m, query=text)
