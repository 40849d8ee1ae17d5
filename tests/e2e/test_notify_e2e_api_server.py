"""Notifications end to end on the real API server: RolloutPlans and SLOPolicies created in
kube-apiserver, their outboxes written into status as the reconciler will write them, the
real dispatcher with the real KubeNotificationStore, real slack_sdk against the local Slack,
aiosmtpd for e-mail and a webhook receiver for incidents.

The controller does not exist yet, so ``Engine`` below stands in for the reconciler: one
resourceVersion-guarded status write per step (re-read and retry on 409), then ``submit``.
"""

from __future__ import annotations

import base64
import json
import logging
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, generate_latest

from controller.adapters.notify import (
    Dispatcher,
    DispatcherConfig,
    Kind,
    KubeNotificationStore,
    NotifyMetrics,
    ObjectRef,
)
from controller.adapters.notify.memory import outbox_entry, plan_object, policy_object
from controller.api.types import GROUP, VERSION
from controller.runtime.workqueue import WorkQueue
from tests.harness.fixtures import TestCluster
from tests.harness.slack_stub import SlackOutage, SlackStub
from tests.harness.smtp_stub import SmtpServer
from tests.harness.webhook_stub import WebhookReceiver

pytestmark = pytest.mark.cluster

SLACK = {"channel": "#deploys", "criticalChannel": "#oncall",
         "tokenSecretRef": {"name": "slack", "key": "token"}}
TIMEOUT = 30


class Engine:
    """Writes status the way the reconciler does, and announces after each write."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.ns = namespace
        self.dispatchers: list[Dispatcher] = []
        self.write_seconds: list[float] = []
        self.submit_ns: list[int] = []

    def secret(self, name: str, data: dict[str, str]) -> None:
        self.core.create_namespaced_secret(self.ns, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()}),
            _request_timeout=10)

    def create(self, kind: Kind, obj: dict[str, Any]) -> str:
        status = obj.pop("status")
        name = str(obj["metadata"]["name"])
        obj["metadata"]["namespace"] = self.ns
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, kind.plural, obj,
                                                    _request_timeout=10)
        self._patch(kind, name, lambda st: st.update(status))
        return name

    def get(self, kind: Kind, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, kind.plural,
                                                       name, _request_timeout=10)
        assert isinstance(obj, dict)
        return obj

    def notifications(self, kind: Kind, name: str) -> dict[str, Any]:
        return dict(self.get(kind, name).get("status", {}).get("notifications") or {})

    def step(self, kind: Kind, name: str, *entries: dict[str, Any], **status: Any) -> None:
        """One reconcile: change status, append to the outbox, one guarded write, submit."""

        def change(st: dict[str, Any]) -> None:
            st.update(status)
            st.setdefault("notifications", {}).setdefault("outbox", []).extend(entries)

        t0 = time.monotonic()
        self._patch(kind, name, change)
        self.write_seconds.append(time.monotonic() - t0)
        for d in self.dispatchers:
            s0 = time.perf_counter_ns()
            d.submit(str(kind), self.ns, name)
            self.submit_ns.append(time.perf_counter_ns() - s0)

    def _patch(self, kind: Kind, name: str, change: Any) -> None:
        for _ in range(20):
            obj = self.get(kind, name)
            status = obj.get("status") or {}
            change(status)
            body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                    "status": status}
            try:
                self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, self.ns, kind.plural, name, body,
                    _content_type="application/merge-patch+json", _request_timeout=10)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise AssertionError("status write kept conflicting")


@pytest.fixture
def api(cluster: TestCluster) -> Iterator[client.ApiClient]:
    a = cluster.api_client()
    yield a
    a.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def slack() -> Iterator[SlackStub]:
    with SlackStub() as stub:
        yield stub


@pytest.fixture
def engine(api: client.ApiClient, namespace: str, slack: SlackStub) -> Engine:
    e = Engine(api, namespace)
    e.secret("slack", {"token": slack.token})
    return e


def replica(cluster: TestCluster, slack: SlackStub, registry: CollectorRegistry | None = None,
            **config: Any) -> Dispatcher:
    """One controller replica's dispatcher: its own API client, clients and caches."""
    store = KubeNotificationStore(cluster.api_client(), reporting_instance="test")
    cfg = DispatcherConfig(cluster_name="kind-local", slack_base_url=slack.api_url,
                           **{"send_timeout": 3, "backoff_base": 0.5, "workers": 2, **config})
    queue = WorkQueue("notifications", max_keys=cfg.queue_size,
                      max_per_namespace=cfg.workers - 1 if cfg.workers > 1 else None)
    return Dispatcher(store, cfg, metrics=NotifyMetrics(registry or CollectorRegistry()),
                      queue=queue)


