"""`rolloutctl status` reads the plan through the official Kubernetes client whatever the
kubeconfig's shape (token, token file, CA file or data, tls-server-name, an exec plugin,
several files): one kubeconfig loader, so the shapes print exactly the same, on the real API
server with a plan mid-run. (A second, hand-written reader that skipped the client's import
was removed in issue 22: its fixes were the two paths disagreeing; bench.cli_status keeps
the wall time under its goal of 1 s.)"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.harness import midrun
from tests.harness.fixtures import TestCluster

from .test_cli_harness import rolloutctl

pytestmark = pytest.mark.cluster


@pytest.fixture
def plan(cluster: TestCluster, namespace: str) -> Iterator[str]:
    api = cluster.api_client()
    midrun.create_mid_run_plan(api, namespace)
    api.close()  # type: ignore[no-untyped-call]
    yield "checkout"


def kubeconfig_doc(cluster: TestCluster) -> dict[str, object]:
    doc = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    assert isinstance(doc, dict)
    return doc


def write(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def exec_plugin_kubeconfig(cluster: TestCluster, tmp_path: Path) -> Path:
    """The admin's token handed over by an exec credential plugin (only the client runs it)."""
    return midrun.exec_plugin_kubeconfig(Path(cluster.kubeconfig), tmp_path)


def token_file_kubeconfig(cluster: TestCluster, tmp_path: Path) -> Path:
    """A tokenFile relative to the kubeconfig and the CA inline (certificate-authority-data)."""
    doc = kubeconfig_doc(cluster)
    cluster_entry = doc["clusters"][0]["cluster"]  # type: ignore[index]
    ca = Path(cluster_entry.pop("certificate-authority")).read_bytes()
    cluster_entry["certificate-authority-data"] = base64.b64encode(ca).decode()
    user = doc["users"][0]["user"]  # type: ignore[index]
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "token").write_text(user.pop("token") + "\n")
    user["tokenFile"] = "creds/token"
    return write(tmp_path / "kubeconfig-token-file", doc)


def without_clock(text: str) -> str:
    """The view with the durations that follow the clock (the hold's elapsed time) masked:
    two runs a second apart may differ there and nowhere else."""
    return re.sub(r"\b(\d+[hms])+\b", "<d>", text)


def test_a_token_and_an_exec_plugin_kubeconfig_print_the_same(
        cluster: TestCluster, namespace: str, plan: str, tmp_path: Path) -> None:
    token = rolloutctl(None, "status", plan, "-n", namespace, "--kubeconfig",
                       str(cluster.kubeconfig))
    exec_kubeconfig = exec_plugin_kubeconfig(cluster, tmp_path)
    through_client = rolloutctl(None, "status", plan, "-n", namespace, "--kubeconfig",
                                str(exec_kubeconfig))
    assert token.returncode == through_client.returncode == 0, (token.stderr,
                                                                through_client.stderr)
    assert token.stderr == through_client.stderr == ""
    assert "phase Progressing  HoldingStep: step 2/4 at 25%" in token.stdout
    assert "api_availability  Pass     99.98%  >= 99.9%" in token.stdout
    assert without_clock(token.stdout) == without_clock(through_client.stdout)

    as_json = [json.loads(rolloutctl(None, "status", plan, "-n", namespace, "-o", "json",
                                     "--kubeconfig", str(k)).stdout)
               for k in (Path(cluster.kubeconfig), exec_kubeconfig)]
    assert as_json[0] == as_json[1]
    assert as_json[0]["canaryWeight"] == 25 and as_json[0]["phase"] == "Progressing"


def test_a_token_file_and_an_inline_ca_are_read(
        cluster: TestCluster, namespace: str, plan: str, tmp_path: Path) -> None:
    kubeconfig = token_file_kubeconfig(cluster, tmp_path)
    done = rolloutctl(None, "status", plan, "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert done.returncode == 0, done.stderr
    assert "step 2  25% hold 10m" in done.stdout


@pytest.mark.parametrize("server_name", ["kubernetes.default", "kubernetes"])
def test_tls_server_name_is_checked_against_the_certificate(
        cluster: TestCluster, namespace: str, plan: str, tmp_path: Path,
        server_name: str) -> None:
    """The local API server's certificate names kubernetes, kubernetes.default(.svc) and
    127.0.0.1: `tls-server-name` is the name checked (kubectl's semantics), a name the
    certificate does not carry is refused."""
    doc = kubeconfig_doc(cluster)
    doc["clusters"][0]["cluster"]["tls-server-name"] = server_name  # type: ignore[index]
    kubeconfig = write(tmp_path / "kubeconfig-sni", doc)
    done = rolloutctl(None, "status", plan, "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert done.returncode == 0, done.stderr
    assert "step 2  25% hold 10m" in done.stdout

    doc["clusters"][0]["cluster"]["tls-server-name"] = "not-the-server.example"  # type: ignore[index]
    wrong = write(tmp_path / "kubeconfig-wrong-name", doc)
    done = rolloutctl(None, "status", plan, "-n", namespace, "--kubeconfig", str(wrong))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"error: get RolloutPlan {namespace}/checkout: the API server's certificate was "
        "refused (Hostname mismatch, certificate is not valid for 'not-the-server.example');"
        " check certificate-authority and tls-server-name in the kubeconfig\n")


def test_the_context_namespace_is_the_default(cluster: TestCluster, namespace: str,
                                              plan: str, tmp_path: Path) -> None:
    doc = kubeconfig_doc(cluster)
    doc["contexts"][0]["context"]["namespace"] = namespace  # type: ignore[index]
    kubeconfig = write(tmp_path / "kubeconfig-ns", doc)
    done = rolloutctl(None, "status", plan, "--kubeconfig", str(kubeconfig))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"RolloutPlan {namespace}/checkout")


def test_a_plan_without_its_policy_still_shows(cluster: TestCluster, namespace: str,
                                               plan: str) -> None:
    """The policy gives the gates their units; a plan whose policy is gone still shows."""
    api = cluster.api_client()
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        "rolloutctl.dev", "v1alpha1", namespace, "slopolicies", "platform",
        _request_timeout=30)
    api.close()  # type: ignore[no-untyped-call]
    done = rolloutctl(None, "status", plan, "-n", namespace, "--kubeconfig",
                      str(cluster.kubeconfig))
    assert done.returncode == 0, done.stderr
    assert re.search(r"^api_availability +Pass ", done.stdout, re.MULTILINE)


def test_several_files_in_kubeconfig_are_merged_as_kubectl_does(
        cluster: TestCluster, namespace: str, plan: str, tmp_path: Path) -> None:
    """`KUBECONFIG=a:b` (kubectl's merge of several files) goes through the client, which
    merges them; a listed file that does not exist is skipped, as kubectl skips it."""
    listed = os.pathsep.join([str(tmp_path / "not-there"), str(cluster.kubeconfig)])
    for args in (["status", plan], ["get"]):
        done = rolloutctl(None, *args, "-n", namespace, env={"KUBECONFIG": listed})
        assert done.returncode == 0, done.stderr
        assert "checkout" in done.stdout
