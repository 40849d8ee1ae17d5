"""Kubernetes Events for the decisions recorded in a plan's or policy's status.

Each Event's name is derived from the object and the decision's sequence number, so a pass
replayed after a crash creates the same name and the API server's 409 (AlreadyExists) keeps
it from appearing twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controller.adapters.kube.client import REQUEST_TIMEOUT
from controller.api.decisions import DECISIONS, Reason

log = logging.getLogger(__name__)

#: Event types shown as Warning: the decision table's, and the reconciler's InvalidSpec.
WARNING_TYPES = frozenset(
    {str(t) for t, info in DECISIONS.items() if info.warning_event} | {Reason.INVALID_SPEC.value})


class EventRecorder:
    def __init__(self, api: client.ApiClient, component: str = "rolloutctl",
                 instance: str = "") -> None:
        self.core = client.CoreV1Api(api)
        self.component = component
        self.instance = instance

    def record(self, obj: dict[str, Any], seq: int, run: int, type_: str, reason: str,
               message: str, at: datetime) -> None:
        """Create the Event; failures are logged and swallowed (Events never fail a pass)."""
        meta = obj["metadata"]
        name = f"{meta['name']}.{meta.get('uid', '')[:8]}.{run}.{seq}"
        stamp = at.isoformat().replace("+00:00", "Z")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj["apiVersion"], "kind": obj["kind"],
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": type_,
            "message": f"{reason}: {message}"[:1024],
            "type": "Warning" if type_ in WARNING_TYPES else "Normal",
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], body,  # type: ignore[arg-type]
                                              _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status != 409:
                log.warning("could not record Event %s on %s/%s: %s", type_,
                            meta["namespace"], meta["name"], exc.status)
        except (HTTPError, OSError) as exc:
            log.warning("could not record Event %s: %s", type_, type(exc).__name__)
