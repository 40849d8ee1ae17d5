"""A real Kubernetes control plane on loopback, started and stopped as one unit.

``etcd`` + ``kube-apiserver`` (RBAC on, token users), and with workloads also
``kube-controller-manager``, ``kube-scheduler`` and ``kwok`` with fake Nodes, so that
Deployments become ready. Binaries come from ``tools/build-control-plane.sh``.

Command line::

    python -m tests.harness.cluster up DIR [--no-workloads] [--nodes N]
    python -m tests.harness.cluster down DIR
    python -m tests.harness.cluster status DIR
    python -m tests.harness.cluster kubeconfig DIR USER   # prints the path

Everything lives under DIR: ``kubeconfig`` (admin), ``tokens.json`` (user -> bearer
token), ``pids`` (process name -> PID), ``cluster.json`` (ports and settings), ``pki/``,
``etcd/``, ``logs/<name>.log``. ``down`` stops exactly the PIDs in ``DIR/pids``.

Token users (static token file, ``--token-auth-file``):

* ``admin``: group ``system:masters`` (everything).
* ``rbac-user``: no group besides ``system:authenticated``; grant it what a test needs.
* ``system:serviceaccount:rolloutctl-system:rolloutctl``: the controller's identity, with
  the groups a real service account has, so RoleBindings whose subject is the ServiceAccount
  ``rolloutctl`` in namespace ``rolloutctl-system`` (as the Helm chart writes them) apply.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

ADMIN_USER = "admin"
RBAC_USER = "rbac-user"
CONTROLLER_USER = "system:serviceaccount:rolloutctl-system:rolloutctl"
CONTEXT_NAME = "rolloutctl-local"

#: user -> groups (besides system:authenticated, which the API server adds itself)
TOKEN_USERS: dict[str, tuple[str, ...]] = {
    ADMIN_USER: ("system:masters",),
    RBAC_USER: (),
    CONTROLLER_USER: ("system:serviceaccounts", "system:serviceaccounts:rolloutctl-system"),
}

CONTROL_PLANE = ("etcd", "kube-apiserver")
WORKLOADS = ("kube-controller-manager", "kube-scheduler", "kwok")
BINARIES = (*CONTROL_PLANE, *WORKLOADS)

REPO_DIR = Path(__file__).resolve().parents[2]


class ClusterError(RuntimeError):
    """The control plane could not be started (or a binary is missing)."""


class BinariesMissing(ClusterError):
    """A control-plane binary is not built."""


def bin_dir() -> Path:
    """Where the binaries are: ``$ROLLOUTCTL_BIN_DIR`` or ``<repo>/.k8s-bin``."""
    override = os.environ.get("ROLLOUTCTL_BIN_DIR")
    return Path(override) if override else REPO_DIR / ".k8s-bin"


def find_binary(name: str) -> Path:
    path = bin_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise BinariesMissing(
            f"{path} is missing: run tools/build-control-plane.sh "
            "(or set ROLLOUTCTL_BIN_DIR to a folder holding the binaries)"
        )
    return path


def crd_dir() -> Path:
    """Gateway API HTTPRoute and Istio VirtualService CRDs copied by the build script."""
    return bin_dir() / "crds"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- processes


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _started_by_us(pid: int, marker: str) -> bool:
    """True when PID's command line mentions MARKER (the cluster directory)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def stop_pids(pids: Mapping[str, int], marker: str, timeout: float = 15.0) -> None:
    """Stop each PID in reverse start order: SIGTERM, wait up to TIMEOUT, then SIGKILL.

    One at a time, so the API server shuts down while etcd is still there (SIGTERM to all
    at once makes kube-apiserver's shutdown hang on etcd). A PID whose command line does
    not mention MARKER is not ours (the PID was reused) and is left alone.
    """
    ours = [p for p in pids.values() if pid_alive(p) and _started_by_us(p, marker)]
    for pid in reversed(ours):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if _wait_gone(pid, timeout):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        if not pid_alive(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect PID's exit status if it is our child (else it is reaped by its parent)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- HTTP


def _ssl_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def api_request(
    server: str,
    token: str,
    ca_file: Path,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """One request to the API server; returns (status, decoded JSON or text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_ssl_context(ca_file)) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


# --------------------------------------------------------------------------- the cluster


@dataclass(frozen=True)
class Cluster:
    """A running control plane and everything needed to talk to it."""

    dir: Path
    server: str
    ca_file: Path
    tokens: dict[str, str]
    pids: dict[str, int] = field(default_factory=dict)
    workloads: bool = True
    etcd_url: str = ""

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (context ``rolloutctl-local``)."""
        return self.dir / "kubeconfig"

    def token(self, user: str) -> str:
        try:
            return self.tokens[user]
        except KeyError:
            raise KeyError(f"no token user {user!r}; known: {sorted(self.tokens)}") from None

    def kubeconfig_for(self, user: str) -> Path:
        """Write (once) and return a kubeconfig that authenticates as token user USER."""
        if user == ADMIN_USER:
            return self.kubeconfig
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
        path = self.dir / f"kubeconfig-{safe}"
        write_kubeconfig(path, self.server, self.ca_file, user, self.token(user))
        return path

    def api_client(self, user: str = ADMIN_USER) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` authenticated as USER (admin by default)."""
        return new_api_client(self.kubeconfig_for(user))

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, user: str = ADMIN_USER
    ) -> tuple[int, Any]:
        """A raw JSON request as USER; returns (HTTP status, decoded body)."""
        return api_request(self.server, self.token(user), self.ca_file, method, path, body)

    def is_ready(self) -> bool:
        try:
            status, _ = self.request("GET", "/readyz")
        except (OSError, ssl.SSLError):
            return False
        return status == 200

    def is_alive(self) -> bool:
        return bool(self.pids) and all(pid_alive(p) for p in self.pids.values())

    def stop(self) -> None:
        stop_cluster(self.dir)


def new_api_client(kubeconfig: Path) -> ApiClient:
    """A ``kubernetes.client.ApiClient`` from a kubeconfig file (imported lazily)."""
    from kubernetes import config

    api: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return api


def write_kubeconfig(path: Path, server: str, ca_file: Path, user: str, token: str) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT_NAME,
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": user}}],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


def load_cluster(directory: str | os.PathLike[str]) -> Cluster | None:
    """The cluster recorded in DIRECTORY (running or not), or None."""
    d = Path(directory).resolve()
    try:
        info = json.loads((d / "cluster.json").read_text())
        tokens = json.loads((d / "tokens.json").read_text())
    except (OSError, ValueError):
        return None
    pids = _read_pids(d)
    return Cluster(
        dir=d,
        server=info["server"],
        ca_file=Path(info["ca_file"]),
        tokens=tokens,
        pids=pids,
        workloads=bool(info.get("workloads", True)),
        etcd_url=info.get("etcd_url", ""),
    )


def _read_pids(d: Path) -> dict[str, int]:
    try:
        return {str(k): int(v) for k, v in json.loads((d / "pids").read_text()).items()}
    except (OSError, ValueError):
        return {}


def _write_pids(d: Path, pids: Mapping[str, int]) -> None:
    tmp = d / "pids.tmp"
    tmp.write_text(json.dumps(dict(pids), indent=2) + "\n")
    tmp.replace(d / "pids")


class _Launcher:
    """Starts processes in their own sessions and records their PIDs as it goes."""

    def __init__(self, d: Path) -> None:
        self.dir = d
        self.pids: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log_path = self.dir / "logs" / f"{name}.log"
        with open(log_path, "ab") as log:
            log.write(f"# {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        self.procs[name] = proc
        self.pids[name] = proc.pid
        _write_pids(self.dir, self.pids)
        return proc

    def check(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise ClusterError(
                f"{name} exited with code {proc.returncode}; "
                f"last lines of {self.dir / 'logs' / (name + '.log')}:\n"
                + log_tail(self.dir / "logs" / f"{name}.log")
            )

    def check_all(self) -> None:
        for name in self.procs:
            self.check(name)


def _wait(
    what: str,
    predicate: Any,
    timeout: float,
    launcher: _Launcher,
    log_name: str,
    interval: float = 0.25,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        launcher.check_all()
        if predicate():
            return
        time.sleep(interval)
    raise ClusterError(
        f"timed out after {timeout:.0f} s waiting for {what}; last lines of "
        f"{launcher.dir / 'logs' / (log_name + '.log')}:\n"
        + log_tail(launcher.dir / "logs" / f"{log_name}.log")
    )


def _generate_sa_key(path: Path) -> None:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ClusterError(
                "neither the cryptography package nor openssl is available"
            ) from None
        subprocess.run(
            [openssl, "genrsa", "-out", str(path), "2048"], check=True, capture_output=True
        )
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    path.chmod(0o600)


def _node(name: str) -> dict[str, Any]:
    """A Node that kwok manages (no taint, so ordinary Pods schedule on it)."""
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
            },
            "phase": "Running",
        },
    }


def start_cluster(
    directory: str | os.PathLike[str],
    workloads: bool = True,
    nodes: int = 2,
    timeout: float = 90.0,
) -> Cluster:
    """Start the control plane under DIRECTORY and return it once it is ready.

    When DIRECTORY already holds a live, ready cluster it is returned as is. On failure
    every process started so far is stopped and ClusterError is raised.
    """
    d = Path(directory).resolve()
    existing = load_cluster(d)
    if existing is not None and existing.is_alive() and existing.is_ready():
        return existing
    if existing is not None:  # stale: stop what is left of it
        stop_cluster(d)

    names = BINARIES if workloads else CONTROL_PLANE
    binaries = {name: find_binary(name) for name in names}

    d.mkdir(parents=True, exist_ok=True)
    for sub in ("etcd", "pki", "logs"):
        shutil.rmtree(d / sub, ignore_errors=True)
        (d / sub).mkdir(mode=0o700)
    for stale in d.glob("kubeconfig*"):
        stale.unlink()

    tokens = {user: secrets.token_hex(24) for user in TOKEN_USERS}
    (d / "tokens.json").write_text(json.dumps(tokens, indent=2) + "\n")
    (d / "tokens.json").chmod(0o600)
    with open(d / "tokens.csv", "w") as f:
        for user, groups in TOKEN_USERS.items():
            line = f"{tokens[user]},{user},uid-{user.replace(':', '-')}"
            if groups:
                line += ',"' + ",".join(groups) + '"'
            f.write(line + "\n")
    (d / "tokens.csv").chmod(0o600)
    _generate_sa_key(d / "sa.key")

    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    server = f"https://127.0.0.1:{api_port}"
    ca_file = d / "pki" / "apiserver.crt"
    cluster = Cluster(
        dir=d,
        server=server,
        ca_file=ca_file,
        tokens=tokens,
        workloads=workloads,
        etcd_url=etcd_url,
    )
    (d / "cluster.json").write_text(
        json.dumps(
            {
                "server": server,
                "ca_file": str(ca_file),
                "etcd_url": etcd_url,
                "workloads": workloads,
                "nodes": nodes if workloads else 0,
                "bin_dir": str(bin_dir()),
            },
            indent=2,
        )
        + "\n"
    )

    launcher = _Launcher(d)
    try:
        launcher.start(
            "etcd",
            [
                str(binaries["etcd"]),
                "--name=rolloutctl-test",
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=rolloutctl-test=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        _wait("etcd /health", lambda: _etcd_healthy(etcd_url), 30, launcher, "etcd")

        launcher.start(
            "kube-apiserver",
            [
                str(binaries["kube-apiserver"]),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={d / 'pki'}",
                f"--service-account-issuer={server}",
                f"--service-account-key-file={d / 'sa.key'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
                "--v=1",
            ],
        )
        _wait(
            "kube-apiserver /readyz",
            lambda: ca_file.exists() and cluster.is_ready(),
            timeout,
            launcher,
            "kube-apiserver",
        )
        write_kubeconfig(cluster.kubeconfig, server, ca_file, ADMIN_USER, tokens[ADMIN_USER])

        if workloads:
            kubeconfig = str(cluster.kubeconfig)
            launcher.start(
                "kube-controller-manager",
                [
                    str(binaries["kube-controller-manager"]),
                    f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    f"--service-account-private-key-file={d / 'sa.key'}",
                    f"--root-ca-file={ca_file}",
                    "--use-service-account-credentials=false",
                    # kwok's fake nodes can miss a heartbeat on a loaded machine; the node
                    # lifecycle controller would then mark every Pod on them not Ready, and
                    # kwok never readies them again. It still removes the not-ready taint of
                    # new nodes, but gives a silent node a day before calling it down.
                    "--node-monitor-grace-period=24h",
                    "--v=1",
                ],
            )
            launcher.start(
                "kube-scheduler",
                [
                    str(binaries["kube-scheduler"]),
                    f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    "--leader-elect=false",
                    "--secure-port=0",
                    "--v=1",
                ],
            )
            (d / "kwok.yaml").touch()  # keeps kwok away from ~/.kwok/kwok.yaml
            launcher.start(
                "kwok",
                [
                    str(binaries["kwok"]),
                    f"--kubeconfig={kubeconfig}",
                    f"--config={d / 'kwok.yaml'}",
                    "--manage-all-nodes=true",
                    # Pods annotated kwok.x-k8s.io/status=custom keep the status a test
                    # writes through pods/status, as a kubelet would (ImagePullBackOff...).
                    # Deprecated in kwok 0.7 in favour of Stages but still honoured by its
                    # stage controller; a Stage would have to restate every default stage.
                    "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
                    "--cidr=10.244.0.1/16",
                    "--node-ip=127.0.0.1",
                ],
            )
            for i in range(nodes):
                status, body = cluster.request("POST", "/api/v1/nodes", _node(f"kwok-node-{i}"))
                if status not in (201, 409):
                    raise ClusterError(f"creating Node kwok-node-{i}: HTTP {status}: {body}")
            _wait(
                f"{nodes} kwok Nodes to be Ready",
                lambda: _ready_nodes(cluster) >= nodes,
                60,
                launcher,
                "kwok",
            )
            _wait(
                "the default ServiceAccount (kube-controller-manager running)",
                lambda: (
                    cluster.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0]
                    == 200
                ),
                60,
                launcher,
                "kube-controller-manager",
            )
        launcher.check_all()
    except BaseException:
        stop_pids(launcher.pids, str(d))
        (d / "pids").unlink(missing_ok=True)
        raise
    return Cluster(
        dir=d,
        server=server,
        ca_file=ca_file,
        tokens=tokens,
        pids=dict(launcher.pids),
        workloads=workloads,
        etcd_url=etcd_url,
    )


def _etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return bool(json.loads(r.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def _ready_nodes(cluster: Cluster) -> int:
    status, body = cluster.request("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")
    if status != 200:
        return 0
    count = 0
    for node in body.get("items", []):
        for cond in node.get("status", {}).get("conditions", []) or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                count += 1
    return count


def stop_cluster(directory: str | os.PathLike[str], timeout: float = 15.0) -> list[str]:
    """Stop exactly the processes recorded in DIRECTORY/pids; returns their names."""
    d = Path(directory).resolve()
    pids = _read_pids(d)
    stop_pids(pids, str(d), timeout=timeout)
    (d / "pids").unlink(missing_ok=True)
    return list(pids)


def restart_apiserver(directory: str | os.PathLike[str], timeout: float = 90.0) -> Cluster:
    """Stop the kube-apiserver of the cluster in DIRECTORY (SIGTERM, then SIGKILL) and start
    it again with the same command line (same flags, port, certificates and etcd), then wait
    for ``/readyz``. etcd and the other processes keep running. Returns the cluster as
    recorded afterwards (its ``pids`` name the new process)."""
    d = Path(directory).resolve()
    cluster = load_cluster(d)
    pid = cluster.pids.get("kube-apiserver") if cluster is not None else None
    if cluster is None or pid is None or not (pid_alive(pid) and _started_by_us(pid, str(d))):
        raise ClusterError(f"no kube-apiserver of {d} is running")
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    stop_pids({"kube-apiserver": pid}, str(d))
    launcher = _Launcher(d)
    launcher.pids = dict(cluster.pids)
    launcher.start("kube-apiserver", argv)
    _wait("kube-apiserver /readyz after a restart", cluster.is_ready, timeout, launcher,
          "kube-apiserver", interval=0.05)
    restarted = load_cluster(d)
    assert restarted is not None
    return restarted


@contextlib.contextmanager
def running_cluster(
    directory: str | os.PathLike[str], workloads: bool = True, nodes: int = 2
) -> Iterator[Cluster]:
    """Start a cluster for the duration of a ``with`` block."""
    cluster = start_cluster(directory, workloads=workloads, nodes=nodes)
    try:
        yield cluster
    finally:
        stop_cluster(directory)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.cluster",
        description="Start or stop a local kube-apiserver + etcd (+ workloads) on loopback.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the control plane under DIR")
    up.add_argument("dir")
    workloads = up.add_mutually_exclusive_group()
    workloads.add_argument(
        "--with-workloads",
        dest="workloads",
        action="store_true",
        default=True,
        help="also run kube-controller-manager, kube-scheduler and kwok (the default)",
    )
    workloads.add_argument(
        "--no-workloads", dest="workloads", action="store_false", help="etcd + apiserver only"
    )
    up.add_argument("--nodes", type=int, default=2, help="fake kwok Nodes to create")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for /readyz")
    down = sub.add_parser("down", help="stop the processes recorded in DIR/pids")
    down.add_argument("dir")
    st = sub.add_parser("status", help="say whether DIR holds a live, ready cluster")
    st.add_argument("dir")
    kc = sub.add_parser("kubeconfig", help="write and print a kubeconfig for a token user")
    kc.add_argument("dir")
    kc.add_argument("user", nargs="?", default=ADMIN_USER)
    args = parser.parse_args(argv)

    if args.command == "up":
        existing = load_cluster(args.dir)
        if existing is not None and existing.is_alive() and existing.is_ready():
            print(f"already running: {existing.server} (kubeconfig {existing.kubeconfig})")
            return 0
        started = time.monotonic()
        try:
            cluster = start_cluster(
                args.dir, workloads=args.workloads, nodes=args.nodes, timeout=args.timeout
            )
        except ClusterError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"ready in {time.monotonic() - started:.1f} s: {cluster.server}")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"pids: {json.dumps(cluster.pids)}")
        print(f"token users: {', '.join(cluster.tokens)} (tokens in {cluster.dir / 'tokens.json'})")
        return 0
    if args.command == "down":
        names = stop_cluster(args.dir)
        print(f"stopped: {', '.join(names) if names else 'nothing was running'}")
        return 0
    recorded = load_cluster(args.dir)
    if recorded is None:
        print(f"no cluster recorded in {args.dir}", file=sys.stderr)
        return 1
    if args.command == "status":
        alive = {n: pid_alive(p) for n, p in recorded.pids.items()}
        ready = recorded.is_ready()
        print(f"server {recorded.server}: ready={ready} processes={json.dumps(alive)}")
        return 0 if ready and alive and all(alive.values()) else 1
    print(recorded.kubeconfig_for(args.user))
    return 0


if __name__ == "__main__":
    sys.exit(main())
