"""Notification channels: a Protocol, one class per channel, and the registry.

Like the traffic routers (``adapters/traffic/registry.py``): the dispatcher never asks
which channel it is talking to. For each outbox entry it asks every registered channel, in
delivery order, whether it wants the entry (:meth:`Channel.wants`: configured on the object,
allowed by the policy, and routed to it), then calls :meth:`Channel.send` on those still
needed. A channel raises ``DeliveryError`` when it did not take the message, and names the
Secrets to forget when the credentials were refused (:meth:`Channel.credentials`). A
channel that also shows live state (Slack's root message, updated in place) is a
:class:`LiveView`: the dispatcher refreshes it after each pass and when it goes stale.

What a channel needs from the dispatcher (Secrets through its cache, Slack clients, the
clock, metrics, the configuration) is the small :class:`Host` Protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from controller.adapters.notify.errors import DeliveryError
from controller.adapters.notify.incident import IncidentWebhook
from controller.adapters.notify.mail import SmtpMailer
from controller.adapters.notify.redact import redacting_logger
from controller.adapters.notify.render import (
    email_message,
    entry_message,
    incident_dedup_key,
    incident_event,
    metadata,
    orphan_root,
    root_key,
    root_message,
    significant_state,
)
from controller.adapters.notify.routing import (
    POLICY_THREAD_STARTERS,
    ChannelName,
    IncidentAction,
    incident_action,
    is_alarming,
    wants_email,
)
from controller.adapters.notify.slack import SlackBot, SlackWebhook
from controller.adapters.notify.subject import Kind, ObjectRef, PlanView, Subject
from controller.api.notifications import (
    Notifications,
    OpenIncident,
    OutgoingMessage,
    SecretKeyRef,
    SlackThread,
)
from controller.ports import Channel, Host, LiveView

if TYPE_CHECKING:
    from controller.adapters.notify.dispatcher import DispatcherConfig

__all__ = [
    "Channel",
    "DeliveryPass",
    "EmailChannel",
    "EntryResult",
    "Host",
    "IncidentChannel",
    "LiveView",
    "SlackChannel",
    "SlackCriticalChannel",
    "backoff",
    "channels_for",
    "needed",
    "registry",
]

log = redacting_logger("controller.adapters.notify")

# How far back to look in a channel's history for a message that may have been posted
# before a crash: the entry's time minus this margin.
_LOOKBACK = timedelta(minutes=10)


# ----------------------------------------------------------------------------- pass state


@dataclass
class EntryResult:
    attempted: bool = False
    delivered: set[str] = field(default_factory=set)
    complete: bool = False
    error: DeliveryError | None = None
    gave_up: bool = False


@dataclass
class DeliveryPass:
    """One delivery pass over one object: what the channels read and update."""

    subject: Subject
    now: datetime
    deadline: float
    thread: SlackThread | None
    incident: OpenIncident | None
    thread_changed: bool = False
    incident_changed: bool = False
    blocked: set[ChannelName] = field(default_factory=set)
    failed: dict[ChannelName, DeliveryError] = field(default_factory=dict)
    thread_keys: dict[str, set[str]] = field(default_factory=dict)
    results: dict[str, EntryResult] = field(default_factory=dict)
    original: dict[str, OutgoingMessage] = field(default_factory=dict)
    cut_short: bool = False
    root_error: DeliveryError | None = None
    root_retry: float | None = None  # seconds until a failed root update is tried again


# ----------------------------------------------------------------------------- contracts


def backoff(cfg: DispatcherConfig, attempts: int, err: DeliveryError) -> float:
    """The wait before the next attempt after ATTEMPTS failed ones ending with ERR."""
    if err.permanent:
        delay = cfg.backoff_max
    else:
        delay = min(cfg.backoff_max, cfg.backoff_base * 2 ** max(0, attempts - 1))
    if err.retry_after is not None:
        delay = max(delay, err.retry_after)
    return delay


def _allowed(subject: Subject, channel: str) -> bool:
    """Policies may restrict their channels (``freezeReleases.notify``)."""
    return subject.freeze_channels is None or channel in subject.freeze_channels


# ----------------------------------------------------------------------------- channels


class SlackChannel:
    """The run's (or freeze's) thread in ``slack.channel``, or the incoming webhook."""

    name = ChannelName.SLACK

    def __init__(self, host: Host) -> None:
        self.host = host
        # ref -> (significant state shown in its root, monotonic time it was shown)
        self._root_shown: dict[ObjectRef, tuple[str, float]] = {}
        # ref -> (failed root updates in a row, monotonic time before which not to retry)
        self._root_failing: dict[ObjectRef, tuple[int, float]] = {}
        self._root_lock = threading.Lock()

    def wants(self, subject: Subject, entry: OutgoingMessage) -> bool:
        settings = subject.settings
        return settings is not None and settings.slack is not None and _allowed(subject,
                                                                                "slack")

    def credentials(self, settings: Notifications) -> list[SecretKeyRef | None]:
        if settings.slack is None:
            return []
        return [settings.slack.token_secret_ref, settings.slack.webhook_secret_ref]

    def send(self, p: DeliveryPass, e: OutgoingMessage, attempts_before: int) -> None:
        settings = p.subject.settings
        assert settings is not None and settings.slack is not None
        if settings.slack.webhook_secret_ref is None:
            self._thread_reply(p, e, attempts_before)
            return
        cfg = self.host.config
        url = self.host.secret(p, self.name, settings.slack.webhook_secret_ref)
        SlackWebhook(url, timeout=cfg.send_timeout,
                     max_inline_wait=cfg.rate_limit_inline_wait).post(
            entry_message(p.subject, e, cfg.cluster_name, standalone=True))

    def _thread_reply(self, p: DeliveryPass, e: OutgoingMessage, attempts_before: int) -> None:
        subject = p.subject
        settings = subject.settings
        assert settings is not None and settings.slack is not None
        bot = self.host.bot(p, ChannelName.SLACK)
        bot.check()
        cluster = self.host.config.cluster_name
        maybe_posted = attempts_before > 0
        oldest = (e.at - _LOOKBACK).timestamp()
        is_plan = subject.ref.kind is Kind.ROLLOUT_PLAN
        run = (e.run if e.run is not None else subject.current_run) if is_plan else 0
        thread = p.thread
        if is_plan:
            needs_root = thread is None or thread.run < run
            orphan = thread is not None and thread.run > run
        else:
            starter = e.type in POLICY_THREAD_STARTERS
            needs_root = starter and (thread is None or thread.root_key != root_key(subject, 0, e))
            orphan = thread is None and not starter
        if orphan:
            # No thread to reply in (an earlier run's late message, or a policy message
            # outside a freeze): a top-level message.
            if maybe_posted and bot.find(settings.slack.channel, e.key, oldest,
                                         uid=subject.uid):
                return
            bot.post(settings.slack.channel, entry_message(subject, e, cluster, standalone=True),
                     metadata(e.key, subject), broadcast=False)
            return
        if needs_root:
            rk = root_key(subject, run, e)
            found = (bot.find(settings.slack.channel, rk, oldest, uid=subject.uid)
                     if maybe_posted else None)
            if found is not None:
                channel_id, ts = found
                rendered_hash = None  # unknown: the root is refreshed at the end of the pass
            else:
                live = not is_plan or run == subject.current_run
                msg = root_message(subject, cluster) if live else orphan_root(subject, run,
                                                                              cluster)
                channel_id, ts = bot.post(settings.slack.channel, msg, metadata(rk, subject))
                rendered_hash = msg.hash if live else None
                if live:
                    self.root_was_shown(subject)
            thread = SlackThread(channel=channel_id, thread_ts=ts, run=run, root_key=rk,
                                 rendered_hash=rendered_hash)
            p.thread = thread
            p.thread_changed = True
            p.thread_keys[ts] = {rk}
        assert thread is not None
        if maybe_posted:
            keys = p.thread_keys.get(thread.thread_ts)
            if keys is None or e.key not in keys:
                keys = bot.thread_keys(thread.channel, thread.thread_ts)
                p.thread_keys[thread.thread_ts] = keys
            if e.key in keys:
                log.info("%s: %s already in the Slack thread; not posting it again",
                         subject.ref, e.key)
                return
        bot.post(thread.channel, entry_message(subject, e, cluster), metadata(e.key, subject),
                 thread_ts=thread.thread_ts, broadcast=is_alarming(e))
        p.thread_keys.setdefault(thread.thread_ts, set()).add(e.key)
        if not is_plan and e.type == "FreezeLifted":
            # The freeze is over: show its final state and start afresh next time.
            self.refresh_root(p, bot, force=True)
            p.thread = None
            p.thread_changed = True

    # -- the root message: the live state, updated in place (LiveView)

    def stale(self, subject: Subject) -> bool:
        """The root shows an outdated state and may be refreshed now."""
        thread = subject.state.slack
        settings = subject.settings
        if thread is None or settings is None or settings.slack is None:
            return False
        if settings.slack.token_secret_ref is None:
            return False
        if isinstance(subject.view, PlanView) and thread.run != subject.view.run:
            return False
        return self._root_due(subject, thread)

    def _root_due(self, subject: Subject, thread: SlackThread) -> bool:
        if root_message(subject, self.host.config.cluster_name).hash == thread.rendered_hash:
            return False
        with self._root_lock:
            shown = self._root_shown.get(subject.ref)
            failing = self._root_failing.get(subject.ref)
        if failing is not None and self.host.clock.monotonic() < failing[1]:
            return False  # backing off: every reconcile submits, Slack must not be hammered
        if shown is None or shown[0] != significant_state(subject):
            return True
        return self.host.clock.monotonic() - shown[1] >= self.host.config.root_refresh_interval

    def root_was_shown(self, subject: Subject) -> None:
        with self._root_lock:
            self._root_shown[subject.ref] = (significant_state(subject),
                                             self.host.clock.monotonic())
            self._root_failing.pop(subject.ref, None)

    def _root_failed(self, subject: Subject, err: DeliveryError) -> float:
        """Back off root updates of SUBJECT after a failure; returns the delay."""
        with self._root_lock:
            failures = self._root_failing.get(subject.ref, (0, 0.0))[0] + 1
            delay = backoff(self.host.config, failures, err)
            self._root_failing[subject.ref] = (failures, self.host.clock.monotonic() + delay)
        return delay

    def refresh(self, p: DeliveryPass) -> None:
        """After the pass's deliveries: show the live state in the root, if due."""
        if ChannelName.SLACK in p.failed or ChannelName.SLACK in p.blocked or p.thread is None:
            return
        subject = p.subject
        settings = subject.settings
        if settings is None or settings.slack is None or settings.slack.token_secret_ref is None:
            return
        if isinstance(subject.view, PlanView) and p.thread.run != subject.view.run:
            return
        try:
            self.refresh_root(p, self.host.bot(p, ChannelName.SLACK), force=False)
        except DeliveryError as err:
            p.root_error = err
            p.root_retry = self._root_failed(subject, err)
            self.host.metrics.failed.labels(str(ChannelName.SLACK), err.reason).inc()
            log.warning("%s: root message not updated: %s", subject.ref, err.message)

    def refresh_root(self, p: DeliveryPass, bot: SlackBot, *, force: bool) -> None:
        assert p.thread is not None
        if not force and not self._root_due(p.subject, p.thread):
            return
        msg = root_message(p.subject, self.host.config.cluster_name)
        rk = p.thread.root_key or root_key(p.subject, p.thread.run)
        try:
            bot.update(p.thread.channel, p.thread.thread_ts, msg, metadata(rk, p.subject))
        except DeliveryError as err:
            if not err.permanent:
                raise
            # The root is gone or not ours to edit: stop trying, keep threading.
            log.warning("%s: root message cannot be updated: %s", p.subject.ref, err.message)
        self.host.metrics.sent.labels(str(ChannelName.SLACK), "RootUpdated").inc()
        self.root_was_shown(p.subject)
        p.thread = p.thread.model_copy(update={"rendered_hash": msg.hash})
        p.thread_changed = True


