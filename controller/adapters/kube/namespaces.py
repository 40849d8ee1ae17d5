"""The namespaces a user may list, for views that read what the user's RBAC allows."""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controller.adapters.kube.client import REQUEST_TIMEOUT
from controller.adapters.kube.objects import map_api_error


def namespace_names(api: client.ApiClient) -> list[str] | None:
    """The names of all namespaces, or None when the user may not list them (403)."""
    try:
        result = cast(dict[str, Any], client.CoreV1Api(api).list_namespace(
            _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        import json

        data = json.loads(cast(Any, result).data)
    except ApiException as exc:
        if exc.status in (401, 403):
            return None
        raise map_api_error(exc, "list namespaces") from None
    except (HTTPError, OSError) as exc:
        raise map_api_error(exc, "list namespaces") from None
    return sorted(str(i["metadata"]["name"]) for i in data.get("items", []))
