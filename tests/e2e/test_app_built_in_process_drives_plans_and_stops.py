"""The composition root in-process: ``build(Config(...))`` is the whole controller that
``rolloutctl run`` runs (the other end-to-end tests start that command), so a test or an
embedding program gets the same wiring by calling it: it takes the Lease, serves /readyz,
reconciles SLOPolicies and RolloutPlans on the real API server, and ``stop()`` releases the
Lease and closes the server. ``rolloutctl run`` is that root behind flags: SIGTERM stops it
and releases the Lease."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from controller.adapters import egress
from controller.adapters.kube.lease import KubeLeaseStore
from controller.api.types import GROUP, VERSION
from controller.app import Config, build
from tests.harness.builders import plan_doc, policy_doc
from tests.harness.egress import LOCAL_EGRESS
from tests.harness.fixtures import TestCluster
from tests.harness.stack import rolloutctl_binary

pytestmark = pytest.mark.cluster

LEASE = "in-process"


@pytest.fixture
def api(cluster: TestCluster) -> Iterator[client.ApiClient]:
    api = cluster.api_client()
    yield api
    api.close()  # type: ignore[no-untyped-call]


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def status_of(api: client.ApiClient, namespace: str, plural: str, name: str) -> dict[str, object]:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name, _request_timeout=10)
    return dict(obj.get("status") or {})


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_build_runs_the_whole_controller_in_process_and_stop_releases_the_lease(
    cluster: TestCluster, api: client.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # build() sets the process's egress policy: the one the tests run with (conftest.py),
    # and the API server's addresses it refuses only for this test
    monkeypatch.setattr(egress, "_api_server", set(egress._api_server))
    app = build(Config(kubeconfig=str(cluster.kubeconfig), namespaces=(namespace,),
                       identity="in-process-0", lease_namespace=namespace, lease_name=LEASE,
                       metrics_address="127.0.0.1:0", workers=2, egress_allow=LOCAL_EGRESS))
    leases = KubeLeaseStore(api, namespace, LEASE)
    custom = client.CustomObjectsApi(api)
    try:
        app.start()
        wait_for("the Lease", lambda: (r := leases.get()) is not None
                 and r.holder_identity == "in-process-0")
        url = app.manager.http_url
        assert url is not None
        wait_for("/readyz", lambda: http_status(f"{url}/readyz") == 200)

        policy = policy_doc(namespace=namespace)
        policy["metadata"] = {"name": "platform"}
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "slopolicies",
                                               policy, _request_timeout=10)
        plan = plan_doc(namespace=namespace, notifications=False)
        plan["metadata"] = {"name": "checkout"}
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "rolloutplans",
                                               plan, _request_timeout=10)
        # the policy reconciler evaluated it (no Prometheus configured: it says so)
        wait_for("the policy's status", lambda: status_of(
            api, namespace, "slopolicies", "platform").get("evaluatedAt"))
        # the plan reconciler saw its spec and its missing Deployments
        wait_for("the plan's status", lambda: status_of(
            api, namespace, "rolloutplans", "checkout").get("observedGeneration") == 1)
        st = status_of(api, namespace, "rolloutplans", "checkout")
        assert (st["phase"], st["reason"]) == ("Pending", "CanaryNotFound")
        conditions = {c["type"]: c for c in st["conditions"]}  # type: ignore[attr-defined]
        # the Gateway API router read the (missing) HTTPRoute
        assert conditions["Ready"]["reason"] == "RouteNotFound"
        # the plan read its policy from the cache: unmeasured budget, new runs wait
        assert conditions["Frozen"]["status"] == "True"
        assert conditions["Frozen"]["reason"] == "BudgetUnknown"
    finally:
        app.stop()
    record = leases.get()
    assert record is not None and record.holder_identity == ""  # released on stop
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/healthz", timeout=2)


def test_rolloutctl_run_is_the_same_root_and_sigterm_releases_the_lease(
    cluster: TestCluster, api: client.ApiClient, namespace: str, tmp_path: Path,
) -> None:
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [rolloutctl_binary(), "run", "--kubeconfig", str(cluster.kubeconfig),
             "--namespace", namespace, "--identity", "cli-0", "--lease-namespace", namespace,
             "--lease-name", LEASE, "--metrics-address", "127.0.0.1:0", "--log-format", "text"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    leases = KubeLeaseStore(api, namespace, LEASE)
    try:
        wait_for("the Lease", lambda: (r := leases.get()) is not None
                 and r.holder_identity == "cli-0")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    record = leases.get()
    assert record is not None and record.holder_identity == "", log.read_text()
    assert "rolloutctl controller cli-0 starting" in log.read_text()
