"""`rolloutctl get` on the real API server (kubectl's table, -o wide/json/yaml, -A, the
context's namespace), and the errors a user meets there: an unknown plan and a user
without permission get one line naming the problem and the fix, exit code 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.harness.cluster import RBAC_USER
from tests.harness.fixtures import TestCluster
from tests.harness.stack import rollout_plan

from .test_cli_harness import rolloutctl

pytestmark = pytest.mark.cluster


@pytest.fixture
def api(cluster: TestCluster) -> Iterator[client.ApiClient]:
    api = cluster.api_client()
    yield api
    api.close()  # type: ignore[no-untyped-call]


def create_plans(api: client.ApiClient, namespace: str, *names: str) -> None:
    custom = client.CustomObjectsApi(api)
    for name in names:
        custom.create_namespaced_custom_object(
            "rolloutctl.dev", "v1alpha1", namespace, "rolloutplans",
            rollout_plan(name, "platform"), _request_timeout=30)


def run(kubeconfig: Path, *args: str) -> tuple[int, str, str]:
    done = rolloutctl(None, *args, "--kubeconfig", str(kubeconfig))
    return done.returncode, done.stdout, done.stderr


def test_get_lists_plans_like_kubectl(cluster: TestCluster, namespace: str,
                                      api: client.ApiClient) -> None:
    create_plans(api, namespace, "checkout", "payments")
    code, out, err = run(cluster.kubeconfig, "get", "-n", namespace)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "STEP", "WEIGHT", "GATES", "AGE"]
    # no controller runs here: the plans have no status yet
    assert [line.split()[:5] for line in lines[1:]] == [
        ["checkout", "Pending", "-", "0%", "0/1"], ["payments", "Pending", "-", "0%", "0/1"]]

    code, out, _ = run(cluster.kubeconfig, "get", "-A", "-o", "wide")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0][:2] == ["NAMESPACE", "NAME"] and rows[0][-3:] == ["REVISION", "REASON",
                                                                     "MESSAGE"]
    assert [namespace, "checkout"] in [r[:2] for r in rows]

    code, out, _ = run(cluster.kubeconfig, "get", "-n", namespace, "-o", "json")
    listed = json.loads(out)
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["checkout", "payments"]
    code, out, _ = run(cluster.kubeconfig, "get", "checkout", "-n", namespace, "-o", "yaml")
    one = yaml.safe_load(out)
    assert one["kind"] == "RolloutPlan" and one["metadata"]["namespace"] == namespace

    empty = f"{namespace}-empty"
    code, out, err = run(cluster.kubeconfig, "get", "-n", empty)
    assert code == 0 and out == "" and err == f"No RolloutPlans found in namespace {empty}.\n"


def test_the_namespace_defaults_to_the_kubeconfig_context(cluster: TestCluster,
                                                          namespace: str,
                                                          api: client.ApiClient,
                                                          tmp_path: Path) -> None:
    create_plans(api, namespace, "checkout")
    doc = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    doc["contexts"][0]["context"]["namespace"] = namespace
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(doc))
    code, out, err = run(kubeconfig, "get")
    assert code == 0, err
    assert out.splitlines()[1].split()[0] == "checkout"


@pytest.mark.parametrize("args", [
    ["status", "nope"], ["get", "nope"], ["promote", "nope"], ["pause", "nope"],
    ["abort", "nope"], ["drill", "nope"], ["drill", "nope", "--dry-run"], ["report", "nope"],
])
def test_an_unknown_plan_is_one_line_and_exit_2(cluster: TestCluster, namespace: str,
                                                args: list[str]) -> None:
    code, out, err = run(cluster.kubeconfig, *args, "-n", namespace)
    assert code == 2 and out == ""
    assert err == (f"error: RolloutPlan 'nope' not found in namespace {namespace}; list them "
                   f"with `rolloutctl get -n {namespace}` (or -A)\n")


@pytest.mark.parametrize("args", [["freeze", "status", "nope"], ["budget", "nope"],
                                  ["freeze", "override", "nope", "--reason", "x",
                                   "--expires", "1h"]])
def test_an_unknown_policy_is_one_line_and_exit_2(cluster: TestCluster, namespace: str,
                                                  args: list[str]) -> None:
    code, out, err = run(cluster.kubeconfig, *args, "-n", namespace)
    assert code == 2 and out == ""
    assert err == (f"error: SLOPolicy 'nope' not found in namespace {namespace}; list them "
                   f"with `rolloutctl freeze status -n {namespace}` (or -A)\n")


@pytest.mark.parametrize(("args", "what"), [
    (["get"], "list rolloutplans"),
    (["status", "checkout"], "get RolloutPlan {ns}/checkout"),
    (["promote", "checkout"], "patch RolloutPlan {ns}/checkout"),
    (["freeze", "status"], "list slopolicies"),
])
def test_no_permission_is_one_line_and_exit_2(cluster: TestCluster, namespace: str,
                                              api: client.ApiClient, args: list[str],
                                              what: str) -> None:
    create_plans(api, namespace, "checkout")
    code, out, err = run(cluster.kubeconfig_for(RBAC_USER), *args, "-n", namespace)
    assert code == 2 and out == ""
    assert err == (f"error: {what.format(ns=namespace)}: forbidden for user {RBAC_USER}; ask "
                   "a cluster admin for a role that allows it (`rolloutctl doctor` lists what "
                   "is missing)\n")


def test_a_user_who_may_read_plans_but_not_crds_gets_not_found(
        cluster: TestCluster, namespace: str, api: client.ApiClient) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "plan-reader"},
        "rules": [{"apiGroups": ["rolloutctl.dev"], "resources": ["rolloutplans"],
                   "verbs": ["get", "list"]}]}, _request_timeout=30)
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "plan-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "plan-reader"},
        "subjects": [{"kind": "User", "name": RBAC_USER}]}, _request_timeout=30)
    kubeconfig = cluster.kubeconfig_for(RBAC_USER)
    create_plans(api, namespace, "checkout")
    code, out, err = run(kubeconfig, "get", "-n", namespace)
    assert code == 0 and out.splitlines()[1].split()[0] == "checkout", err
    code, out, err = run(kubeconfig, "status", "nope", "-n", namespace)
    assert code == 2
    assert err.startswith("error: RolloutPlan 'nope' not found in namespace")


def test_kubectl_rolloutctl_runs_the_plugin(cluster: TestCluster, namespace: str,
                                            api: client.ApiClient) -> None:
    """`kubectl rolloutctl get` finds kubectl-rolloutctl on the PATH and prints the same."""
    import os
    import subprocess
    import sys

    from tests.harness.cluster import find_binary

    create_plans(api, namespace, "checkout")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "KUBECONFIG": str(cluster.kubeconfig)}
    via_kubectl = subprocess.run([str(find_binary("kubectl")), "rolloutctl", "get", "-n",
                                  namespace], capture_output=True, text=True, env=env,
                                 timeout=60, check=False)
    assert via_kubectl.returncode == 0, via_kubectl.stderr
    code, direct, _ = run(cluster.kubeconfig, "get", "-n", namespace)
    assert code == 0
    assert [line.split()[:5] for line in via_kubectl.stdout.splitlines()] == [
        line.split()[:5] for line in direct.splitlines()]
    assert via_kubectl.stdout.splitlines()[1].split()[:2] == ["checkout", "Pending"]
    assert all(line == line.rstrip() for line in via_kubectl.stdout.splitlines())


def test_wait_without_a_controller_gives_up_with_exit_2(cluster: TestCluster, namespace: str,
                                                        api: client.ApiClient) -> None:
    create_plans(api, namespace, "checkout")
    code, out, err = run(cluster.kubeconfig, "promote", "checkout", "-n", namespace, "--wait",
                         "--timeout", "2s")
    assert code == 2
    rid = out.split("(request ")[1].split(" ")[0]
    assert err.startswith(f"error: the controller has not handled promote request {rid} after "
                          "2s (the plan is Pending: -); a promotion is acted on once every "
                          "gate passes; is the controller running? (`rolloutctl doctor`)")
    assert len(err.splitlines()) == 1
