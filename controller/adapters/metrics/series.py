"""Range queries for charts (the dashboard): series over a time span, never exceptions.

``SeriesReader.range`` answers ``SeriesAnswer``: the series (labels, points) or an error
message naming the host, never credentials. One request per call, with a timeout; the
client's own urllib3 retry is limited to connection failures, as in ``prometheus.py``.
"""

from __future__ import annotations

import math

from prometheus_api_client import PrometheusConnect
from requests.exceptions import RequestException
from urllib3.util.retry import Retry

from controller.adapters.metrics.prometheus import PrometheusHttpError, range_query
from controller.adapters.metrics.redact import safe_url
from controller.ports import Series, SeriesAnswer

__all__ = ["MAX_POINTS", "Series", "SeriesAnswer", "SeriesReader", "step_for"]

#: Prometheus refuses a range query of more than 11,000 points per series
MAX_POINTS = 600


def step_for(span_seconds: float, points: int = 300) -> float:
    """A step giving about POINTS points over SPAN (at least 1 s)."""
    return max(1.0, math.ceil(span_seconds / max(1, min(points, MAX_POINTS))))


class SeriesReader:
    def __init__(self, url: str, timeout_seconds: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.where = safe_url(self.url)
        self.timeout_seconds = timeout_seconds
        retry = Retry(total=1, connect=1, read=False, status=0, other=0, backoff_factor=0.1,
                      raise_on_status=False)
        self._client = PrometheusConnect(url=self.url, retry=retry, timeout=None)

    def close(self) -> None:
        self._client.close()

    def range(self, expr: str, start: float, end: float, step: float) -> SeriesAnswer:
        """EXPR evaluated every STEP seconds from START to END (unix seconds)."""
        try:
            result = range_query(
                self._client, expr, start, end, f"{step:g}s",
                params={"timeout": f"{self.timeout_seconds:g}s"},
                timeout=(min(self.timeout_seconds, 3.0), self.timeout_seconds + 1.0))
        except PrometheusHttpError as exc:
            return SeriesAnswer(error=f"Prometheus at {self.where} refused the query: "
                                      f"{str(exc)[:200]}")
        except (RequestException, OSError, ValueError) as exc:
            return SeriesAnswer(error=f"Prometheus at {self.where} did not answer: "
                                      f"{type(exc).__name__}")
        out = []
        for item in result or []:
            points = []
            for t, v in item.get("values", []):
                value = float(v)
                if math.isfinite(value):
                    points.append((float(t), value))
            out.append(Series(dict(item.get("metric", {})), points))
        return SeriesAnswer(out)
