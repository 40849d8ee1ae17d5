"""E-mail over SMTP with ``smtplib``: plain, STARTTLS or implicit TLS, optional login.

The connection goes to an address the egress policy allowed (``notifications.email.smtp
.host``, checked after DNS resolution; see ``controller.adapters.egress``) and the whole
session (connect, TLS, login, message, quit) has one deadline, ``timeout``.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import Any

from controller.adapters.egress import EgressRefused, connect_checked
from controller.adapters.notify.errors import DeliveryError
from controller.adapters.notify.routing import ChannelName
from controller.api.notifications import SmtpSettings, SmtpTls

FIELD = "notifications.email.smtp.host"


class _Checked:
    """The socket of an SMTP session: to a checked address, shut down at the deadline."""

    _total: float
    _deadline: Any = None

    def _checked_socket(self, host: str, port: int) -> socket.socket:
        sock, self._deadline = connect_checked(host, port, timeout=self._total,
                                               field_name=FIELD)
        return sock

    def watch(self, sock: socket.socket) -> None:
        if self._deadline is not None:
            self._deadline.watch(sock)

    def release(self) -> None:
        if self._deadline is not None:
            self._deadline.release()


class _SMTP(_Checked, smtplib.SMTP):
    def __init__(self, host: str, port: int, total: float) -> None:
        self._total = total
        smtplib.SMTP.__init__(self, host, port, timeout=total)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self._checked_socket(host, port)


class _SMTPSSL(_Checked, smtplib.SMTP_SSL):
    def __init__(self, host: str, port: int, total: float, context: ssl.SSLContext) -> None:
        self._total = total
        self._server_name = host
        smtplib.SMTP_SSL.__init__(self, host, port, timeout=total, context=context)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self.context.wrap_socket(self._checked_socket(host, port),
                                        server_hostname=self._server_name)
        self.watch(sock)
        return sock


class SmtpMailer:
    """Sends one message per connection (rollbacks and freezes are rare)."""

    def __init__(self, *, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None
                 ) -> None:
        self._timeout = timeout
        self._ssl = ssl_context

    def send(self, settings: SmtpSettings, password: str | None, msg: EmailMessage) -> None:
        what = f"smtp {settings.host}:{settings.port}"
        context = self._ssl or ssl.create_default_context()
        smtp: _SMTP | _SMTPSSL | None = None
        try:
            if settings.tls is SmtpTls.TLS:
                smtp = _SMTPSSL(settings.host, settings.port, self._timeout, context)
            else:
                smtp = _SMTP(settings.host, settings.port, self._timeout)
            with smtp:
                if settings.tls is SmtpTls.STARTTLS:
                    smtp.starttls(context=context)
                    if smtp.sock is not None:
                        smtp.watch(smtp.sock)  # the TLS socket now owns the descriptor
                if settings.username and password is not None:
                    smtp.login(settings.username, password)
                refused = smtp.send_message(msg)
        except EgressRefused as exc:
            raise DeliveryError(ChannelName.EMAIL, "EgressRefused", str(exc),
                                permanent=True) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(ChannelName.EMAIL, "AuthFailed",
                                f"{what}: login refused ({exc.smtp_code})",
                                permanent=True) from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError(ChannelName.EMAIL, "Rejected",
                                f"{what}: the server does not support what the settings ask "
                                "(STARTTLS or AUTH)", permanent=True) from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError(ChannelName.EMAIL, "Rejected", f"{what}: all recipients refused",
                                permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            transient = 400 <= exc.smtp_code < 500
            raise DeliveryError(ChannelName.EMAIL, "ServerError" if transient else "Rejected",
                                f"{what}: SMTP {exc.smtp_code}") from None
        except TimeoutError:
            raise DeliveryError(ChannelName.EMAIL, "Timeout", f"{what}: timed out") from None
        except ssl.SSLError as exc:
            raise DeliveryError(ChannelName.EMAIL, "Rejected",
                                f"{what}: TLS failed ({exc.reason or type(exc).__name__})",
                                permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(ChannelName.EMAIL, "Unreachable",
                                f"{what}: {type(exc).__name__}") from None
        finally:
            if smtp is not None:
                smtp.release()
        if refused:
            # Some recipients took it: retrying would send it twice to them.
            raise DeliveryError(ChannelName.EMAIL, "Rejected",
                                f"{what}: {len(refused)} recipients refused", permanent=True)