def drained(engine: Engine, kind: Kind, *names: str) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if all(not engine.notifications(kind, n).get("outbox") for n in names):
            return True
        time.sleep(0.1)
    return False


def replies(slack: SlackStub, root_ts: str) -> list[str | None]:
    return [m.key for m in slack.replies(root_ts)]


def test_a_full_run_restarted_midway_is_one_thread_updated_in_place(
    cluster: TestCluster, engine: Engine, slack: SlackStub
) -> None:
    plan = Kind.ROLLOUT_PLAN
    name = engine.create(plan, plan_object(
        "checkout", notifications={"slack": SLACK}, run=1, step=0, weight=10))
    first = replica(cluster, slack).start()
    engine.dispatchers = [first]
    engine.step(plan, name, outbox_entry("1.1", "RunStarted"))
    engine.step(plan, name, outbox_entry("1.2", "StepAdvanced", step=1, weight=25),
                currentStep=1, canaryWeight=25)
    assert drained(engine, plan, name) and first.wait_idle(TIMEOUT)
    first.stop()  # the controller restarts (or the leader changes) mid-run

    second = replica(cluster, slack).start()
    engine.dispatchers = [second]
    engine.step(plan, name, outbox_entry("1.3", "StepAdvanced", step=2, weight=50),
                currentStep=2, canaryWeight=50)
    engine.step(plan, name, outbox_entry("1.4", "StepAdvanced", step=3, weight=100),
                currentStep=3, canaryWeight=100)
    engine.step(plan, name, outbox_entry("1.5", "Succeeded"), phase="Succeeded",
                canaryWeight=0)
    assert drained(engine, plan, name) and second.wait_idle(TIMEOUT)
    second.stop()

    roots = slack.roots("#deploys")
    assert len(roots) == 1
    assert replies(slack, roots[0].ts) == ["1.1", "1.2", "1.3", "1.4", "1.5"]
    # Edited in place (how often depends on how many writes a pass saw at once).
    assert "Succeeded" in roots[0].text and roots[0].updates
    assert "Succeeded" not in roots[0].updates[0]["text"]
    state = engine.notifications(plan, name)
    assert state["slack"]["threadTs"] == roots[0].ts
    assert state["sent"] == ["1.1", "1.2", "1.3", "1.4", "1.5"]


def test_two_replicas_on_the_same_objects_post_nothing_twice(
    cluster: TestCluster, engine: Engine, slack: SlackStub
) -> None:
    plan = Kind.ROLLOUT_PLAN
    names = [engine.create(plan, plan_object(f"svc-{i}", notifications={"slack": SLACK}))
             for i in range(3)]
    a, b = replica(cluster, slack).start(), replica(cluster, slack).start()
    engine.dispatchers = [a, b]

    def run(name: str) -> None:
        for seq in range(1, 7):
            engine.step(plan, name, outbox_entry(f"1.{seq}", "StepAdvanced"))

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert drained(engine, plan, *names)
    assert a.wait_idle(TIMEOUT) and b.wait_idle(TIMEOUT)
    a.stop()
    b.stop()

    roots = slack.roots("#deploys")
    assert len(roots) == 3
    for root in roots:
        assert replies(slack, root.ts) == [f"1.{s}" for s in range(1, 7)]
    assert len(slack.messages()) == 3 * 7


def test_a_slack_outage_does_not_delay_a_rollback(
    cluster: TestCluster, engine: Engine, slack: SlackStub
) -> None:
    rollback_under_outage(cluster, engine, slack, SlackOutage(slack, status=500, seconds=3))


