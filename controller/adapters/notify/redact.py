"""Keeping secrets out of logs, status, Events, exceptions and metrics.

Every secret value the notifier reads (Slack bot token, webhook URL, SMTP password,
incident routing key) is remembered here the moment it is read, and every text that leaves
the notifier (an error in status, an Event, a log record) passes through :func:`redact`.
Our own messages are written from error codes, never from a server's answer, so this is
the second line of defence, not the first.
"""

from __future__ import annotations

import base64
import logging
import threading
import urllib.parse

MASK = "[redacted]"
_MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


class SecretRegistry:
    """The secret values seen so far, in the forms they could be written in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: frozenset[str] = frozenset()

    def remember(self, value: str) -> None:
        value = value.strip()
        if len(value) < _MIN_SECRET_LENGTH:
            return
        forms = {
            value,
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value),
            base64.b64encode(value.encode()).decode(),
        }
        url = urllib.parse.urlsplit(value)
        if url.scheme in ("http", "https") and url.netloc:
            # In a webhook URL the secret is the path (Slack: /services/T…/B…/<secret>); a
            # server may quote just that part.
            segments = [s for s in url.path.split("/") if s]
            for i in range(len(segments)):
                forms.add("/".join(segments[i:]))
            if url.query:
                forms.add(url.query)
            forms = {f for f in forms if len(f) >= _MIN_SECRET_LENGTH}
        with self._lock:
            self._forms = self._forms | forms

    def redact(self, text: str) -> str:
        # Longest first, so that a secret containing another is masked whole.
        for form in sorted(self._forms, key=len, reverse=True):
            if form in text:
                text = text.replace(form, MASK)
        return text


SECRETS = SecretRegistry()


def remember_secret(value: str) -> None:
    SECRETS.remember(value)


def redact(text: str) -> str:
    return SECRETS.redact(text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with the known secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's business
            return True
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # The formatted traceback could quote a server's answer: keep only the type.
            exc = record.exc_info[1]
            record.msg = f"{record.msg} ({type(exc).__name__})"
            record.exc_info = None
            record.exc_text = None
        return True


_FILTER = RedactingFilter()


def redacting_logger(name: str) -> logging.Logger:
    """A logger whose records are redacted (filters on a logger see only its own records,
    so every logger the notifier or its client libraries write to gets one)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
