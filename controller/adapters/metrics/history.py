"""An SLO's event counts over a past period, bucket by bucket, from Prometheus range queries.

For ``rolloutctl report --policy``: compliance over 7 or 30 days, the budget spent and the
worst burn periods need the bad and total counts of every bucket (an hour, six hours) of
the period. One range query per count and track gives them all at once, where instant
queries would need one request per bucket. Each point at time ``t`` is the count over
``(t - step, t]`` (the same ``(rate over {{window}}) * window`` expressions the controller's
budget uses, with the window set to the step: see ``queries.budget_queries``), so the
buckets tile the period and their sums are the period's counts (a ratio of sums).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_api_client import PrometheusConnect
from requests.exceptions import RequestException
from urllib3.util.retry import Retry

from controller.adapters.metrics.prometheus import PrometheusHttpError, range_query
from controller.adapters.metrics.queries import QueryError, SLIQueries, budget_queries
from controller.api.policy import SLO
from controller.ports import QueryContext

__all__ = ["Bucket", "HistoryError", "PrometheusHistory"]


class HistoryError(RuntimeError):
    """Prometheus could not answer (unreachable, an error, a query it refused)."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """Events in ``(end - step, end]``."""

    end: datetime
    bad: float
    total: float


class PrometheusHistory:
    def __init__(self, url: str, *, timeout_seconds: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout_seconds
        # One quick retry of a refused connection; a slow or failing query is not re-run
        # (the client's default retries 5xx answers with backoff: long for a report).
        retry = Retry(total=1, connect=1, read=False, status=0, other=0, backoff_factor=0.2,
                      raise_on_status=False)
        self._client = PrometheusConnect(url=self.url, timeout=timeout_seconds, retry=retry)

    def close(self) -> None:
        self._client.close()

    def buckets(self, slo: SLO, ctx: QueryContext, start: datetime, end: datetime,
                step_seconds: int) -> list[Bucket]:
        """The SLO's bad and total counts (canary and stable together) per bucket of
        STEP_SECONDS, for buckets ending after START and up to END. Buckets without
        traffic are left out. Raises HistoryError when Prometheus cannot answer."""
        try:
            per_track = budget_queries(slo, ctx, step_seconds)
        except QueryError as exc:
            raise HistoryError(f"SLO {slo.name}: {exc}") from None
        first = start.timestamp() + step_seconds
        if first > end.timestamp():
            return []
        bad: dict[float, float] = {}
        total: dict[float, float] = {}
        for queries in per_track:
            self._add(queries, first, end.timestamp(), step_seconds, bad, total)
        return [Bucket(datetime.fromtimestamp(t, UTC), bad.get(t, 0.0), total[t])
                for t in sorted(total) if total[t] > 0]

    def _add(self, queries: SLIQueries, first: float, last: float, step: int,
             bad: dict[float, float], total: dict[float, float]) -> None:
        assert queries.total is not None
        totals = self._range(queries.total, first, last, step)
        for t, v in totals.items():
            total[t] = total.get(t, 0.0) + v
        if queries.bad is not None:
            for t, v in self._range(queries.bad, first, last, step).items():
                bad[t] = bad.get(t, 0.0) + max(0.0, v)
        else:
            assert queries.good is not None
            good = self._range(queries.good, first, last, step)
            for t, v in totals.items():
                bad[t] = bad.get(t, 0.0) + max(0.0, v - good.get(t, 0.0))

    def _range(self, expr: str, first: float, last: float, step: int) -> dict[float, float]:
        try:
            result: Any = range_query(
                self._client, expr, first, last, f"{step}s",
                params={"timeout": f"{int(self._timeout)}s"}, timeout=self._timeout)
        except PrometheusHttpError as exc:
            raise HistoryError(f"Prometheus at {self.url} refused a query: "
                               f"{str(exc)[:300]}") from None
        except RequestException as exc:
            raise HistoryError(f"cannot reach Prometheus at {self.url} "
                               f"({type(exc).__name__}): check the URL (--prometheus)") from None
        out: dict[float, float] = {}
        for series in result or []:
            for t, v in _values(series):
                value = float(v)
                if math.isfinite(value):
                    out[float(t)] = out.get(float(t), 0.0) + value
        return out


def _values(series: Mapping[str, Any]) -> list[tuple[float, str]]:
    return [(float(t), str(v)) for t, v in series.get("values", [])]