@pytest.mark.slow
def test_a_minute_of_slack_rate_limiting_does_not_delay_a_rollback(
    cluster: TestCluster, engine: Engine, slack: SlackStub
) -> None:
    rollback_under_outage(cluster, engine, slack, SlackOutage(slack, status=429, seconds=60),
                          deliver_within=90)


def rollback_under_outage(cluster: TestCluster, engine: Engine, slack: SlackStub,
                          outage: SlackOutage, deliver_within: float = 20) -> None:
    plan = Kind.ROLLOUT_PLAN
    name = engine.create(plan, plan_object("checkout", notifications={"slack": SLACK},
                                           step=1, weight=25))
    registry = CollectorRegistry()
    d = replica(cluster, slack, registry).start()
    engine.dispatchers = [d]
    engine.step(plan, name, outbox_entry("1.1", "RunStarted"))
    assert drained(engine, plan, name)
    engine.write_seconds.clear()
    engine.submit_ns.clear()

    with outage:
        # The rollback: weight 0 in one write, then the announcement.
        engine.step(plan, name, outbox_entry("1.2", "RollbackStarted"), phase="RollingBack",
                    canaryWeight=0)
        engine.step(plan, name, outbox_entry("1.3", "RolledBack"), phase="RolledBack")
        deadline = time.monotonic() + 10
        while True:  # until the failed attempt is recorded in status
            during = engine.notifications(plan, name)
            if len(during["outbox"]) == 2 and during["outbox"][0].get("lastError"):
                break
            assert time.monotonic() < deadline, "no failure recorded in status"
            time.sleep(0.05)
        samples = []
        for _ in range(1000):
            s0 = time.perf_counter_ns()
            d.submit("RolloutPlan", engine.ns, name)
            samples.append(time.perf_counter_ns() - s0)
        assert slack.wait_for(lambda s: len(s.replies(s.roots()[0].ts)) >= 3,
                              timeout=(outage.seconds or 0) + deliver_within)
    came_back = outage.started + (outage.seconds or 0)
    arrived = [m.posted_at for m in slack.replies(slack.roots()[0].ts)[1:]]
    d.stop()

    print(f"\nSlack {outage.status} for {outage.seconds:.0f} s: rollback status writes took "
          f"{max(engine.write_seconds) * 1000:.1f} ms (max of {len(engine.write_seconds)}); "
          f"submit() {statistics.median(engine.submit_ns) / 1000:.1f} µs after them, median "
          f"{statistics.median(samples) / 1000:.1f} µs / p99 "
          f"{statistics.quantiles(samples, n=100)[98] / 1000:.1f} µs over {len(samples)} "
          f"calls during the outage; messages arrived {min(arrived) - came_back:.1f} to "
          f"{max(arrived) - came_back:.1f} s after Slack came back")
    # submit waits for nothing; a rare outlier of a few ms is the OS or the GIL (5 ms switch
    # interval) on a shared machine, three orders of magnitude below any Slack timeout.
    assert max(engine.submit_ns) < 50_000_000 and statistics.median(samples) < 100_000
    assert max(engine.write_seconds) < 2  # the rollback's writes wait for nothing
    assert [e["key"] for e in during["outbox"]] == ["1.2", "1.3"]
    assert during["outbox"][0]["attempts"] >= 1 and during["outbox"][0]["lastError"]
    assert replies(slack, slack.roots()[0].ts) == ["1.1", "1.2", "1.3"]
    assert min(arrived) >= came_back - 0.5  # nothing got through during the outage
    assert max(arrived) - came_back < deliver_within
    assert drained(engine, plan, name)
    reason = "RateLimited" if outage.status == 429 else "ServerError"
    assert (registry.get_sample_value("rolloutctl_notifications_failed_total",
                                      {"channel": "slack", "reason": reason}) or 0) >= 1


