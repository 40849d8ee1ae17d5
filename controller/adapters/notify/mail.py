"""E-mail over SMTP with ``smtplib``: plain, STARTTLS or implicit TLS, optional login."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from controller.adapters.notify.errors import DeliveryError
from controller.adapters.notify.routing import Channel
from controller.api.notifications import SmtpSettings, SmtpTls


class SmtpMailer:
    """Sends one message per connection (rollbacks and freezes are rare)."""

    def __init__(self, *, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None
                 ) -> None:
        self._timeout = timeout
        self._ssl = ssl_context

    def send(self, settings: SmtpSettings, password: str | None, msg: EmailMessage) -> None:
        what = f"smtp {settings.host}:{settings.port}"
        context = self._ssl or ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            if settings.tls is SmtpTls.TLS:
                smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=self._timeout,
                                        context=context)
            else:
                smtp = smtplib.SMTP(settings.host, settings.port, timeout=self._timeout)
            with smtp:
                if settings.tls is SmtpTls.STARTTLS:
                    smtp.starttls(context=context)
                if settings.username and password is not None:
                    smtp.login(settings.username, password)
                refused = smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(Channel.EMAIL, "AuthFailed",
                                f"{what}: login refused ({exc.smtp_code})",
                                permanent=True) from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError(Channel.EMAIL, "Rejected",
                                f"{what}: the server does not support what the settings ask "
                                "(STARTTLS or AUTH)", permanent=True) from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError(Channel.EMAIL, "Rejected", f"{what}: all recipients refused",
                                permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            transient = 400 <= exc.smtp_code < 500
            raise DeliveryError(Channel.EMAIL, "ServerError" if transient else "Rejected",
                                f"{what}: SMTP {exc.smtp_code}") from None
        except TimeoutError:
            raise DeliveryError(Channel.EMAIL, "Timeout", f"{what}: timed out") from None
        except ssl.SSLError as exc:
            raise DeliveryError(Channel.EMAIL, "Rejected",
                                f"{what}: TLS failed ({exc.reason or type(exc).__name__})",
                                permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(Channel.EMAIL, "Unreachable",
                                f"{what}: {type(exc).__name__}") from None
        if refused:
            # Some recipients took it: retrying would send it twice to them.
            raise DeliveryError(Channel.EMAIL, "Rejected",
                                f"{what}: {len(refused)} recipients refused", permanent=True)
