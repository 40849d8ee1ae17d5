"""The Kubernetes client reads the proxy environment when it is built, not per request.

The client's token hook runs before every request and re-assigns ``host``, which makes
``kubernetes`` 37 re-read every environment variable to find a proxy (``getproxies()``):
about 0.15 ms per request here, more in a pod whose environment lists every Service of its
namespace, and about 3 % of a core at 1,000 plans. The connection pool was built with the
proxy of the moment anyway, so nothing reads that answer: ``api_client`` pins it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.adapters.kube.client import ClusterConfig, api_client


def kubeconfig(tmp_path: Path, server: str = "https://10.0.0.1:6443") -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server,
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }))
    return path


def test_requests_do_not_rescan_the_environment_and_keep_the_proxy_it_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    api = api_client(ClusterConfig(str(kubeconfig(tmp_path))))
    conf: Any = api.configuration
    assert conf.proxy == "http://proxy.example:3128"
    assert api.rest_client.pool_manager.proxy is not None  # the pool goes through it

    import kubernetes.client.configuration as configuration

    scans: list[int] = []

    def getproxies() -> dict[str, str]:
        scans.append(1)
        return {}

    monkeypatch.setattr(configuration, "getproxies", getproxies)
    for _ in range(3):  # what every request does before it is sent
        assert conf.get_api_key_with_prefix("BearerToken") == "Bearer t0ken"
    assert scans == []
    assert conf.proxy == "http://proxy.example:3128"
    assert conf.host == "https://10.0.0.1:6443"


def test_without_a_proxy_in_the_environment_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    api = api_client(ClusterConfig(str(kubeconfig(tmp_path))))
    conf: Any = api.configuration
    monkeypatch.setenv("HTTPS_PROXY", "http://late.example:3128")  # set after start-up
    assert conf.get_api_key_with_prefix("BearerToken") == "Bearer t0ken"
    assert conf.proxy is None
