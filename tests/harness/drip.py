"""A server that answers every request slowly: the status line at once, then one byte of
body every ``pause`` seconds (a socket timeout never trips; only a total deadline ends the
call). Listens on 127.0.0.1; used by the tenant-isolation bench and tests."""

from __future__ import annotations

import socket
import threading


class DrippingServer:
    def __init__(self, pause: float = 0.5, body_bytes: int = 100_000) -> None:
        self.pause = pause
        self.body_bytes = body_bytes
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, name="drip", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % self.body_bytes)
                for _ in range(self.body_bytes):
                    if self._stop.wait(self.pause):
                        return
                    conn.sendall(b" ")
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
