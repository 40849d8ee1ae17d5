"""A token read from a kubeconfig's ``tokenFile`` is sent without its trailing newline, as
kubectl sends it (the Python client would send it as is, and urllib3 refuses the header)."""

from __future__ import annotations

from pathlib import Path

import yaml

from controller.adapters.kube.client import ClusterConfig, api_client


def kubeconfig(tmp_path: Path, user: dict[str, str]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


def test_a_token_file_with_a_trailing_newline_is_trimmed(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "token").write_text("s3cret-token\n")
    api = api_client(ClusterConfig(str(kubeconfig(tmp_path, {"tokenFile": "creds/token"}))))
    try:
        # what every request sends (the loader's hook runs first and sets it again)
        for _ in range(2):
            assert api.configuration.get_api_key_with_prefix("BearerToken") == (
                "Bearer s3cret-token")
    finally:
        api.close()  # type: ignore[no-untyped-call]


def test_an_inline_token_is_sent_as_written(tmp_path: Path) -> None:
    api = api_client(ClusterConfig(str(kubeconfig(tmp_path, {"token": "abc"}))))
    try:
        assert api.configuration.get_api_key_with_prefix("BearerToken") == "Bearer abc"
    finally:
        api.close()  # type: ignore[no-untyped-call]
