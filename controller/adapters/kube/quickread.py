"""One GET with the kubeconfig's credentials, without importing the Kubernetes client.

``rolloutctl status`` makes two reads and should answer in under a second; importing the
official client (its package pulls in config, dynamic, stream, websocket, requests,
oauthlib, dateutil) costs about 0.2 s of that. This reader understands the common kubeconfig
shapes and nothing more:

- one kubeconfig file (``--kubeconfig``, a single-path ``$KUBECONFIG`` or
  ``~/.kube/config``), or the in-cluster service account;
- users with a ``token``, a ``tokenFile``, a client certificate (file or data) or a user name
  and password; clusters with ``certificate-authority`` (file or data),
  ``insecure-skip-tls-verify`` and ``tls-server-name``.

Everything else (an ``exec`` plugin or ``auth-provider``, impersonation, a ``proxy-url`` or
proxy environment variables, several kubeconfig files merged) raises :class:`Unsupported`,
and so does any answer but 200: the caller then goes through the official client, which
reports not found, forbidden and the rest exactly as every other command does. Only a
server that cannot be reached is reported from here, so a timeout is not waited for twice.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from controller.api.types import object_path
from controller.errors import Transient

__all__ = ["Target", "Unsupported", "get_json", "load", "object_path"]

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                    "all_proxy")
_UNSUPPORTED_USER_KEYS = ("exec", "auth-provider", "as", "as-groups", "as-uid",
                          "as-user-extra")


class Unsupported(Exception):
    """This reader does not handle the configuration or the answer; use the official client."""


@dataclass(frozen=True)
class Target:
    """Where and how to send a GET: the server, the context's namespace and user, headers."""

    server: str
    namespace: str | None
    user: str | None
    headers: dict[str, str] = field(repr=False)
    tls: ssl.SSLContext | None = field(repr=False)
    tls_server_name: str | None = None


def load(kubeconfig: str | None, context: str | None) -> Target:
    """The target the official client would use for these options (see the module doc)."""
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        raise Unsupported("a proxy is configured in the environment")
    path = kubeconfig or os.environ.get("KUBECONFIG")
    default = os.path.expanduser("~/.kube/config")
    if path is None and not os.path.exists(default) and os.environ.get(
            "KUBERNETES_SERVICE_HOST"):
        return _in_cluster()
    path = path or default
    if os.pathsep in path or not os.path.isfile(path):
        raise Unsupported(f"kubeconfig {path!r} is not one file")
    try:
        return _from_kubeconfig(Path(path), context)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # a file that is missing or malformed (ssl.SSLError is an OSError; bad base64 a
        # ValueError): the official client reports it
        raise Unsupported(f"kubeconfig: {type(exc).__name__}") from None


def get_json(target: Target, path: str, what: str) -> dict[str, Any]:
    """GET PATH as JSON. Not 200: :class:`Unsupported`; unreachable: ``Transient``."""
    parts = urlsplit(target.server)
    prefix = parts.path.rstrip("/")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = _TlsConnection(parts.hostname or "", parts.port, timeout=CONNECT_TIMEOUT,
                              context=target.tls, server_name=target.tls_server_name)
    elif parts.scheme == "http":
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                          timeout=CONNECT_TIMEOUT)
    else:
        raise Unsupported(f"server {target.server!r} is not an http(s) URL")
    try:
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(READ_TIMEOUT)
        conn.request("GET", prefix + path, headers=target.headers)
        response = conn.getresponse()
        body = response.read()
    except ssl.SSLError as exc:
        raise Unsupported(f"TLS: {exc}") from None  # the official client says it better
    except (OSError, http.client.HTTPException) as exc:
        raise Transient(f"{what}: cannot reach the API server: {type(exc).__name__}",
                        "ApiUnreachable") from None
    finally:
        conn.close()
    if response.status != 200:
        raise Unsupported(f"{what}: the API server answered {response.status}")
    try:
        document = json.loads(body)
    except ValueError:
        raise Unsupported(f"{what}: the answer is not JSON") from None
    if not isinstance(document, dict):
        raise Unsupported(f"{what}: the answer is not an object")
    return document


