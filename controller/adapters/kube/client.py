"""Building Kubernetes API clients from a kubeconfig or the in-cluster service account."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

# Every call carries a timeout (connect, read) in seconds; watches set their own.
REQUEST_TIMEOUT = (5.0, 30.0)


class NoCluster(Exception):
    """No kubeconfig or in-cluster configuration could be loaded; the message says how to fix."""


@dataclass(frozen=True)
class ClusterConfig:
    kubeconfig: str | None = None
    context: str | None = None


def api_client(cfg: ClusterConfig | None = None) -> client.ApiClient:
    """An ApiClient for ``cfg``: an explicit kubeconfig, $KUBECONFIG, ~/.kube/config, or
    the in-cluster service account, in that order (see :func:`_pin_proxy`)."""
    return _trim_token(_pin_proxy(_api_client(cfg)))


def _pin_proxy(api: client.ApiClient) -> client.ApiClient:
    """Keep the proxy the environment named when the client was built.

    Both loaders install a token hook that runs before every request and re-assigns
    ``host``, and ``kubernetes`` 37 then re-reads the whole environment to pick a proxy
    (``getproxies()``, ~0.15 ms, more in a pod whose environment lists every Service). The
    connection pool was built with the proxy of that moment and never reads it again, so
    setting ``proxy`` explicitly (which stops the re-reads) changes nothing but the cost.
    """
    conf = api.configuration
    conf.proxy = conf.proxy
    return api


def _trim_token(api: client.ApiClient) -> client.ApiClient:
    """Send the token without the whitespace around it, as kubectl does (client-go trims a
    ``tokenFile``'s content): the Python client sends a file's trailing newline as is and
    urllib3 refuses the header. The kubeconfig loader's hook sets the token before every
    request and installs itself again each time: the trim wraps whatever hook is there,
    after it has run."""

    def strip(conf: client.Configuration) -> None:
        for name, value in list(conf.api_key.items()):
            if isinstance(value, str):
                conf.api_key[name] = value.strip()

    def trimmed(conf: client.Configuration) -> None:
        hook = conf.refresh_api_key_hook
        if hook is None:
            return

        def trim(c: client.Configuration) -> None:
            hook(c)
            strip(c)
            if c.refresh_api_key_hook is not trim:  # the loader's hook put itself back
                trimmed(c)

        conf.refresh_api_key_hook = trim

    strip(api.configuration)
    trimmed(api.configuration)
    return api


def kubeconfig_exists(path: str) -> bool:
    """Whether PATH names a kubeconfig: like kubectl, ``$KUBECONFIG`` may list several files
    (``os.pathsep`` between them), merged by the client; one existing file is enough."""
    return any(os.path.exists(os.path.expanduser(p)) for p in path.split(os.pathsep) if p)


def _api_client(cfg: ClusterConfig | None) -> client.ApiClient:
    cfg = cfg or ClusterConfig()
    path = cfg.kubeconfig or os.environ.get("KUBECONFIG")
    default = os.path.expanduser("~/.kube/config")
    if path is None and not os.path.exists(default) and os.environ.get(
        "KUBERNETES_SERVICE_HOST"
    ):
        conf = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise NoCluster(f"in-cluster configuration failed: {exc}") from None
        return client.ApiClient(conf)
    path = path or default
    if not kubeconfig_exists(path):
        raise NoCluster(
            f"no kubeconfig at {path}; pass --kubeconfig FILE or set KUBECONFIG"
        )
    try:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=path, context=cfg.context
        )
        return api
    except ConfigException as exc:
        raise NoCluster(f"cannot use kubeconfig {path}: {exc}") from None
