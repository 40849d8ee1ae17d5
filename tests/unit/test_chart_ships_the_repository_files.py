"""What the chart and the plain manifests ship is what the repository holds: the CRDs
generated from the API models, the platform SLOPolicy of policies/, and the chart rendered
with its default values (manifests/rolloutctl.yaml). Regenerate with `make crds` (then copy
to helm/rolloutctl/crds/) and `manifests/generate.sh`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from test_chart_harness import CHART, REPO, by_kind, helm_binary, render

from controller.api.policy import SLOPolicy


def test_the_chart_ships_the_generated_crds_unchanged() -> None:
    generated = {p.name: p.read_bytes() for p in (REPO / "manifests" / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert generated, "no CRDs in manifests/crds"
    assert shipped.keys() == generated.keys()
    stale = [name for name in generated if shipped[name] != generated[name]]
    assert not stale, f"helm/rolloutctl/crds/ differs from manifests/crds/: {stale}; " \
                      "cp manifests/crds/*.yaml helm/rolloutctl/crds/"


def test_the_chart_ships_the_platform_policy_of_the_repository() -> None:
    source = REPO / "policies" / "platform-slos.yaml"
    copy = CHART / "files" / "policies" / "platform-slos.yaml"
    assert copy.read_bytes() == source.read_bytes(), \
        "cp policies/platform-slos.yaml helm/rolloutctl/files/policies/"


def test_default_policies_render_the_platform_policy_into_each_namespace(
    tmp_path: Path,
) -> None:
    source = yaml.safe_load((REPO / "policies" / "platform-slos.yaml").read_text())
    docs = render(tmp_path, {"defaultPolicies": {"enabled": True,
                                                 "namespaces": ["shop", "web"]}})
    policies = by_kind(docs, "SLOPolicy")
    assert [p["metadata"]["namespace"] for p in policies] == ["shop", "web"]
    for policy in policies:
        assert policy["apiVersion"] == source["apiVersion"]
        assert policy["metadata"]["name"] == source["metadata"]["name"] == "platform"
        assert policy["spec"] == source["spec"]
        # the namespace's platform policy: it applies to every plan there
        assert policy["metadata"]["labels"]["rolloutctl.dev/platform"] == "true"
        SLOPolicy.model_validate(policy)  # what the controller will read


def test_default_policies_notifications_can_be_replaced(tmp_path: Path) -> None:
    mine = {"slack": {"channel": "#sre", "tokenSecretRef": {"name": "bot", "key": "token"}}}
    docs = render(tmp_path, {"defaultPolicies": {"enabled": True, "namespaces": ["shop"],
                                                 "notifications": mine}})
    (policy,) = by_kind(docs, "SLOPolicy")
    assert policy["spec"]["notifications"] == mine
    source = yaml.safe_load((REPO / "policies" / "platform-slos.yaml").read_text())
    assert {k: v for k, v in policy["spec"].items() if k != "notifications"} == {
        k: v for k, v in source["spec"].items() if k != "notifications"}


def test_the_plain_manifests_are_the_chart_rendered_with_default_values() -> None:
    helm_binary()  # skips (or fails in CI) without helm
    rendered = subprocess.run([str(REPO / "manifests" / "generate.sh"), "--stdout"],
                              capture_output=True, text=True, check=True, timeout=120).stdout
    checked_in = (REPO / "manifests" / "rolloutctl.yaml").read_text()
    assert rendered == checked_in, "manifests/rolloutctl.yaml is stale: run manifests/generate.sh"
    docs = [d for d in yaml.safe_load_all(checked_in) if d]
    (namespace,) = by_kind(docs, "Namespace")
    assert namespace["metadata"]["name"] == "rolloutctl-system"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert not by_kind(docs, "CustomResourceDefinition")  # those are manifests/crds/
    assert {d["metadata"].get("namespace", "rolloutctl-system") for d in docs} == {
        "rolloutctl-system"}