def test_the_token_never_appears_in_logs_status_or_events(
    cluster: TestCluster, engine: Engine, slack: SlackStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = slack.token
    slack.token = "xoxb-not-the-one-in-the-secret"  # every call: invalid_auth, quoting ours
    slack.echo_secrets = True
    plan = Kind.ROLLOUT_PLAN
    name = engine.create(plan, plan_object("checkout", notifications={"slack": SLACK}))
    registry = CollectorRegistry()
    d = replica(cluster, slack, registry, backoff_max=1)
    engine.step(plan, name, outbox_entry("1.1", "RollbackStarted"))
    ref = ObjectRef(plan, engine.ns, name)
    d.process(ref)  # invalid_auth, the answer quoting the token
    slack.token = token
    slack.fail(500)
    time.sleep(1.1)
    d.process(ref)  # HTTP 500, the answer quoting the token

    events = client.CoreV1Api(engine.custom.api_client).list_namespaced_event(
        engine.ns, _request_timeout=10)
    mine = [ev for ev in events.items if ev.involved_object.name == name]
    assert [ev.reason for ev in mine] == ["NotificationFailed"]
    assert "invalid_auth" in str(mine[0].message)
    texts = {
        "logs": caplog.text + "\n".join(r.getMessage() for r in caplog.records),
        "status": json.dumps(engine.get(plan, name)),
        "Events": json.dumps([ev.to_dict() for ev in events.items], default=str),
        "metrics": generate_latest(registry).decode(),
    }
    assert any(c.status == 500 for c in slack.calls())
    for where, text in texts.items():
        for form in (token, base64.b64encode(token.encode()).decode()):
            assert form not in text, f"the token appears in {where}"


def test_rollback_and_freeze_are_emailed_and_open_then_resolve_incidents(
    cluster: TestCluster, engine: Engine, slack: SlackStub
) -> None:
    with SmtpServer() as smtp, WebhookReceiver() as hook:
        engine.secret("pd", {"routingKey": "routing-key-abcdef0123"})
        channels = {
            "email": {"to": ["oncall@example.com"], "from": "rolloutctl@example.com",
                      "smtp": {"host": "127.0.0.1", "port": smtp.port, "tls": "none"}},
            "incident": {"url": hook.url(),
                         "routingKeySecretRef": {"name": "pd", "key": "routingKey"}},
        }
        plan, policy = Kind.ROLLOUT_PLAN, Kind.SLO_POLICY
        p = engine.create(plan, plan_object("checkout", notifications=channels))
        q = engine.create(policy, policy_object("platform", notifications=channels,
                                                freeze_notify=["slack", "email"]))
        d = replica(cluster, slack).start()
        engine.dispatchers = [d]
        engine.step(plan, p, outbox_entry("1.1", "RollbackStarted"), phase="RollingBack")
        engine.step(policy, q, outbox_entry("f.1", "FreezeStarted", run=None), frozen=True)
        assert hook.wait_for(2, TIMEOUT) and smtp.wait_for(2, TIMEOUT)
        assert drained(engine, plan, p) and drained(engine, policy, q)
        opened = {engine.notifications(plan, p)["incident"]["dedupKey"],
                  engine.notifications(policy, q)["incident"]["dedupKey"]}
        engine.step(plan, p, outbox_entry("2.1", "RunStarted", run=2), run=2,
                    phase="Progressing")
        engine.step(policy, q, outbox_entry("f.2", "FreezeLifted", run=None), frozen=False)
        assert hook.wait_for(4, TIMEOUT) and smtp.wait_for(3, TIMEOUT)
        assert drained(engine, plan, p) and drained(engine, policy, q)
        d.stop()

    by_key: dict[str, list[str]] = {}
    for post in hook.posts:
        by_key.setdefault(post.body["dedup_key"], []).append(post.body["event_action"])
    assert set(by_key) == opened
    assert list(by_key.values()) == [["trigger", "resolve"], ["trigger", "resolve"]]
    subjects = sorted(m.message["Subject"] for m in smtp.messages)
    assert len(subjects) == 3 and any("checkout: RollbackStarted" in s for s in subjects)
    assert any("platform: FreezeStarted" in s for s in subjects)
    assert any("platform: FreezeLifted" in s for s in subjects)
    assert "incident" not in engine.notifications(plan, p)
    assert "incident" not in engine.notifications(policy, q)
