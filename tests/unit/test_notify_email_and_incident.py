"""Rollbacks and freezes are e-mailed (SMTP, TLS optional) and open an incident on the
incident webhook (PagerDuty Events v2), which is resolved on recovery with the same
dedup_key. Drills never page anyone. One channel failing never holds up another.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.notify import (
    Dispatcher,
    DispatcherConfig,
    InMemoryNotificationStore,
    Kind,
    NotifyMetrics,
    ObjectRef,
)
from controller.adapters.notify.memory import outbox_entry, plan_object, policy_object
from tests.harness.fakes import FakeClock
from tests.harness.slack_stub import SlackStub
from tests.harness.smtp_stub import SmtpServer, self_signed_cert
from tests.harness.webhook_stub import WebhookReceiver

NS = "shop"
EVIDENCE = [{"name": "api_availability", "verdict": "Fail", "reason": "ObjectiveMissed",
             "value": 98.7, "objective": 99.9, "burnRate": 13.0, "samples": 5400,
             "query": "sum(rate(http_requests_total[5m]))"}]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def store() -> InMemoryNotificationStore:
    s = InMemoryNotificationStore()
    s.put_secret(NS, "pd", {"routingKey": "routing-key-0123456789"})
    return s


def settings(smtp: SmtpServer, hook: WebhookReceiver) -> dict[str, Any]:
    return {
        "email": {"to": ["oncall@example.com", "team@example.com"],
                  "from": "rolloutctl@example.com",
                  "smtp": {"host": "127.0.0.1", "port": smtp.port, "tls": "none"}},
        "incident": {"url": hook.url("/v2/enqueue"),
                     "routingKeySecretRef": {"name": "pd", "key": "routingKey"}},
    }


def dispatcher(store: InMemoryNotificationStore, clock: FakeClock | None = None,
               **config: Any) -> Dispatcher:
    return Dispatcher(store, DispatcherConfig(cluster_name="prod-eu1", send_timeout=3,
                                              **config),
                      clock=clock, metrics=NotifyMetrics(CollectorRegistry()))


def add(store: InMemoryNotificationStore, ref: ObjectRef, *entries: dict[str, Any],
        **status: Any) -> None:
    def change(st: dict[str, Any]) -> None:
        st.update(status)
        st["notifications"]["outbox"].extend(entries)

    store.update_status(ref, change)


def test_a_rollback_is_emailed_with_its_evidence_and_nothing_else_is(
    smtp: SmtpServer, hook: WebhookReceiver, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications=settings(smtp, hook), step=1, weight=25,
        outbox=[outbox_entry("1.1", "RunStarted"), outbox_entry("1.2", "StepAdvanced"),
                outbox_entry("1.3", "RollbackStarted", title="Rolling back checkout",
                             text="api_availability failed for 5m", evidence=EVIDENCE,
                             step=1, weight=25)]))
    dispatcher(store).process(ref)

    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail.rcpt_tos == ("oncall@example.com", "team@example.com")
    assert mail.mail_from == "rolloutctl@example.com"
    msg = mail.message
    assert msg["Subject"] == ("[rolloutctl] CRITICAL: shop/checkout: Rolling back checkout")
    assert msg["X-Rolloutctl-Key"] == "1.3" and msg["Message-ID"].endswith("@rolloutctl.dev>")
    body = msg.get_content()
    for fact in ("api_availability failed for 5m", "Cluster:   prod-eu1", "Namespace: shop",
                 "Revision:  7f9c2ab", "Step:      2/4", "Weight:    25%",
                 "api_availability: Fail (ObjectiveMissed), value 98.7 vs objective 99.9",
                 "burn rate 13", "samples 5400", "query: sum(rate(http_requests_total[5m]))"):
        assert fact in body
    assert store.get(ref)["status"]["notifications"]["sent"] == ["1.1", "1.2", "1.3"]


def test_a_rollback_opens_an_incident_that_the_next_run_resolves(
    smtp: SmtpServer, hook: WebhookReceiver, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications=settings(smtp, hook),
        outbox=[outbox_entry("1.1", "RunStarted"),
                outbox_entry("1.2", "RollbackStarted", title="Rolling back checkout",
                             evidence=EVIDENCE),
                outbox_entry("1.3", "RolledBack")]))
    d = dispatcher(store)
    d.process(ref)
    opened = store.get(ref)["status"]["notifications"]["incident"]
    add(store, ref, outbox_entry("2.1", "RunStarted", run=2), run=2)
    d.process(ref)

    events = [p.body for p in hook.posts]
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    trigger, resolve = events
    assert trigger["dedup_key"] == resolve["dedup_key"] == opened["dedupKey"]
    assert trigger["routing_key"] == "routing-key-0123456789"
    payload = trigger["payload"]
    assert set(payload) >= {"summary", "source", "severity", "component", "group", "class",
                            "custom_details"}
    assert payload["summary"] == "shop/checkout: Rolling back checkout"
    assert (payload["severity"], payload["group"], payload["class"]) == (
        "critical", "shop", "RollbackStarted")
    assert payload["source"] == "prod-eu1/shop/checkout" and payload["component"] == "checkout"
    assert payload["custom_details"]["evidence"] == EVIDENCE
    assert opened["triggerKey"] == "1.2"
    assert "incident" not in store.get(ref)["status"]["notifications"]
    assert [m.message["X-Rolloutctl-Key"] for m in smtp.messages] == ["1.2", "1.3"]


def test_a_freeze_is_emailed_and_opens_an_incident_until_it_is_lifted(
    smtp: SmtpServer, hook: WebhookReceiver, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.SLO_POLICY, policy_object(
        "platform", NS, notifications=settings(smtp, hook), frozen=True, budget_remaining=7.5,
        freeze_notify=["slack", "email"],
        outbox=[outbox_entry("f.1", "FreezeStarted", run=None,
                             title="Releases frozen: api_availability budget 7.5% < 10%")]))
    d = dispatcher(store)
    d.process(ref)
    add(store, ref, outbox_entry("f.2", "FreezeLifted", run=None, title="Releases open"),
        frozen=False, budgetRemaining=15.5)
    d.process(ref)

    subjects = [m.message["Subject"] for m in smtp.messages]
    assert subjects == [
        "[rolloutctl] CRITICAL: shop/platform: Releases frozen: api_availability budget 7.5% "
        "< 10%",
        "[rolloutctl] INFO: shop/platform: Releases open"]
    assert "Budget remaining: 7.5%" in smtp.messages[0].message.get_content()
    events = [p.body for p in hook.posts]
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert events[0]["dedup_key"] == events[1]["dedup_key"]
    assert events[0]["payload"]["class"] == "FreezeStarted"


def test_a_policy_can_keep_freezes_out_of_email_and_incidents(
    smtp: SmtpServer, hook: WebhookReceiver, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.SLO_POLICY, policy_object(
        "platform", NS, notifications=settings(smtp, hook), frozen=True,
        freeze_notify=["slack"], open_incident=False,
        outbox=[outbox_entry("f.1", "FreezeStarted", run=None)]))
    dispatcher(store).process(ref)
    assert smtp.messages == [] and hook.posts == []
    assert store.get(ref)["status"]["notifications"]["sent"] == ["f.1"]


def test_a_drill_is_emailed_as_a_drill_and_pages_no_one(
    smtp: SmtpServer, hook: WebhookReceiver, store: InMemoryNotificationStore
) -> None:
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications=settings(smtp, hook),
        outbox=[outbox_entry("1.1", "RollbackStarted", drill=True, title="Drill rollback")]))
    dispatcher(store).process(ref)
    assert hook.posts == []
    msg = smtp.messages[0].message
    assert msg["Subject"].startswith("[rolloutctl] [DRILL] CRITICAL:")
    assert msg.get_content().startswith("DRILL: this is a rehearsal")


def test_a_resolve_never_overtakes_a_trigger_that_failed(
    smtp: SmtpServer, hook: WebhookReceiver, store: InMemoryNotificationStore
) -> None:
    hook.fail(500, count=1)
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications=settings(smtp, hook),
        outbox=[outbox_entry("1.1", "RollbackStarted"), outbox_entry("1.2", "RolledBack"),
                outbox_entry("2.1", "RunStarted", run=2)]))
    clock = FakeClock(datetime.now(UTC))
    d = dispatcher(store, clock, backoff_base=0.3)
    delay = d.process(ref)
    state = store.get(ref)["status"]["notifications"]
    assert hook.posts == [] and delay is not None and 0 < delay <= 0.3
    # E-mail did not wait for the incident webhook.
    assert [m.message["X-Rolloutctl-Key"] for m in smtp.messages] == ["1.1", "1.2"]
    assert [(e["key"], e.get("delivered", [])) for e in state["outbox"]] == [
        ("1.1", ["email"]), ("2.1", [])]
    clock.advance(delay)
    assert d.process(ref) is None

    assert [p.body["event_action"] for p in hook.posts] == ["trigger", "resolve"]
    assert hook.posts[0].body["dedup_key"] == hook.posts[1].body["dedup_key"]
    assert len(smtp.messages) == 2  # the rollback e-mail was not sent again


def test_a_slack_outage_does_not_hold_up_the_rollback_email(
    smtp: SmtpServer, hook: WebhookReceiver, store: InMemoryNotificationStore
) -> None:
    with SlackStub() as slack:
        slack.fail(500)
        store.put_secret(NS, "slack", {"token": slack.token})
        ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
            "checkout", NS, notifications={
                **settings(smtp, hook),
                "slack": {"channel": "#deploys",
                          "tokenSecretRef": {"name": "slack", "key": "token"}}},
            outbox=[outbox_entry("1.1", "RollbackStarted")]))
        dispatcher(store, slack_base_url=slack.api_url).process(ref)
    assert len(smtp.messages) == 1 and len(hook.posts) == 1
    entry = store.get(ref)["status"]["notifications"]["outbox"][0]
    assert entry["delivered"] == ["email", "incident"] and "HTTP 500" in entry["lastError"]


def test_email_over_starttls_with_a_password_from_the_secret(
    tmp_path: Path, hook: WebhookReceiver, store: InMemoryNotificationStore
) -> None:
    pair = self_signed_cert(tmp_path)
    if pair is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, _ = pair
    store.put_secret(NS, "smtp", {"password": "s3cret-pw"})
    trust = ssl.create_default_context(cafile=str(cert))
    with SmtpServer(username="rollout", password="s3cret-pw", tls=pair) as server:
        ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
            "checkout", NS, notifications={"email": {
                "to": ["oncall@example.com"], "from": "rolloutctl@example.com",
                "smtp": {"host": "127.0.0.1", "port": server.port, "tls": "starttls",
                         "username": "rollout",
                         "passwordSecretRef": {"name": "smtp", "key": "password"}}}},
            outbox=[outbox_entry("1.1", "RolledBack")]))
        dispatcher(store, smtp_ssl_context=trust).process(ref)
        received = server.messages
    assert len(received) == 1
    assert received[0].tls and received[0].authenticated_as == "rollout"
