"""The controller runs under the chart's pod settings, as far as this machine can show it
without a container engine: the installed `rolloutctl run` as UID/GID 65532 (no root, no
new privileges), the root filesystem read-only, only an empty /tmp writable, and no
environment but the Deployment's, reaches /readyz as the leader with the chart's RBAC.

This is the image's runtime contract (Dockerfile: USER 65532, HOME=TMPDIR=/tmp,
PYTHONDONTWRITEBYTECODE=1) checked on the real program; the image itself is not built here.
Needs root and util-linux (unshare, setpriv) to build the private read-only mount namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.cluster import CONTROLLER_USER, free_port
from tests.harness.fixtures import TestCluster, unavailable

from .test_chart_harness import (
    CONTROLLER_NAMESPACE,
    chart,
    chart_rbac,
    documents,
    eventually,
    http_get,
)

pytestmark = pytest.mark.cluster

#: runs as root in a private mount namespace, then drops to the chart's UID/GID
SANDBOX = r"""
set -eu
share="$1"; keep="$2"; shift 2
mount --make-rprivate /
# the installation, when it lives under /tmp (a checkout there): kept visible below the
# empty /tmp, read-only like the rest of the root
if [ -n "$keep" ]; then mkdir -p /mnt/keep && mount --bind "$keep" /mnt/keep; fi
# /root is 0700 on this machine: keep only the Python installation visible below it
if [ -d /root/.pyenv ]; then
    mkdir -p /mnt/pyenv && mount --bind /root/.pyenv /mnt/pyenv
    mount -t tmpfs -o mode=0755 tmpfs /root && mkdir /root/.pyenv
    mount --bind /mnt/pyenv /root/.pyenv
fi
mkdir -p /run/rolloutctl && mount --bind "$share" /run/rolloutctl
mount -t tmpfs -o mode=1777,size=64m tmpfs /tmp      # the chart's emptyDir
if [ -n "$keep" ]; then mkdir -p "$keep" && mount --bind /mnt/keep "$keep"; fi
mount --bind / / && mount -o remount,bind,ro /       # readOnlyRootFilesystem
cd /
exec setpriv --reuid 65532 --regid 65532 --clear-groups --no-new-privs "$@"
"""


def installation_under_tmp() -> str:
    """The directory holding the project and its virtualenv when it lies under /tmp (which
    the sandbox replaces with an empty tmpfs), else ''."""
    project = Path(__file__).resolve().parents[2]
    keep = Path(os.path.commonpath([project, Path(sys.prefix).resolve()]))
    return str(keep) if keep.is_relative_to("/tmp") and keep != Path("/tmp") else ""


def pod_environment(docs: list[dict[str, Any]], namespace: str, port: int) -> dict[str, str]:
    """The container's environment as the kubelet would set it (downward API filled in)."""
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    fields = {"metadata.name": "rolloutctl-7f9c-readonly", "metadata.namespace": namespace}
    out = {}
    for var in c["env"]:
        out[var["name"]] = (var["value"] if "value" in var
                            else fields[var["valueFrom"]["fieldRef"]["fieldPath"]])
    assert out["ROLLOUTCTL_METRICS_ADDRESS"] == "0.0.0.0:8080"
    # a shared test machine: loopback and a free port instead of every interface's 8080
    out["ROLLOUTCTL_METRICS_ADDRESS"] = f"127.0.0.1:{port}"
    return out


def test_the_controller_runs_as_65532_on_a_read_only_root(
    cluster: TestCluster, namespace: str, tmp_path: Path,
) -> None:
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        unavailable("needs root with unshare and setpriv to build a read-only root")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        unavailable(f"cannot create a mount namespace: {probe.stderr.decode().strip()}")

    lease = f"readonly-{namespace}"[:63].rstrip("-")
    values = {"watchNamespaces": [namespace], "leaderElection": {"leaseName": lease}}
    docs = documents(chart(tmp_path, values))

    # what the pod gets mounted: its service account's credentials (here a kubeconfig)
    share = tmp_path / "share"
    share.mkdir()
    config = yaml.safe_load(cluster.kubeconfig_for(CONTROLLER_USER).read_text())
    for entry in config["clusters"]:
        ca = entry["cluster"].get("certificate-authority")
        if ca:
            shutil.copy(ca, share / "ca.crt")
            entry["cluster"]["certificate-authority"] = "/run/rolloutctl/ca.crt"
    (share / "kubeconfig").write_text(yaml.safe_dump(config))
    # readable by UID 65532 through the bind mount at /run/rolloutctl (as a projected volume)
    share.chmod(0o755)
    for path in share.iterdir():
        path.chmod(0o644)

    port = free_port()
    environment = pod_environment(docs, CONTROLLER_NAMESPACE, port)
    environment["PATH"] = "/usr/bin:/bin"
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    rolloutctl = str(Path(sys.executable).with_name("rolloutctl"))
    command = ["env", "-i", *[f"{k}={v}" for k, v in environment.items()],
               rolloutctl, "run", *args, "--kubeconfig", "/run/rolloutctl/kubeconfig"]

    log = tmp_path / "controller.log"
    with chart_rbac(cluster, tmp_path, values), log.open("wb") as out:
        process = subprocess.Popen(["unshare", "-m", "sh", "-c", SANDBOX, "sandbox",
                                    str(share), installation_under_tmp(), *command],
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            def leading() -> None:
                assert process.poll() is None, log.read_text()
                status, body = http_get(f"http://127.0.0.1:{port}/readyz")
                assert (status, body) == (200, "ok (leader rolloutctl-7f9c-readonly)"), body
            eventually(leading, timeout=60, interval=0.25)

            # the process that answers is the controller itself, without root
            ids = {line.split(":")[0]: line.split()[1:]
                   for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
                   if line.startswith(("Uid:", "Gid:", "NoNewPrivs:"))}
            assert ids["Uid"] == ["65532"] * 4 and ids["Gid"] == ["65532"] * 4, ids
            assert ids["NoNewPrivs"] == ["1"]
            assert Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")[1:3] == [
                rolloutctl.encode(), b"run"]
            status, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200 and "rolloutctl_leader 1.0" in metrics
            text = log.read_text()
            assert "Read-only file system" not in text and "Permission denied" not in text, text
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)
    assert process.returncode == 0, log.read_text()  # a clean SIGTERM shutdown
