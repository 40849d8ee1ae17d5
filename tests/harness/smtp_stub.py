"""A local SMTP server (``aiosmtpd``) that records the messages it receives.

    with SmtpServer(username="rollout", password="pw") as smtp:
        ... send to 127.0.0.1:smtp.port ...
        smtp.wait_for(1)
        assert smtp.messages[0].message["Subject"].startswith("[rolloutctl]")

STARTTLS: pass ``tls=(certfile, keyfile)`` (``self_signed_cert(dir)`` makes a pair with the
``openssl`` command) and trust ``certfile`` on the client side.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServerProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    at: float  # time.monotonic()
    authenticated_as: str | None
    tls: bool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path] | None:
    """A self-signed certificate and key for HOST, or None without ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=IP:{host}"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


class SmtpServer:
    def __init__(self, *, username: str | None = None, password: str | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.username = username
        self.password = password
        self._lock = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._tls = tls
        self._controller: Controller | None = None
        self.port = 0

    def start(self) -> SmtpServer:
        server = self

        class Handler:
            async def handle_DATA(self, smtp: SMTPServerProtocol, session: Session,
                                  envelope: Envelope) -> str:
                raw = envelope.original_content or envelope.content or b""
                data = raw if isinstance(raw, bytes) else raw.encode()
                message = email.message_from_bytes(data, policy=email.policy.default)
                login = session.auth_data.login if isinstance(session.auth_data,
                                                              LoginPassword) else None
                mail = ReceivedMail(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    message=message,
                    at=time.monotonic(),
                    authenticated_as=login.decode() if isinstance(login, bytes) else None,
                    tls=session.ssl is not None,
                )
                with server._lock:
                    server._messages.append(mail)
                    server._lock.notify_all()
                return "250 OK"

        def authenticator(smtp: Any, session: Any, envelope: Any, mechanism: str,
                          auth_data: Any) -> AuthResult:
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == self.username
                  and auth_data.password.decode() == self.password)
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        kwargs: dict[str, Any] = {}
        if self.username is not None:
            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=self._tls is not None)
        if self._tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self._tls[0]), str(self._tls[1]))
            kwargs.update(tls_context=context, require_starttls=True)
        self.port = _free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                      **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A started SMTP server without authentication or TLS."""
    with SmtpServer() as server:
        yield server