class SlackCriticalChannel:
    """A top-level copy of alarming entries in ``slack.criticalChannel``."""

    name = ChannelName.SLACK_CRITICAL

    def __init__(self, host: Host) -> None:
        self.host = host

    def wants(self, subject: Subject, entry: OutgoingMessage) -> bool:
        settings = subject.settings
        slack = settings.slack if settings is not None else None
        return (slack is not None and _allowed(subject, "slack") and is_alarming(entry)
                and bool(slack.critical_channel) and slack.critical_channel != slack.channel
                and slack.token_secret_ref is not None)

    def credentials(self, settings: Notifications) -> list[SecretKeyRef | None]:
        return [settings.slack.token_secret_ref] if settings.slack is not None else []

    def send(self, p: DeliveryPass, e: OutgoingMessage, attempts_before: int) -> None:
        settings = p.subject.settings
        assert settings is not None and settings.slack is not None
        channel = settings.slack.critical_channel
        assert channel is not None
        bot = self.host.bot(p, ChannelName.SLACK_CRITICAL)
        if attempts_before > 0 and bot.find(channel, e.key, (e.at - _LOOKBACK).timestamp(),
                                            uid=p.subject.uid,
                                            as_channel=ChannelName.SLACK_CRITICAL):
            return
        bot.post(channel, entry_message(p.subject, e, self.host.config.cluster_name,
                                        standalone=True),
                 metadata(e.key, p.subject), as_channel=ChannelName.SLACK_CRITICAL)


