"""Issue #9 end to end: a freeze is announced once, however often the policy is evaluated
while frozen. FreezeStarted reaches Slack once and the e-mail inbox once, the incident
webhook gets one trigger; FreezeLifted resolves that incident once. A second freeze is a
new incident.

Real servers: kube-apiserver, the `rolloutctl run` process (its notification dispatcher uses
the real slack_sdk against the local Slack stand-in), aiosmtpd, a webhook receiver, and
Prometheus with a backfilled 30-day history leaving 20 % of the budget. The policy is
evaluated every 2 s; the freeze starts and lifts by moving ``whenRemainingBelow``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.freeze_world import (
    FreezeWorld,
    freeze_policy,
    set_thresholds,
    world_with_history,
)
from tests.harness.slack_stub import SlackStub
from tests.harness.smtp_stub import SmtpServer
from tests.harness.stack import Stack
from tests.harness.webhook_stub import WebhookReceiver

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]

ROUTING_KEY = "routing-key-freeze-0123456789"
EVALUATIONS_WHILE_FROZEN = 5


@pytest.fixture
def world(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[FreezeWorld]:
    with world_with_history(Path(cluster.kubeconfig), cluster.api_client(), namespace,
                            tmp_path / "stack", 20.0, traffic=False) as w:
        yield w


def evaluations(stack: Stack, frozen: bool, count: int, timeout: float) -> list[str]:
    """Wait until the policy has been evaluated COUNT times in the FROZEN state; returns the
    evaluation times seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        st = stack.policy_status()
        if st.get("frozen") is frozen and st.get("evaluatedAt") not in seen:
            seen.append(st["evaluatedAt"])
        time.sleep(0.2)
    assert len(seen) >= count, f"only {len(seen)} evaluations while frozen={frozen}: {seen}"
    return seen


def freeze_messages(slack: SlackStub, what: str) -> list[Any]:
    """Replies in a freeze's thread starting with WHAT (the roots show the live state)."""
    return [m for m in slack.messages() if m.thread_ts is not None and m.text.startswith(what)]


def replies_at_least(what: str, count: int) -> Callable[[SlackStub], bool]:
    return lambda s: len(freeze_messages(s, what)) >= count


def mails(smtp: SmtpServer, type_: str) -> list[str]:
    """Subjects of the e-mails announcing TYPE_ (the body names it: ``Type:      X``)."""
    return [str(m.message["Subject"]) for m in smtp.messages
            if any(line.split(":", 1)[1].strip() == type_
                   for line in str(m.message.get_content()).splitlines()
                   if line.startswith("Type:"))]


def test_a_freeze_notifies_and_opens_one_incident_and_its_lift_resolves_it_once(
    world: FreezeWorld,
) -> None:
    stack = world.stack
    assert stack.prometheus is not None
    with SlackStub() as slack, SmtpServer() as smtp, WebhookReceiver() as hook:
        stack.create_secret("slack", {"token": slack.token})
        stack.create_secret("pd", {"routingKey": ROUTING_KEY})
        notifications = {
            "slack": {"channel": "#deploys", "tokenSecretRef": {"name": "slack", "key": "token"}},
            "email": {"to": ["oncall@example.com"], "from": "rolloutctl@example.com",
                      "smtp": {"host": "127.0.0.1", "port": smtp.port, "tls": "none"}},
            "incident": {"url": hook.url(),
                         "routingKeySecretRef": {"name": "pd", "key": "routingKey"}},
        }
        stack.apply(freeze_policy("platform", stack.prometheus.url, evaluation_interval="2s",
                                  notify=["slack", "email"], notifications=notifications))
        controller = stack.start_controller(extra=["--slack-base-url", slack.api_url])
        evaluations(stack, False, 2, 60)

        dedup_keys = []
        for cycle in (1, 2):
            set_thresholds(stack, "platform", 30, 35)
            evaluations(stack, True, EVALUATIONS_WHILE_FROZEN, 60)
            assert hook.wait_for(2 * cycle - 1, 30) and smtp.wait_for(2 * cycle - 1, 30)
            set_thresholds(stack, "platform", 10, 15)
            evaluations(stack, False, EVALUATIONS_WHILE_FROZEN, 60)
            assert hook.wait_for(2 * cycle, 30) and smtp.wait_for(2 * cycle, 30)
            assert slack.wait_for(replies_at_least("releases open again", cycle), 30)
            posts = [p.body for p in hook.posts]
            assert [p["event_action"] for p in posts] == ["trigger", "resolve"] * cycle
            trigger, resolve = posts[-2:]
            assert trigger["dedup_key"] == resolve["dedup_key"]
            dedup_keys.append(trigger["dedup_key"])
            assert trigger["routing_key"] == ROUTING_KEY
            assert len(mails(smtp, "FreezeStarted")) == cycle
            assert len(mails(smtp, "FreezeLifted")) == cycle
            assert len(freeze_messages(slack, "releases frozen")) == cycle
            assert len(freeze_messages(slack, "releases open again")) == cycle
            roots = slack.roots()
            assert len(roots) == cycle, "one thread per freeze"
            # The root showed the freeze while it lasted and was updated in place at the lift.
            assert roots[-1].updates and "frozen" in roots[-1].updates[0]["text"].lower()
            assert roots[-1].text.endswith("releases open, budget remaining 20.0%")

        assert dedup_keys[0] != dedup_keys[1], "a second freeze is a new incident"
        time.sleep(5)  # late duplicates would show now
        assert len(hook.posts) == 4 and len(smtp.messages) == 4
        status = stack.policy_status()
        assert "incident" not in status["notifications"]
        events = [e for e in stack.events() if e["involvedObject"]["kind"] == "SLOPolicy"]
        reasons = [e["reason"] for e in events]
        assert reasons.count("FreezeStarted") == 2 and reasons.count("FreezeLifted") == 2
        for text in (controller.log.read_text(), json.dumps(status), json.dumps(events)):
            assert slack.token not in text and ROUTING_KEY not in text
