"""Who is told what: Slack, e-mail and incident settings, and the durable delivery state.

Secrets are only ever referenced (``tokenSecretRef``); their values never enter a spec or a
status. The delivery state lives in the object's status so that a restarted controller or a
new leader keeps threading into the same Slack thread and never posts a message twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from controller.api.types import Name, Wire

MAX_SENT_KEYS = 200
#: Entries kept in an object's outbox (undelivered announcements) at most.
MAX_OUTBOX = 50


class SecretKeyRef(Wire):
    """A key of a Secret in the object's namespace."""

    name: Name
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class SlackSettings(Wire):
    channel: Annotated[str, Field(min_length=1, max_length=80)]
    critical_channel: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    token_secret_ref: SecretKeyRef | None = None
    webhook_secret_ref: SecretKeyRef | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if (self.token_secret_ref is None) == (self.webhook_secret_ref is None):
            raise ValueError(
                "set exactly one of tokenSecretRef (bot token, threads and updates) or "
                "webhookSecretRef (incoming webhook, no threads)"
            )
        return self


class SmtpTls(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class SmtpSettings(Wire):
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    tls: SmtpTls = SmtpTls.STARTTLS
    username: Annotated[str, Field(max_length=253)] | None = None
    password_secret_ref: SecretKeyRef | None = None


class EmailSettings(Wire):
    to: Annotated[list[Annotated[str, Field(min_length=3, max_length=254)]],
                  Field(min_length=1, max_length=50)]
    from_: Annotated[str, Field(min_length=3, max_length=254, alias="from")]
    smtp: SmtpSettings


class IncidentSettings(Wire):
    """An incident webhook that takes PagerDuty Events v2 payloads."""

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://")]
    routing_key_secret_ref: SecretKeyRef
    severity: Literal["critical", "error", "warning", "info"] = "critical"


class Notifications(Wire):
    slack: SlackSettings | None = None
    email: EmailSettings | None = None
    incident: IncidentSettings | None = None


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class OutgoingMessage(Wire):
    """One announcement waiting in the outbox; ``key`` makes its delivery idempotent."""

    # The engine fills key .. evidence, and ``run``: the run the entry belongs to, so that a
    # late message of an earlier run never lands in a newer run's thread (default: the
    # object's current run). The dispatcher owns the rest: ``attempts`` (delivery attempts
    # started, claims included), ``next_attempt_at`` (not before; also the claim of the
    # replica delivering it), ``delivered`` (channels done: slack, slackCritical, email,
    # incident) and ``last_error`` (never containing a secret).
    model_config = ConfigDict(extra="ignore")

    key: str
    type: str
    severity: Severity = Severity.INFO
    at: datetime
    title: str
    text: str = ""
    drill: bool = False
    run: int | None = None
    step: int | None = None
    weight: int | None = None
    evidence: list[dict[str, object]] = Field(default_factory=list)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    delivered: list[str] = Field(default_factory=list)
    last_error: str | None = None


_SHED_ORDER = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)


def trim_outbox(outbox: list[OutgoingMessage], limit: int = MAX_OUTBOX
                ) -> list[OutgoingMessage]:
    """OUTBOX with at most LIMIT entries, in their order. The oldest info entries go first,
    then the oldest warnings, and critical entries only when nothing else is left: a
    critical message (a rollback, a freeze) is never dropped while a warning is kept, nor a
    warning while an info is kept. The one trim of every outbox (plans and policies)."""
    excess = len(outbox) - limit
    if excess <= 0:
        return outbox
    drop: set[int] = set()
    for severity in _SHED_ORDER:
        for i, entry in enumerate(outbox):
            if excess == 0:
                break
            if entry.severity == severity:
                drop.add(i)
                excess -= 1
    return [entry for i, entry in enumerate(outbox) if i not in drop]


class SlackThread(Wire):
    """The Slack root message of the current run (plans) or freeze (policies)."""

    # ``channel``: the channel id Slack answered with; ``thread_ts``: the root's ts;
    # ``root_key``: the dedup key in the root's metadata; ``rendered_hash``: the hash of the
    # live state last shown in the root, so that it is updated only when that changes.
    model_config = ConfigDict(extra="ignore")

    channel: str
    thread_ts: str
    run: int
    root_key: str | None = None
    rendered_hash: str | None = None


class OpenIncident(Wire):
    """An incident triggered on the incident webhook and not yet resolved."""

    model_config = ConfigDict(extra="ignore")

    dedup_key: str
    since: datetime
    trigger_key: str


class NotificationState(Wire):
    """Durable delivery state: the Slack thread of the current run and the outbox."""

    model_config = ConfigDict(extra="ignore")

    slack: SlackThread | None = None
    incident: OpenIncident | None = None
    outbox: list[OutgoingMessage] = Field(default_factory=list)
    sent: list[str] = Field(default_factory=list)
    failures: int = 0
    last_error: str | None = None
