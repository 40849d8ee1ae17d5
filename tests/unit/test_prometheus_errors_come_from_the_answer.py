"""Prometheus's errors are read from its answer's JSON (``errorType``, ``error``), not from the
client's exception text: a bad query names Prometheus's problem, an answer that is not a
Prometheus API error says so by the status class only, and "no series" stays no data.
(The same against a real Prometheus: tests/e2e/test_gates_on_prometheus.py.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.metrics.prometheus import PrometheusSource
from controller.api.policy import SLO
from controller.engine.measurements import MeasurementStatus, Track
from controller.ports import QueryContext

RATIO = SLO.model_validate({"name": "s", "objective": 99.9, "sli": {"ratio": {
    "bad": 'sum(rate(errors_total{service="{{service}}"}[{{window}}]))',
    "total": 'sum(rate(requests_total{service="{{service}}"}[{{window}}]))'}}})
CTX = QueryContext(service="checkout", namespace="shop", revision="r1",
                   at=datetime(2026, 3, 1, 12, tzinfo=UTC))


class Answers:
    """A loopback server answering every request with (status, content type, body)."""

    def __init__(self) -> None:
        self.answer: tuple[int, str, bytes] = (200, "application/json", b"{}")
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path.split("?")[0])
                status, kind, body = owner.answer
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def answers() -> Iterator[Answers]:
    a = Answers()
    try:
        yield a
    finally:
        a.close()


def measure(answers: Answers, status: int, body: object, kind: str = "application/json"
            ) -> tuple[MeasurementStatus, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    answers.answer = (status, kind, data)
    with PrometheusSource(answers.url, registry=CollectorRegistry(), trusted=True) as source:
        m = source.measure(RATIO, Track.CANARY, 300, CTX)
    return m.status, m.message


def test_a_bad_query_names_prometheus_error_type_and_error(answers: Answers) -> None:
    status, message = measure(answers, 400, {
        "status": "error", "errorType": "bad_data",
        "error": '1:52: parse error: unexpected "}" in subquery selector'})
    assert status == MeasurementStatus.ERROR
    assert message == (f"HTTP 400 from {answers.url}: bad_data: 1:52: parse error: "
                       'unexpected "}" in subquery selector')
    assert answers.paths[0] == "/api/v1/query"


def test_prometheus_unavailable_is_an_error_naming_it(answers: Answers) -> None:
    status, message = measure(answers, 503, {
        "status": "error", "errorType": "unavailable", "error": "TSDB not ready"})
    assert status == MeasurementStatus.ERROR
    assert message == f"HTTP 503 from {answers.url}: unavailable: TSDB not ready"


def test_a_long_error_is_clipped(answers: Answers) -> None:
    _, message = measure(answers, 422, {"status": "error", "errorType": "execution",
                                        "error": "x" * 1000})
    assert message.startswith(f"HTTP 422 from {answers.url}: execution: xxx")
    assert len(message) == 300 and message.endswith("...")


@pytest.mark.parametrize(("code", "body", "kind"), [
    (404, b"404 page not found\n", "text/plain"),
    (401, b"<html>login</html>", "text/html"),
    (400, {"status": "success", "data": {}}, "application/json"),
    (502, {"message": "bad gateway"}, "application/json"),
])
def test_an_answer_that_is_not_a_prometheus_error_shows_only_the_status_class(
        answers: Answers, code: int, body: object, kind: str) -> None:
    status, message = measure(answers, code, body, kind)
    assert status == MeasurementStatus.ERROR
    assert message == (f"HTTP {code // 100}xx from {answers.url} (not a Prometheus API "
                       "answer: check the URL)")


def test_no_series_is_still_no_data(answers: Answers) -> None:
    status, message = measure(answers, 200, {"status": "success", "data": {
        "resultType": "vector", "result": []}})
    assert status == MeasurementStatus.NO_DATA
    assert "returned no series" in message


def test_a_value_is_still_a_measurement(answers: Answers) -> None:
    status, _ = measure(answers, 200, {"status": "success", "data": {
        "resultType": "vector", "result": [{"metric": {}, "value": [0, "2"]}]}})
    assert status == MeasurementStatus.OK


def test_range_queries_report_prometheus_error_too(answers: Answers) -> None:
    from controller.adapters.metrics.history import HistoryError, PrometheusHistory
    from controller.adapters.metrics.series import SeriesReader

    answers.answer = (400, "application/json", json.dumps({
        "status": "error", "errorType": "bad_data",
        "error": "exceeded maximum resolution of 11,000 points per timeseries"}).encode())
    reader = SeriesReader(answers.url)
    try:
        answer = reader.range("up", 1000, 2000, 0.01)
    finally:
        reader.close()
    assert answer.error == (f"Prometheus at {answers.url} refused the query: HTTP 400: "
                            "bad_data: exceeded maximum resolution of 11,000 points per "
                            "timeseries")
    assert answers.paths == ["/api/v1/query_range"]

    history = PrometheusHistory(answers.url, timeout_seconds=5)
    try:
        with pytest.raises(HistoryError) as caught:
            history.buckets(RATIO, CTX, datetime(2026, 2, 1, tzinfo=UTC),
                            datetime(2026, 3, 1, tzinfo=UTC), 3600)
    finally:
        history.close()
    assert str(caught.value) == (f"Prometheus at {answers.url} refused a query: HTTP 400: "
                                 "bad_data: exceeded maximum resolution of 11,000 points per "
                                 "timeseries")
