"""A warning burn-rate alert is sent, not only computed: with the stable service burning its
budget faster than a warning alert's factor on both windows, the real controller posts one
message to the policy's Slack channel (``#monitoring``, as the shipped policy has it) —
through the real slack-sdk against the local stand-in — and freezes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fixtures import TestCluster
from tests.harness.slack_stub import SlackStub
from tests.harness.stack import BAD, TOTAL, Stack, slo_policy

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]


@pytest.fixture
def stack(cluster: TestCluster, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(Path(cluster.kubeconfig), cluster.api_client(), namespace, tmp_path / "stack")
    try:
        s.start_services()
        s.create_workloads()
        s.start_traffic()
        yield s
    finally:
        s.stop()


def test_a_warning_burn_rate_alert_is_posted_once_to_monitoring(stack: Stack) -> None:
    assert stack.prometheus is not None and stack.stable_app is not None
    stack.stable_app.configure(error_rate=0.05)  # 5x the 1 % budget of a 99 % objective
    with SlackStub() as slack:
        stack.create_secret("rolloutctl-slack", {"token": slack.token})
        stack.apply(slo_policy("platform", stack.service, stack.prometheus.url, {
            "evaluationInterval": "2s",
            "slos": [{"name": "api_availability", "objective": 99, "window": "1h",
                      "sli": {"ratio": {"bad": BAD, "total": TOTAL}},
                      "burnRateAlerts": [{"severity": "warning", "factor": 2,
                                          "long": "20s", "short": "5s"}]}],
            "notifications": {"slack": {
                "channel": "#monitoring", "criticalChannel": "#oncall",
                "tokenSecretRef": {"name": "rolloutctl-slack", "key": "token"}}},
        }))
        stack.start_controller(extra=["--slack-base-url", slack.api_url])

        def posted() -> bool:
            return any("api_availability burns" in m.text
                       for m in slack.messages("monitoring"))
        stack.wait_for(posted, 120, "the warning in #monitoring")
        time.sleep(6)  # three more evaluations, the alert still firing
        warnings = [m for m in slack.messages("monitoring") if "api_availability" in m.text]
        assert len(warnings) == 1, [m.text for m in warnings]
        assert "warning at 2x" in warnings[0].text, warnings[0].text
        assert not slack.messages("oncall")  # a warning pages nobody
        st = stack.policy_status()
        assert st["services"][0]["warningsFiring"] == ["api_availability/0"]
        assert not st.get("frozen")
