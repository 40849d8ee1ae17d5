"""Every outbound call has a total deadline (a dripping server is cut), a size cap, no
redirects, and goes only to an address the egress policy allowed, the one it checked."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters import egress
from controller.adapters.egress import (
    DeadlineExceeded,
    EgressPolicy,
    EgressRefused,
    ResponseTooLarge,
    fetch,
)
from controller.adapters.metrics.probe import Prober, ProbeSpec
from controller.adapters.metrics.prometheus import PrometheusSource
from controller.api.policy import SLO
from controller.engine.measurements import MeasurementStatus, Track
from controller.ports import QueryContext

LOCAL = EgressPolicy.parse("127.0.0.0/8")


class RawServer:
    """A loopback TCP server answering each connection with SCRIPT: a list of (bytes,
    pause seconds). It records what each request sent."""

    def __init__(self, script: list[tuple[bytes, float]]) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.sent_all = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                self.requests.append(conn.recv(65536))
                for chunk, pause in self.script:
                    conn.sendall(chunk)
                    if pause and self._stop.wait(pause):
                        return
                self.sent_all.set()
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


def drip(text: bytes, pause: float) -> list[tuple[bytes, float]]:
    return [(text[i:i + 1], pause) for i in range(len(text))]


@pytest.fixture
def servers() -> Iterator[list[RawServer]]:
    made: list[RawServer] = []
    yield made
    for s in made:
        s.close()


def serve(servers: list[RawServer], script: list[tuple[bytes, float]]) -> RawServer:
    server = RawServer(script)
    servers.append(server)
    return server


OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\nConnection: close\r\n\r\n"


# ------------------------------------------------------------------ total deadline


def test_a_body_dripped_one_byte_at_a_time_is_cut_at_the_deadline(servers) -> None:
    # 40 bytes, one every 0.1 s: 4 s in all; each read comes well within a socket timeout
    server = serve(servers, [(OK_HEAD, 0.0), *drip(b"x" * 40, 0.1)])
    with pytest.raises(DeadlineExceeded):
        fetch(server.url(), timeout=0.5, field_name="test", policy=LOCAL)
    assert not server.sent_all.is_set()


def test_headers_dripped_one_byte_at_a_time_are_cut_at_the_deadline(servers) -> None:
    server = serve(servers, drip(OK_HEAD, 0.05))
    with pytest.raises(DeadlineExceeded):
        fetch(server.url(), timeout=0.5, field_name="test", policy=LOCAL)
    assert not server.sent_all.is_set()


def test_a_prompt_answer_arrives_whole(servers) -> None:
    server = serve(servers, [(OK_HEAD + b"y" * 40, 0.0)])
    reply = fetch(server.url("/a?b=1"), timeout=5, field_name="test", policy=LOCAL)
    assert (reply.status, reply.body) == (200, b"y" * 40)
    assert server.requests[0].startswith(b"GET /a?b=1 HTTP/1.1\r\n")


def test_a_dripping_probe_fails_as_timed_out(servers) -> None:
    server = serve(servers, [(OK_HEAD, 0.0), *drip(b"x" * 40, 0.1)])
    result = Prober(ProbeSpec(server.url(), timeout_seconds=0.5)).probe_once()
    assert (result.ok, result.error) == (False, "timed out after 0.5s")


def test_a_dripping_prometheus_is_an_error_not_a_wait(servers) -> None:
    server = serve(servers, [(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: 60\r\n\r\n", 0.0), *drip(b" " * 60, 0.1)])
    with PrometheusSource(server.url(), timeout_seconds=0.5,
                          registry=CollectorRegistry()) as source:
        m = source.measure(SLO_, Track.CANARY, 60, CTX)
    assert m.status == MeasurementStatus.ERROR
    assert "no answer" in m.message and "within" in m.message
    assert not server.sent_all.is_set()


SLO_ = SLO.model_validate({"name": "errors", "objective": 99, "sli": {"ratio": {
    "bad": 'sum(rate(x{code=~"5.."}[{{window}}]))', "total": "sum(rate(x[{{window}}]))"}}})
CTX = QueryContext(service="shop", namespace="shop", revision="r1",
                   at=datetime(2026, 1, 1, tzinfo=UTC))


# ------------------------------------------------------------------ size cap, redirects


def test_an_answer_larger_than_the_cap_is_refused_or_truncated(servers) -> None:
    big = b"z" * 5000
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(big)}\r\n\r\n".encode()
    server = serve(servers, [(head + big, 0.0)])
    with pytest.raises(ResponseTooLarge):
        fetch(server.url(), timeout=5, field_name="test", policy=LOCAL, max_bytes=1000)
    reply = fetch(server.url(), timeout=5, field_name="test", policy=LOCAL, max_bytes=1000,
                  truncate=True)
    assert reply.body == b"z" * 1000


def test_redirects_are_never_followed(servers) -> None:
    server = serve(servers, [(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\n"
                              b"Content-Length: 0\r\n\r\n", 0.0)])
    assert fetch(server.url(), timeout=5, field_name="t", policy=LOCAL).status == 302
    with PrometheusSource(server.url(), registry=CollectorRegistry()) as source:
        m = source.measure(SLO_, Track.CANARY, 60, CTX)
    assert m.status == MeasurementStatus.ERROR
    assert "redirect, which is not followed" in m.message
    assert len(server.requests) == 2  # one each: nothing followed the Location


# ------------------------------------------------------------------ egress policy


A = ipaddress.ip_address


@pytest.mark.parametrize(("address", "rule"), [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("::ffff:127.0.0.1", "loopback"), ("0.0.0.0", "unspecified"),
    ("10.96.0.1", "the API server"),
])
def test_the_default_policy_refuses_loopback_link_local_and_the_api_server(
        address: str, rule: str) -> None:
    policy = EgressPolicy.parse("", api_server=[A("10.96.0.1")])
    why = policy.refusal("host", [A(address)])
    assert why is not None and rule in why


def test_the_default_policy_allows_other_addresses() -> None:
    assert EgressPolicy.parse("").refusal("prom", [A("10.1.2.3"), A("93.184.216.34")]) is None


def test_an_allow_list_allows_only_what_it_names_and_lifts_the_defaults_for_it() -> None:
    policy = EgressPolicy.parse("10.0.0.0/8, prometheus.monitoring.svc 127.0.0.1/32")
    assert policy.refusal("x", [A("10.4.4.4")]) is None
    assert policy.refusal("x", [A("127.0.0.1")]) is None
    assert policy.refusal("prometheus.monitoring.svc", [A("192.168.1.1")]) is None
    refused = policy.refusal("x", [A("192.168.1.1")])
    assert refused is not None and "not in the allow-list" in refused
    # '*' keeps the defaults for everything not listed
    star = EgressPolicy.parse("127.0.0.1/32,*")
    assert star.refusal("x", [A("192.168.1.1")]) is None
    assert star.refusal("x", [A("169.254.169.254")]) is not None


def test_one_refused_address_of_several_refuses_the_host() -> None:
    assert EgressPolicy.parse("").refusal("x", [A("10.0.0.1"), A("127.0.0.1")]) is not None


def test_a_refused_url_names_the_field_and_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(egress.ALLOW_ENV, "")
    with pytest.raises(EgressRefused) as caught:
        fetch("http://169.254.169.254/latest/meta-data", timeout=1, field_name="spec.x.url")
    assert "spec.x.url" in str(caught.value) and "link-local" in str(caught.value)
    with PrometheusSource("http://127.0.0.1:9/", registry=CollectorRegistry()) as source:
        m = source.measure(SLO_, Track.CANARY, 60, CTX)
    assert m.status == MeasurementStatus.ERROR
    assert "spec.prometheus.url" in m.message and "loopback" in m.message
    result = Prober(ProbeSpec("http://localhost:9/health")).probe_once()
    assert not result.ok and result.refused and "refused by the egress policy" in result.error


def test_the_platform_url_is_trusted(servers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(egress.ALLOW_ENV, "")
    body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
    head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    server = serve(servers, [(head + body, 0.0)])
    with PrometheusSource(server.url(), registry=CollectorRegistry(), trusted=True) as source:
        m = source.measure(SLO_, Track.CANARY, 60, CTX)
    assert "egress" not in m.message  # it was sent (whatever the answer)
    assert server.requests


def test_the_connection_goes_to_the_address_that_was_checked(
        servers, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that resolves to an allowed address once and to a refused one next (DNS
    rebinding) is connected to at the checked address, with its name in Host."""
    server = serve(servers, [(OK_HEAD + b"y" * 40, 0.0)])
    answers = iter(["127.0.0.1", "169.254.169.254"])
    calls: list[str] = []
    real = socket.getaddrinfo

    def rebinding(host: str, port: object, *args: object, **kwargs: object) -> object:
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        calls.append(host)
        ip = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    reply = fetch(f"http://rebind.example:{server.port}/", timeout=5, field_name="t",
                  policy=LOCAL)
    assert reply.status == 200
    assert calls == ["rebind.example"]  # resolved once: the check and the connect agree
    assert f"Host: rebind.example:{server.port}".encode() in server.requests[0]
    with pytest.raises(EgressRefused):  # the next resolution is refused, not connected
        fetch(f"http://rebind.example:{server.port}/", timeout=5, field_name="t",
              policy=LOCAL)


