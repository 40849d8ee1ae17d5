"""The quick reader behind `rolloutctl status`: which kubeconfigs it reads itself (and how),
which it leaves to the official client, and an unreachable server reported in one line."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.adapters.kube import quickread
from controller.adapters.kube.quickread import Unsupported

TOKEN = "s3cret-token-value"


def kubeconfig(tmp_path: Path, user: dict[str, Any] | None = None,
               cluster: dict[str, Any] | None = None, **extra: Any) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {
            "server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "alice", "user": user if user is not None else {"token": TOKEN}},
                  {"name": "bob", "user": {"token": "bobs"}}],
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": "alice"}},
                     {"name": "team", "context": {"cluster": "c", "user": "bob",
                                                  "namespace": "payments"}}],
        "current-context": "main", **extra}
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                 "all_proxy", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_a_token_user_of_the_current_context(tmp_path: Path) -> None:
    target = quickread.load(str(kubeconfig(tmp_path)), None)
    assert target.server == "https://127.0.0.1:6443"
    assert target.user == "alice" and target.namespace is None
    assert target.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(target)


def test_context_picks_the_user_and_the_namespace(tmp_path: Path) -> None:
    target = quickread.load(str(kubeconfig(tmp_path)), "team")
    assert (target.user, target.namespace) == ("bob", "payments")
    assert target.headers["Authorization"] == "Bearer bobs"


def test_kubeconfig_variable_with_one_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path)))
    assert quickread.load(None, None).user == "alice"


def test_token_file_and_ca_paths_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "token").write_text(TOKEN + "\n")
    ca = self_signed(tmp_path)[0]
    (tmp_path / "ca.crt").write_bytes(ca.read_bytes())
    target = quickread.load(str(kubeconfig(
        tmp_path, user={"tokenFile": "creds/token"},
        cluster={"server": "https://api.example:6443", "certificate-authority": "ca.crt"})),
        None)
    assert target.headers["Authorization"] == f"Bearer {TOKEN}"
    assert target.tls is not None and target.tls.verify_mode.name == "CERT_REQUIRED"
    assert len(target.tls.get_ca_certs()) == 1


def test_inline_ca_and_client_certificate_leave_no_file_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    data = {"client-certificate-data": b64(cert), "client-key-data": b64(key)}
    target = quickread.load(str(kubeconfig(
        tmp_path, user=data, cluster={"server": "https://api.example:6443",
                                      "certificate-authority-data": b64(cert)})), None)
    assert target.tls is not None and len(target.tls.get_ca_certs()) == 1
    assert "Authorization" not in target.headers
    assert list(scratch.iterdir()) == []


def test_basic_auth(tmp_path: Path) -> None:
    target = quickread.load(str(kubeconfig(
        tmp_path, user={"username": "alice", "password": "pw"})), None)
    assert target.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:pw").decode()


@pytest.mark.parametrize(("user", "cluster", "why"), [
    ({"exec": {"command": "aws"}}, None, "an exec plugin"),
    ({"auth-provider": {"name": "oidc"}}, None, "an auth provider"),
    ({"token": TOKEN, "as": "admin"}, None, "impersonation"),
    (None, {"server": "https://api:6443", "proxy-url": "http://proxy:3128"}, "a proxy"),
    (None, {"server": "https://api:6443", "certificate-authority": "missing.crt"},
     "a CA file that is not there"),
    (None, {"server": "https://api:6443", "certificate-authority-data": "not base64!"},
     "inline CA that is not base64"),
    ({"client-certificate-data": "bm90IGEgY2VydA==", "client-key-data": "bm8="}, None,
     "a client certificate that does not load"),
])
def test_what_only_the_client_handles(tmp_path: Path, user: dict[str, Any] | None,
                                      cluster: dict[str, Any] | None, why: str) -> None:
    with pytest.raises(Unsupported):
        quickread.load(str(kubeconfig(tmp_path, user=user, cluster=cluster)), None)


def test_several_kubeconfig_files_a_missing_one_and_proxies_go_to_the_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kubeconfig(tmp_path)
    with pytest.raises(Unsupported):
        quickread.load(f"{path}{os.pathsep}{path}", None)
    with pytest.raises(Unsupported):
        quickread.load(str(tmp_path / "nope"), None)
    with pytest.raises(Unsupported):
        quickread.load(str(path), "no-such-context")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    with pytest.raises(Unsupported):
        quickread.load(str(path), None)


def test_names_are_quoted_into_the_path() -> None:
    assert quickread.object_path("RolloutPlan", "shop", "checkout") == (
        "/apis/rolloutctl.dev/v1alpha1/namespaces/shop/rolloutplans/checkout")
    assert quickread.object_path("SLOPolicy", "shop", "a/../b?c") == (
        "/apis/rolloutctl.dev/v1alpha1/namespaces/shop/slopolicies/a%2F..%2Fb%3Fc")


def test_in_cluster_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "namespace").write_text("rolloutctl-system")
    (tmp_path / "ca.crt").write_bytes(self_signed(tmp_path)[0].read_bytes())
    monkeypatch.setattr(quickread, "SERVICE_ACCOUNT", tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    target = quickread.load(None, None)
    assert target.server == "https://10.96.0.1:443"
    assert target.namespace == "rolloutctl-system"
    assert target.headers["Authorization"] == f"Bearer {TOKEN}"


def test_an_unreachable_server_is_one_line_without_the_token(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = kubeconfig(tmp_path, cluster={"server": f"https://127.0.0.1:{port}",
                                         "insecure-skip-tls-verify": True})
    done = subprocess.run(
        [str(Path(sys.executable).with_name("rolloutctl")), "status", "checkout",
         "--kubeconfig", str(path)], capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if "PROXY" not in k.upper()})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"error: cannot reach the API server at https://127.0.0.1:{port}: "
                           "is the cluster running? Check --kubeconfig and --context "
                           "(kubectl cluster-info)\n")
    assert TOKEN not in done.stderr


# ----------------------------------------------------------------------------- helpers


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key (openssl, as on every machine we run on)."""
    cert, key = tmp_path / "self.crt", tmp_path / "self.key"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", "/CN=rolloutctl-test", "-keyout", str(key), "-out",
                        str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key
