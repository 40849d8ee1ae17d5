"""The probe SLI against a tiny local HTTP server: what a GET counts as, and the ratio."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.adapters.metrics.probe import Prober, ProbeRegistry, ProbeSpec
from controller.engine.measurements import MeasurementStatus
from tests.harness.fakes import FakeClock

#: real seconds a test waits for a state before it fails (never a sleep)
DEADLINE = 30.0


class Site:
    """A loopback HTTP server whose answers the test sets, logging what it sent."""

    def __init__(self) -> None:
        self.status = 200
        self.sent: list[tuple[str, int]] = []
        self.lock = threading.Condition()
        self.release = threading.Event()  # /slow answers once the test is done with it
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/slow":
                    site.release.wait(DEADLINE)  # held until the test lets it go
                    code = 200
                elif path.startswith("/code/"):
                    code = int(path.rsplit("/", 1)[1])
                else:
                    code = site.status
                with site.lock:
                    site.sent.append((path, code))
                    site.lock.notify_all()
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", "/code/500")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def until(self, predicate: Callable[[list[tuple[str, int]]], bool]) -> None:
        """Wait for what the server sent to satisfy PREDICATE (fails after DEADLINE)."""
        with self.lock:
            assert self.lock.wait_for(lambda: predicate(self.sent), DEADLINE), (
                f"not reached; sent: {self.sent}")

    def url(self, path: str = "/healthz") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize(
    ("code", "ok"),
    [(200, True), (204, True), (301, True), (302, True), (399, True),
     (400, False), (404, False), (500, False), (503, False)],
)
def test_2xx_and_3xx_succeed_everything_else_fails(site: Site, code: int, ok: bool) -> None:
    result = Prober(ProbeSpec(site.url(f"/code/{code}"), timeout_seconds=2)).probe_once()
    assert result.ok is ok
    assert result.status == code
    assert result.error == ("" if ok else f"HTTP {code // 100}xx")


def test_a_redirect_is_the_answer_and_is_not_followed(site: Site) -> None:
    result = Prober(ProbeSpec(site.url("/code/302"))).probe_once()
    assert result.ok
    assert site.sent == [("/code/302", 302)]  # the 500 it points to was never fetched


def test_a_slow_answer_fails_within_the_timeout(site: Site) -> None:
    result = Prober(ProbeSpec(site.url("/slow"), timeout_seconds=0.3)).probe_once()
    assert not result.ok and result.status is None
    assert result.error == "timed out after 0.3s"
    # the server holds its answer until the test ends: the probe gave up on its own
    assert site.sent == []


def test_nothing_listening_is_connection_refused(site: Site) -> None:
    url = site.url()
    site.close()
    result = Prober(ProbeSpec(url)).probe_once()
    assert (result.ok, result.error) == (False, "connection refused")


def test_the_ratio_counts_only_probes_inside_the_window(site: Site) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    prober = Prober(ProbeSpec(site.url(), interval_seconds=10), clock=clock)
    for status in (500, 500, 200, 200, 200, 503, 200, 200):
        site.status = status
        prober.probe_once()
        clock.advance(10)
    # probes finished at t0, t0+10, ..., t0+70; now = t0+80
    last_40s = prober.measure(40, clock.now())  # probes at t0+50, 60, 70
    assert last_40s.status == MeasurementStatus.OK
    assert (last_40s.numerator, last_40s.denominator, last_40s.samples) == (1, 3, 3)
    assert last_40s.value == pytest.approx(1 / 3)
    assert last_40s.message == "1 of 3 probes failed; last: HTTP 5xx"
    everything = prober.measure(3600, clock.now())
    assert (everything.numerator, everything.denominator) == (3, 8)
    assert everything.query == f"GET {site.url()} every 10s"


def test_no_probe_in_the_window_is_no_data_and_an_idle_prober_is_stale(site: Site) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    prober = Prober(ProbeSpec(site.url(), interval_seconds=10, timeout_seconds=2), clock=clock)
    assert prober.measure(60, clock.now()).status == MeasurementStatus.NO_DATA
    prober.probe_once()
    clock.advance(31)  # 3 intervals + the timeout = 32 s: still fresh
    assert prober.measure(60, clock.now()).status == MeasurementStatus.OK
    clock.advance(2)
    stale = prober.measure(60, clock.now())
    assert stale.status == MeasurementStatus.STALE
    assert "33s old" in stale.message


def test_results_older_than_the_retention_are_dropped(site: Site) -> None:
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    prober = Prober(ProbeSpec(site.url()), clock=clock, retention_seconds=100)
    for _ in range(30):
        prober.probe_once()
        clock.advance(10)
    assert len(prober.results()) == 11  # the newest and the ten in the 100 s before it


def test_the_background_prober_reports_what_the_server_sent(site: Site) -> None:
    prober = Prober(ProbeSpec(site.url(), interval_seconds=0.05, timeout_seconds=1)).start()
    try:
        site.until(lambda sent: len(sent) >= 6)
        site.status = 500
        site.until(lambda sent: len([c for _, c in sent if c == 500]) >= 4)
    finally:
        prober.stop()
    assert not prober.running
    assert not probe_threads(), "stopped means no more requests"
    sent = list(site.sent)
    m = prober.measure(3600, datetime.now(UTC))
    assert m.status == MeasurementStatus.OK
    assert m.denominator == len(sent)
    assert m.numerator == sum(1 for _, code in sent if code >= 500)
    assert m.value == pytest.approx(m.numerator / m.denominator)


def probe_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("probe ") and t.is_alive()]


def test_stop_is_prompt_even_with_a_long_interval(site: Site) -> None:
    prober = Prober(ProbeSpec(site.url(), interval_seconds=3600)).start()
    site.until(lambda sent: len(sent) >= 1)
    (thread,) = probe_threads()
    # stop() waits for the thread at most timeout + 1 s (11 s), far less than the 3600 s
    # interval: a loop that slept its interval would still be alive after it
    prober.stop()
    assert not thread.is_alive()
    assert not prober.running


def test_the_registry_runs_one_prober_per_spec_and_stops_unwanted_ones(site: Site) -> None:
    registry = ProbeRegistry()
    a = ProbeSpec(site.url("/a"), interval_seconds=0.05)
    b = ProbeSpec(site.url("/b"), interval_seconds=0.05)
    try:
        first = registry.measure(a, 60, datetime.now(UTC))
        assert first.status in (MeasurementStatus.NO_DATA, MeasurementStatus.OK)
        assert registry.ensure(a) is registry.ensure(a)
        pb = registry.ensure(b)
        assert set(registry.specs()) == {a, b}
        registry.retain([a])
        assert registry.specs() == [a] and not pb.running
        # a second GET of /a starts only after the first one's result was recorded
        site.until(lambda sent: len([p for p, _ in sent if p == "/a"]) >= 2)
        assert registry.measure(a, 60, datetime.now(UTC)).status == MeasurementStatus.OK
    finally:
        registry.stop_all()
    assert registry.specs() == []
    assert not any(t.name.startswith("probe ") for t in threading.enumerate())


def test_probe_messages_never_show_credentials_or_query(site: Site) -> None:
    url = f"http://user:s3cret@127.0.0.1:{site.port}/code/503?token=abc"
    prober = Prober(ProbeSpec(url))
    prober.probe_once()
    m = prober.measure(60, datetime.now(UTC))
    text = f"{m.query} {m.message}"
    assert "s3cret" not in text and "token" not in text
    assert m.query == f"GET http://127.0.0.1:{site.port}/code/503 every 10s"
