"""While Slack fails or rate-limits, the root message's in-place update backs off like any
other delivery, however often the reconciler submits the plan.

Found by the reliability suite (``python -m bench.reliability --only slack``): with Slack
answering 500 or 429, every reconcile pass submitted the plan, the dispatcher tried
``chat.update`` again at once and recorded the failure in status, whose write triggered the
next reconcile pass: ~25 ``chat.update`` calls and status writes a second for as long as
Slack was down, ignoring Retry-After, and rollbacks were detected measurably later.
"""

from __future__ import annotations

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
from controller.adapters.notify.memory import outbox_entry, plan_object
from tests.harness.slack_stub import SlackStub

NS = "shop"
SLACK = {"channel": "#deploys", "tokenSecretRef": {"name": "slack", "key": "token"}}


class Clock:
    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.mono = 1000.0
        self.wall = datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> Any:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


def started_run(slack: SlackStub) -> tuple[InMemoryNotificationStore, ObjectRef, Dispatcher,
                                           Clock]:
    store = InMemoryNotificationStore()
    store.put_secret(NS, "slack", {"token": slack.token})
    ref = store.put(Kind.ROLLOUT_PLAN, plan_object(
        "checkout", NS, notifications={"slack": SLACK},
        outbox=[outbox_entry("1.1", "RunStarted")]))
    clock = Clock()
    d = Dispatcher(store, DispatcherConfig(slack_base_url=slack.api_url, send_timeout=2,
                                           backoff_base=5, rate_limit_inline_wait=0),
                   clock=clock, metrics=NotifyMetrics(CollectorRegistry()))
    d.process(ref)  # the root and the first reply
    assert [m.key for m in slack.messages()] == ["root.uid-checkout.run-1", "1.1"]
    # the run moves on: the root shows a new step and weight (no new outbox entry)
    store.update_status(ref, lambda st: st.update(currentStep=1, canaryWeight=25))
    return store, ref, d, clock


@pytest.mark.parametrize("fault", ["500", "429"])
def test_a_failing_root_update_is_not_retried_on_every_submit(fault: str) -> None:
    with SlackStub() as slack:
        store, ref, d, clock = started_run(slack)
        if fault == "500":
            slack.fail(500)
        else:
            slack.rate_limit(30)
        delays = [d.process(ref) for _ in range(20)]  # 20 reconcile passes submit it
        assert len(slack.calls("chat.update")) == 1
        assert store.get(ref)["status"]["notifications"]["failures"] == 1
        wanted = 5.0 if fault == "500" else 30.0  # backoff base, or Slack's Retry-After
        assert delays[0] is not None and wanted - 1 <= delays[0] <= wanted

        slack.heal()
        clock.mono += wanted + 0.1
        d.process(ref)
        assert len(slack.calls("chat.update")) == 2
        assert len(slack.messages()[0].updates) == 1  # the root now shows step 2 at 25 %


def test_root_updates_back_off_exponentially_while_slack_stays_down() -> None:
    with SlackStub() as slack:
        _, ref, d, clock = started_run(slack)
        slack.fail(500)
        delays = []
        for _ in range(4):
            delays.append(d.process(ref))
            clock.mono += 1000
        assert delays == [5.0, 10.0, 20.0, 40.0]
        assert len(slack.calls("chat.update")) == 4
