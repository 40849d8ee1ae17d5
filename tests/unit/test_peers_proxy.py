"""bench/peers/proxy.py: the counting proxy in front of each peer's API server and Prometheus."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.peers.proxy import CountingProxy, kind_of


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    release = threading.Event()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/cut"):  # a body cut short: 100 bytes announced, 5 sent
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"64\r\nhello")
            self.close_connection = True
            return
        if "watch=true" in self.path:  # a watch: one event now, the next when released
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in (b'{"type":"ADDED"}\n', b'{"type":"DELETED"}\n'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                self.release.wait(30)
            self.wfile.write(b"0\r\n\r\n")
            return
        body = b'{"status":"success"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def proxy() -> Iterator[CountingProxy]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, args=(0.05,), daemon=True).start()
    _Upstream.release.clear()
    p = CountingProxy("test", f"http://127.0.0.1:{upstream.server_address[1]}").start()
    yield p
    _Upstream.release.set()
    p.stop()
    upstream.shutdown()
    upstream.server_close()


def _request(p: CountingProxy, method: str, path: str, body: bytes | None = None,
             timeout: float = 10.0) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=timeout)
    conn.request(method, path, body=body)
    return conn.getresponse()


def test_requests_pass_through_and_are_counted_by_kind(proxy: CountingProxy) -> None:
    assert _request(proxy, "GET", "/api/v1/query?query=up").read() == b'{"status":"success"}'
    created = _request(proxy, "POST", "/api/v1/namespaces", b'{"a": 1}')
    assert created.status == 201 and created.read() == b'{"a": 1}'
    assert proxy.snapshot() == {("GET", "/api/v1/query"): 1, ("POST", "/api/v1/namespaces"): 1}


def test_a_watch_event_reaches_the_client_before_the_stream_ends(proxy: CountingProxy) -> None:
    response = _request(proxy, "GET", "/api/v1/pods?watch=true", timeout=5.0)
    # the upstream holds the second event back (30 s): the first must arrive on its own,
    # before the client's 5 s timeout
    assert response.readline() == b'{"type":"ADDED"}\n'
    _Upstream.release.set()
    assert response.readline() == b'{"type":"DELETED"}\n'
    assert proxy.snapshot() == {("WATCH", "/api/v1/pods"): 1}


def test_an_upstream_cut_mid_body_ends_the_response_quietly(
        proxy: CountingProxy, capsys: pytest.CaptureFixture[str]) -> None:
    response = _request(proxy, "GET", "/cut?watch=true")
    with pytest.raises(http.client.IncompleteRead):
        response.read()  # returns once the proxy has closed the connection
    assert proxy.errors == 1
    assert "Exception occurred" not in capsys.readouterr().err
    assert _request(proxy, "GET", "/api/v1/query").status == 200


def test_paused_refuses_connections_and_resumes_on_the_same_port(proxy: CountingProxy) -> None:
    port = proxy.port
    proxy.pause()
    with pytest.raises(ConnectionRefusedError):
        _request(proxy, "GET", "/api/v1/query")
    proxy.resume()
    assert proxy.port == port
    assert _request(proxy, "GET", "/api/v1/query").status == 200


def test_kind_of_names_watches_by_query_or_path() -> None:
    assert kind_of("GET", "/api/v1/pods?watch=true&resourceVersion=1") == "WATCH"
    assert kind_of("GET", "/api/v1/watch/pods") == "WATCH"
    assert kind_of("GET", "/api/v1/pods?watch=false") == "GET"
    assert kind_of("PATCH", "/apis/apps/v1/namespaces/a/deployments/b") == "PATCH"
