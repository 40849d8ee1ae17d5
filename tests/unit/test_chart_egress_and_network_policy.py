"""The chart's egress settings reach `rolloutctl run`; its NetworkPolicy (off by default)
lets the controller reach only the API server, DNS and the allowed CIDRs, and be scraped
only by the configured peers."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_chart_deployment import run_params
from test_chart_harness import by_kind, one, render


def test_egress_and_per_namespace_limits_reach_the_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = render(tmp_path, {
        "egress": {"allow": ["10.0.0.0/8", "prometheus.monitoring.svc"]},
        "maxConcurrentRolloutsPerNamespace": 2,
        "maxWorkersPerNamespace": 1,
        "metrics": {"bindAddress": "::", "maxConnections": 16},
    })
    params = run_params(docs, monkeypatch)
    assert params["egress_allow"] == "10.0.0.0/8,prometheus.monitoring.svc"
    assert params["max_concurrent_rollouts_per_namespace"] == 2
    assert params["max_workers_per_namespace"] == 1
    assert params["metrics_address"] == "[::]:8080"
    assert params["http_max_connections"] == 16


def test_by_default_no_network_policy_and_the_default_egress_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = render(tmp_path)
    assert by_kind(docs, "NetworkPolicy") == []
    params = run_params(docs, monkeypatch)
    assert params["egress_allow"] == ""
    assert params["metrics_address"] == "0.0.0.0:8080"


def test_the_network_policy_allows_the_api_server_dns_and_the_allowed_cidrs(
    tmp_path: Path,
) -> None:
    docs = render(tmp_path, {
        "egress": {"allow": ["10.20.0.0/16", "prometheus.monitoring.svc", "*"]},
        "networkPolicy": {
            "enabled": True, "apiServerCIDRs": ["172.18.0.2/32"],
            "egressCIDRs": [{"cidr": "203.0.113.0/24", "ports": [587]}],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": "monitoring"}}}],
        },
    })
    spec = one(docs, "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"] == (
        one(docs, "Deployment")["spec"]["selector"]["matchLabels"])
    [ingress] = spec["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"}
    api, dns, allowed, extra = spec["egress"]
    assert api["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}]
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert allowed == {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}  # names are not CIDRs
    assert extra == {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
                     "ports": [{"port": 587, "protocol": "TCP"}]}