class EmailChannel:
    """E-mail over SMTP, for critical entries and a freeze's end."""

    name = ChannelName.EMAIL

    def __init__(self, host: Host) -> None:
        self.host = host
        self._mailer = SmtpMailer(timeout=host.config.send_timeout,
                                  ssl_context=host.config.smtp_ssl_context)

    def wants(self, subject: Subject, entry: OutgoingMessage) -> bool:
        settings = subject.settings
        return (settings is not None and settings.email is not None and wants_email(entry)
                and _allowed(subject, "email"))

    def credentials(self, settings: Notifications) -> list[SecretKeyRef | None]:
        return [settings.email.smtp.password_secret_ref] if settings.email is not None else []

    def send(self, p: DeliveryPass, e: OutgoingMessage, attempts_before: int) -> None:
        settings = p.subject.settings
        assert settings is not None and settings.email is not None
        smtp = settings.email.smtp
        password = (self.host.secret(p, self.name, smtp.password_secret_ref)
                    if smtp.password_secret_ref is not None else None)
        self._mailer.send(smtp, password, email_message(
            p.subject, e, self.host.config.cluster_name, settings.email))


class IncidentChannel:
    """PagerDuty Events v2: trigger on a rollback or a freeze, resolve on recovery."""

    name = ChannelName.INCIDENT

    def __init__(self, host: Host) -> None:
        self.host = host
        self._webhook = IncidentWebhook(timeout=host.config.send_timeout)

    def wants(self, subject: Subject, entry: OutgoingMessage) -> bool:
        settings = subject.settings
        return (settings is not None and settings.incident is not None
                and incident_action(subject.ref.kind, entry) is not None
                and (subject.ref.kind is Kind.ROLLOUT_PLAN or subject.open_incident))

    def credentials(self, settings: Notifications) -> list[SecretKeyRef | None]:
        return [settings.incident.routing_key_secret_ref] if settings.incident is not None else []

    def send(self, p: DeliveryPass, e: OutgoingMessage, attempts_before: int) -> None:
        settings = p.subject.settings
        assert settings is not None and settings.incident is not None
        action = incident_action(p.subject.ref.kind, e)
        if action is None:
            return
        if action is IncidentAction.RESOLVE and p.incident is None:
            return  # nothing open: nothing to resolve
        cluster = self.host.config.cluster_name
        dedup = (p.incident.dedup_key if p.incident is not None
                 else incident_dedup_key(p.subject, e, cluster))
        routing_key = self.host.secret(p, self.name,
                                       settings.incident.routing_key_secret_ref)
        event = incident_event(p.subject, e, cluster, action=action, dedup_key=dedup,
                               routing_key=routing_key, severity=settings.incident.severity)
        self._webhook.send(settings.incident.url, event)
        if action is IncidentAction.TRIGGER:
            if p.incident is None:
                p.incident = OpenIncident(dedup_key=dedup, since=e.at, trigger_key=e.key)
        else:
            p.incident = None
        p.incident_changed = True


