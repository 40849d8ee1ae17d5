"""Channels are plugins: one Protocol, one class per channel, one registry in delivery
order; the dispatcher has no per-channel branches."""

from __future__ import annotations

import inspect

from prometheus_client import CollectorRegistry

from controller.adapters.notify import (
    Channel,
    ChannelName,
    Dispatcher,
    InMemoryNotificationStore,
    Kind,
    NotifyMetrics,
)
from controller.adapters.notify import dispatcher as dispatcher_module
from controller.adapters.notify.channels import channels_for, registry
from controller.adapters.notify.memory import outbox_entry, plan_object
from controller.api.notifications import OutgoingMessage

NS = "shop"
EVERYTHING = {
    "slack": {"channel": "#deploys", "criticalChannel": "#oncall",
              "tokenSecretRef": {"name": "slack", "key": "token"}},
    "email": {"to": ["oncall@example.com"], "from": "rolloutctl@example.com",
              "smtp": {"host": "127.0.0.1", "port": 25}},
    "incident": {"url": "http://127.0.0.1:9/v2/enqueue",
                 "routingKeySecretRef": {"name": "pd", "key": "key"}},
}


def test_every_channel_name_has_one_channel_in_delivery_order() -> None:
    d = Dispatcher(InMemoryNotificationStore(), metrics=NotifyMetrics(CollectorRegistry()))
    channels = registry(d)
    assert [c.name for c in channels] == [ChannelName.SLACK, ChannelName.SLACK_CRITICAL,
                                          ChannelName.EMAIL, ChannelName.INCIDENT]
    assert {c.name for c in channels} == set(ChannelName)
    for c in channels:
        assert isinstance(c.name, ChannelName)
        for method in ("wants", "send", "credentials"):
            assert callable(getattr(c, method)), (c, method)
    assert Channel.__name__ == "Channel"


def test_the_registry_chooses_the_channels_of_an_entry() -> None:
    store = InMemoryNotificationStore()
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object("checkout", NS, notifications=EVERYTHING))
    subject = store.read(ref)
    channels = registry(Dispatcher(store, metrics=NotifyMetrics(CollectorRegistry())))

    def chosen(type_: str) -> list[str]:
        entry = OutgoingMessage.model_validate(outbox_entry("1.1", type_))
        return [str(c) for c in channels_for(channels, subject, entry)]

    assert chosen("StepAdvanced") == ["slack"]
    assert chosen("RollbackStarted") == ["slack", "slackCritical", "email", "incident"]
    assert chosen("Succeeded") == ["slack", "incident"]  # a resolve (if one is open)


def test_the_dispatcher_names_no_channel() -> None:
    """Only the Slack client cache (``bot``) is left in the dispatcher, as a service."""
    source = inspect.getsource(dispatcher_module)
    for name in ("SlackWebhook", "SmtpMailer", "IncidentWebhook", "ChannelName.",
                 "root_message", "incident_event", "email_message"):
        assert name not in source, f"{name} in dispatcher.py: a channel belongs in channels.py"