def test_a_batch_that_got_no_answer_is_not_resent_part_by_part(servers) -> None:
    server = serve(servers, [(b"HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n", 0.0),
                             *drip(b" " * 60, 0.1)])
    with PrometheusSource(server.url(), timeout_seconds=0.3,
                          registry=CollectorRegistry()) as source:
        ms = source.measure_all([(SLO_, Track.CANARY, 60), (SLO_, Track.STABLE, 60),
                                 (SLO_, Track.CANARY, 300)], CTX)
    assert [m.status for m in ms] == [MeasurementStatus.ERROR] * 3
    assert len(server.requests) == 1  # one deadline, not one per query


def test_the_api_server_stays_refused_inside_an_allowed_cidr_unless_listed_itself() -> None:
    api = [A("10.96.0.1")]
    wide = EgressPolicy.parse("10.0.0.0/8", api_server=api)
    assert wide.refusal("x", [A("10.1.1.1")]) is None
    refused = wide.refusal("kubernetes.default.svc", [A("10.96.0.1")])
    assert refused is not None and "the API server" in refused
    exact = EgressPolicy.parse("10.0.0.0/8,10.96.0.1", api_server=api)
    assert exact.refusal("x", [A("10.96.0.1")]) is None


def test_notifications_to_a_refused_address_are_not_sent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from email.message import EmailMessage

    from controller.adapters.notify.errors import DeliveryError
    from controller.adapters.notify.incident import IncidentWebhook
    from controller.adapters.notify.mail import SmtpMailer
    from controller.adapters.notify.render import Rendered
    from controller.adapters.notify.slack import SlackWebhook
    from controller.api.notifications import SmtpSettings

    monkeypatch.setenv(egress.ALLOW_ENV, "")
    msg = EmailMessage()
    msg["To"], msg["From"], msg["Subject"] = "a@example.com", "r@example.com", "x"
    sends: list[tuple[str, Callable[[], None]]] = [
        ("notifications.email.smtp.host", lambda: SmtpMailer(timeout=2).send(
            SmtpSettings(host="169.254.169.254", port=25), None, msg)),
        ("notifications.incident.url", lambda: IncidentWebhook(timeout=2).send(
            "http://169.254.169.254/v2/enqueue", {"event_action": "trigger"})),
        ("notifications.slack.webhookSecretRef", lambda: SlackWebhook(
            "http://127.0.0.1:9/services/T/B/x", timeout=2).post(Rendered(text="x", blocks=[]))),
    ]
    for field_name, send in sends:
        with pytest.raises(DeliveryError) as caught:
            send()
        assert caught.value.reason == "EgressRefused" and caught.value.permanent
        assert field_name in str(caught.value), str(caught.value)