# ----------------------------------------------------------------------------- registry


def registry(host: Host) -> tuple[Channel, ...]:
    """Every channel, in delivery order (an entry reaches Slack before e-mail before the
    incident webhook). A new channel is one class above and one line here."""
    return (SlackChannel(host), SlackCriticalChannel(host), EmailChannel(host),
            IncidentChannel(host))


def channels_for(channels: Sequence[Channel], subject: Subject, entry: OutgoingMessage
                 ) -> list[ChannelName]:
    """The channels ENTRY should reach, in delivery order, before considering whether an
    incident is open (a resolve without an open incident is dropped by the dispatcher)."""
    if subject.settings is None:
        return []
    return [c.name for c in channels if c.wants(subject, entry)]


def needed(channels: Sequence[Channel], subject: Subject) -> dict[str, list[ChannelName]]:
    """Per outbox entry of SUBJECT, the channels it still needs, in delivery order. A
    resolve is needed only when an incident is open or an earlier entry will trigger one."""
    incident = subject.state.incident is not None
    out: dict[str, list[ChannelName]] = {}
    for e in subject.state.outbox:
        chans = channels_for(channels, subject, e)
        if ChannelName.INCIDENT in chans:
            action = incident_action(subject.ref.kind, e)
            if action is IncidentAction.TRIGGER:
                incident = True
            elif action is IncidentAction.RESOLVE:
                if not incident:
                    chans = [c for c in chans if c is not ChannelName.INCIDENT]
                incident = False
        out[e.key] = [c for c in chans if c not in e.delivered]
    return out
