"""Secrets (Slack bot token, webhook URL, SMTP password, incident routing key) never appear in
logs, status, Events, exceptions or metrics, even when a server quotes them back.

The stand-ins are set to be careless (``echo_secrets``): their error answers repeat the
Authorization header or the secret webhook path, and logging is captured at DEBUG, where
slack_sdk logs whole response bodies.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from controller.adapters.notify import (
    DeliveryError,
    Dispatcher,
    DispatcherConfig,
    InMemoryNotificationStore,
    Kind,
    NotifyMetrics,
)
from controller.adapters.notify.memory import outbox_entry, plan_object
from controller.adapters.notify.render import Rendered
from controller.adapters.notify.slack import SlackBot, SlackWebhook
from tests.harness.slack_stub import SlackStub
from tests.harness.smtp_stub import SmtpServer
from tests.harness.webhook_stub import WebhookReceiver

NS = "shop"
TOKEN = "xoxb-1111111111-2222222222-REALLYSECRETtokenVALUE"
HOOK_PATH = "T0001/B0001/webhookSECRETpathPART"
PASSWORD = "smtp-Pa55word-SECRET"
ROUTING_KEY = "R0UTINGKEYsecret0123456789abcdef"
SECRETS = (TOKEN, HOOK_PATH, PASSWORD, ROUTING_KEY)


def forms(secret: str) -> list[str]:
    return [secret, base64.b64encode(secret.encode()).decode()]


def assert_clean(where: str, text: str) -> None:
    for secret in SECRETS:
        for form in forms(secret):
            assert form not in text, f"a secret appears in {where}"


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    # Slack expects a different token than the Secret holds: every call is invalid_auth,
    # and the answer quotes the Authorization header it got.
    with SlackStub(token="xoxb-the-one-slack-expects") as stub:
        stub.echo_secrets = True
        yield stub


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + "\n".join(r.getMessage() for r in caplog.records)


def test_the_bot_token_stays_out_of_logs_status_events_and_metrics(
    slack: SlackStub, captured: pytest.LogCaptureFixture
) -> None:
    store = InMemoryNotificationStore()
    store.put_secret(NS, "slack", {"token": TOKEN})
    registry = CollectorRegistry()
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS,
        notifications={"slack": {"channel": "#deploys", "criticalChannel": "#oncall",
                                 "tokenSecretRef": {"name": "slack", "key": "token"}}},
        outbox=[outbox_entry("1.1", "RollbackStarted")]))
    d = Dispatcher(store, DispatcherConfig(slack_base_url=slack.api_url),
                   metrics=NotifyMetrics(registry))
    d.process(ref)
    slack.token = TOKEN  # now the token is right, but Slack fails and quotes it
    slack.fail(500)
    store.update_status(ref, lambda st: st["notifications"]["outbox"][0].update(
        nextAttemptAt=None))
    d.process(ref)

    # The failures did happen and were recorded ...
    # Refused as invalid_auth (thread, critical channel), then 500s (the critical channel
    # first looks for a copy posted before); each answer quoted the Authorization header.
    assert [(c.method, c.status) for c in slack.calls()] == [
        ("auth.test", 200), ("chat.postMessage", 200),
        ("auth.test", 500), ("conversations.list", 500)]
    state = store.get(ref)["status"]["notifications"]
    assert "invalid_auth" in json.dumps(store.events[0].message)
    assert "HTTP 500" in state["outbox"][0]["lastError"]
    # ... and the token is nowhere.
    assert_clean("logs", everything_logged(captured))
    assert any("Received the following response" in r.getMessage() and "[redacted]" in
               r.getMessage() for r in captured.records)  # slack_sdk's DEBUG log, masked
    assert_clean("status", json.dumps(store.get(ref)))
    assert_clean("Events", json.dumps([e.message for e in store.events]))
    assert_clean("metrics", generate_latest(registry).decode())


def test_slack_errors_raised_by_the_adapters_never_quote_the_token(slack: SlackStub) -> None:
    bot = SlackBot(TOKEN, base_url=slack.api_url, timeout=2)
    msg = Rendered(text="hello", blocks=[])
    slack.token = TOKEN
    slack.fail(400)
    with pytest.raises(DeliveryError) as caught:
        bot.post("#deploys", msg, {"event_type": "rolloutctl", "event_payload": {"key": "k"}})
    err = caught.value
    assert err.reason == "Rejected" and err.__cause__ is None and err.__suppress_context__
    assert_clean("the exception", f"{err} {err!r} {err.args} {err.message}")

    slack.heal()
    slack.token = "xoxb-other"
    with pytest.raises(DeliveryError) as caught:
        bot.check()
    assert caught.value.reason == "AuthFailed" and caught.value.permanent
    assert_clean("the exception", f"{caught.value} {caught.value!r}")


def test_the_webhook_url_stays_out_of_logs_status_and_exceptions(
    slack: SlackStub, captured: pytest.LogCaptureFixture
) -> None:
    url = slack.webhook_url(HOOK_PATH)
    store = InMemoryNotificationStore()
    store.put_secret(NS, "hook", {"url": url})
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS,
        notifications={"slack": {"channel": "#deploys",
                                 "webhookSecretRef": {"name": "hook", "key": "url"}}},
        outbox=[outbox_entry("1.1", "RollbackStarted")]))
    slack.fail(500, methods={"webhook"})
    Dispatcher(store, DispatcherConfig(), metrics=NotifyMetrics(CollectorRegistry())
               ).process(ref)
    with pytest.raises(DeliveryError) as caught:
        SlackWebhook(url, timeout=2).post(Rendered(text="x", blocks=[]))

    assert "HTTP 5xx" in store.get(ref)["status"]["notifications"]["outbox"][0]["lastError"]
    assert_clean("logs", everything_logged(captured))
    assert_clean("status", json.dumps(store.get(ref)))
    assert_clean("the exception", f"{caught.value} {caught.value!r}")


def test_smtp_password_and_routing_key_stay_out_of_logs_and_status(
    captured: pytest.LogCaptureFixture,
) -> None:
    store = InMemoryNotificationStore()
    store.put_secret(NS, "smtp", {"password": PASSWORD})
    store.put_secret(NS, "pd", {"routingKey": ROUTING_KEY})
    with SmtpServer(username="rollout", password="not-what-the-secret-says") as smtp, \
            WebhookReceiver() as hook:
        hook.fail(400, count=1)
        ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
            "checkout", NS,
            notifications={
                "email": {"to": ["oncall@example.com"], "from": "rollout@example.com",
                          "smtp": {"host": "127.0.0.1", "port": smtp.port, "tls": "none",
                                   "username": "rollout",
                                   "passwordSecretRef": {"name": "smtp", "key": "password"}}},
                "incident": {"url": hook.url(),
                             "routingKeySecretRef": {"name": "pd", "key": "routingKey"}},
            },
            outbox=[outbox_entry("1.1", "RollbackStarted")]))
        Dispatcher(store, DispatcherConfig(), metrics=NotifyMetrics(CollectorRegistry())
                   ).process(ref)
        entry: dict[str, Any] = store.get(ref)["status"]["notifications"]["outbox"][0]

    assert "login refused" in entry["lastError"] or "HTTP 4xx" in entry["lastError"]
    assert smtp.messages == [] and hook.posts == []
    assert_clean("logs", everything_logged(captured))
    assert_clean("status", json.dumps(store.get(ref)))
    assert_clean("Events", json.dumps([e.message for e in store.events]))