def test_a_malformed_allow_list_entry_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match="neither a host name nor an address or CIDR"):
        EgressPolicy.parse("10.0.0.0/8,host!!")
    with pytest.raises(ValueError):
        EgressPolicy.parse("10.0.0.0/33")


def test_a_dns_lookup_that_never_answers_is_cut_at_the_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = socket.getaddrinfo

    def stuck(host: str, *args: object, **kwargs: object) -> object:
        if host == "slow-dns.example":
            release.wait(30)
            raise socket.gaierror("gave up")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    try:
        with pytest.raises(DeadlineExceeded):
            fetch("http://slow-dns.example/", timeout=0.3, field_name="t", policy=LOCAL)
        result = Prober(ProbeSpec("http://slow-dns.example/", timeout_seconds=0.3)
                        ).probe_once()
        assert result.error == "timed out after 0.3s"
    finally:
        release.set()


# ------------------------------------------------------------------ the Slack Web API


def slack_answer(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")


AUTH_OK = b'{"ok": true, "user_id": "U1", "team_id": "T1", "url": "https://x/"}'


def test_a_slack_that_drips_its_answer_is_cut_at_the_deadline(servers) -> None:
    from controller.adapters.notify.errors import DeliveryError
    from controller.adapters.notify.slack import SlackBot

    # a whole, valid answer, one byte every 0.1 s: each read is well within slack-sdk's
    # per-read timeout, so only a total deadline ends the call
    server = serve(servers, [(slack_answer(AUTH_OK), 0.0), *drip(AUTH_OK, 0.1)])
    bot = SlackBot("xoxb-test", base_url=server.url("/api/"), timeout=1)
    with pytest.raises(DeliveryError) as caught:
        bot.check()
    assert caught.value.reason == "Timeout"
    assert not server.sent_all.is_set()


def test_a_prompt_slack_answer_is_read_through_slack_sdk(servers) -> None:
    from controller.adapters.notify.slack import SlackBot

    server = serve(servers, [(slack_answer(AUTH_OK) + AUTH_OK, 0.0)])
    SlackBot("xoxb-test", base_url=server.url("/api/"), timeout=5).check()
    request = server.requests[0]
    assert request.startswith(b"POST /api/auth.test HTTP/1.1\r\n")
    assert b"Authorization: Bearer xoxb-test" in request