class _TlsConnection(http.client.HTTPSConnection):
    """HTTPS with the kubeconfig's ``tls-server-name`` checked instead of the host's."""

    def __init__(self, host: str, port: int | None, *, timeout: float,
                 context: ssl.SSLContext | None, server_name: str | None) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_name = server_name

    def connect(self) -> None:
        if self._server_name is None:
            super().connect()
            return
        http.client.HTTPConnection.connect(self)
        context: ssl.SSLContext = self._context  # type: ignore[attr-defined]
        self.sock = context.wrap_socket(self.sock, server_hostname=self._server_name)


def _in_cluster() -> Target:
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    try:
        token = (SERVICE_ACCOUNT / "token").read_text(encoding="utf-8").strip()
        namespace = (SERVICE_ACCOUNT / "namespace").read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise Unsupported(f"service account: {exc}") from None
    tls = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return Target(server, namespace or None, None, _headers(token=token), tls)


def _from_kubeconfig(path: Path, context_name: str | None) -> Target:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, yaml.YAMLError) as exc:
        raise Unsupported(f"kubeconfig: {exc}") from None
    if not isinstance(doc, dict):
        raise Unsupported("kubeconfig is not a mapping")
    name = context_name or doc.get("current-context")
    ctx = _named(doc, "contexts", name, "context")
    cluster = _named(doc, "clusters", ctx.get("cluster"), "cluster")
    user = _named(doc, "users", ctx.get("user"), "user") if ctx.get("user") else {}
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise Unsupported("the cluster has no server")
    if cluster.get("proxy-url") or any(user.get(k) for k in _UNSUPPORTED_USER_KEYS):
        raise Unsupported("a proxy, an exec plugin, an auth provider or impersonation")
    base = path.parent
    tls = _tls(cluster, user, base) if server.startswith("https:") else None
    token = user.get("token")
    if not token and user.get("tokenFile"):
        try:
            token = _file(base, user["tokenFile"]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise Unsupported(f"tokenFile: {exc}") from None
    basic = None
    if not token and user.get("username") is not None:
        basic = f"{user.get('username')}:{user.get('password') or ''}"
    namespace = ctx.get("namespace") or None
    return Target(server.rstrip("/"), namespace, ctx.get("user") or None,
                  _headers(token=token, basic=basic), tls, cluster.get("tls-server-name"))


def _named(doc: dict[str, Any], section: str, name: Any, key: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key)
            if isinstance(value, dict):
                return value
    raise Unsupported(f"no {key} named {name!r} in the kubeconfig")


def _file(base: Path, name: str) -> Path:
    path = Path(os.path.expanduser(name))
    return path if path.is_absolute() else base / path


def _tls(cluster: dict[str, Any], user: dict[str, Any], base: Path) -> ssl.SSLContext:
    if cluster.get("insecure-skip-tls-verify"):
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    elif cluster.get("certificate-authority-data"):
        pem = base64.b64decode(cluster["certificate-authority-data"]).decode("ascii")
        tls = ssl.create_default_context(cadata=pem)
    elif cluster.get("certificate-authority"):
        tls = ssl.create_default_context(cafile=str(_file(base, cluster["certificate-authority"])))
    else:
        tls = ssl.create_default_context()
    cert, key = user.get("client-certificate-data"), user.get("client-key-data")
    if cert and key:
        _load_cert_data(tls, base64.b64decode(cert), base64.b64decode(key))
    elif user.get("client-certificate") and user.get("client-key"):
        tls.load_cert_chain(str(_file(base, user["client-certificate"])),
                            str(_file(base, user["client-key"])))
    return tls


def _load_cert_data(tls: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """``ssl`` loads a client certificate from files only: write both to a private temporary
    directory, load them, remove them."""
    with tempfile.TemporaryDirectory(prefix="rolloutctl-") as directory:
        cert_path, key_path = Path(directory, "client.crt"), Path(directory, "client.key")
        for target, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        tls.load_cert_chain(str(cert_path), str(key_path))


def _headers(*, token: str | None = None, basic: str | None = None) -> dict[str, str]:
    from controller import __version__

    headers = {"Accept": "application/json", "User-Agent": f"rolloutctl/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif basic is not None:
        encoded = base64.b64encode(basic.encode("utf-8")).decode("ascii")
        headers["Authorization"] = f"Basic {encoded}"
    return headers
