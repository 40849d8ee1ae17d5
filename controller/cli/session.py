"""A connection to the cluster for one command: the API client, the namespace, the user.

Everything Kubernetes goes through ``controller.adapters.kube``; this module is imported
only by commands that talk to a cluster (the Kubernetes client is slow to import).
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from controller.adapters.kube.client import ClusterConfig, api_client
from controller.adapters.kube.objects import (
    ObjectStore,
    kubeconfig_context,
    read_crd,
    server_url,
    whoami,
)
from controller.api.plan import RolloutPlan
from controller.api.policy import SLOPolicy
from controller.cli.errors import CliError, reported
from controller.cli.options import ClusterOptions
from controller.cli.stored import parse_plan, parse_policy
from controller.errors import Permanent

CRD_NAMES = {"RolloutPlan": "rolloutplans.rolloutctl.dev",
             "SLOPolicy": "slopolicies.rolloutctl.dev"}


def now() -> datetime:
    return datetime.now(UTC)


def request_id() -> str:
    """A fresh, short request id (8 hex digits of a uuid4)."""
    return uuid.uuid4().hex[:8]


class Session:
    """The API client and where commands act. Build with :func:`session`."""

    def __init__(self, opts: ClusterOptions) -> None:
        self.opts = opts
        self.server: str | None = None
        context_namespace, self.kube_user = kubeconfig_context(opts.kubeconfig, opts.context)
        self.namespace = opts.namespace or context_namespace or "default"
        self.api = api_client(ClusterConfig(opts.kubeconfig, opts.context))
        self.server = server_url(self.api)
        self.store = ObjectStore(self.api)
        self._user: str | None = None

    @property
    def list_namespace(self) -> str | None:
        """The namespace to list in, or None for all (``-A``)."""
        return None if self.opts.all_namespaces else self.namespace

    def user(self) -> str:
        """Who makes requests: the API server's name for us (a SelfSubjectReview), else the
        kubeconfig user, else the local login name."""
        if self._user is None:
            self._user = (whoami(self.api) or self.kube_user
                          or os.environ.get("USER") or _login())
        return self._user

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    # -- reads ---------------------------------------------------------------------------

    def raw(self, kind: str, name: str) -> dict[str, Any]:
        obj = self.store.get(kind, self.namespace, name)
        if obj is None:
            raise CliError(self._not_found(kind, name))
        return obj

    def plan(self, name: str) -> RolloutPlan:
        return parse_plan(self.raw("RolloutPlan", name))

    def policy(self, name: str) -> SLOPolicy:
        return parse_policy(self.raw("SLOPolicy", name))

    def plans(self) -> list[RolloutPlan]:
        return [parse_plan(o) for o in self.store.list("RolloutPlan", self.list_namespace)]

    def policies(self) -> list[SLOPolicy]:
        return [parse_policy(o) for o in self.store.list("SLOPolicy", self.list_namespace)]

    def _not_found(self, kind: str, name: str) -> str:
        try:
            installed = read_crd(self.api, CRD_NAMES[kind]) is not None
        except Permanent:  # may not read CRDs: most users cannot, and the CRD is likely there
            installed = True
        if not installed:
            return (f"the {kind} CRD is not installed on {self.server}: install it with "
                    "`rolloutctl crds | kubectl apply -f -`")
        lister = "get" if kind == "RolloutPlan" else "freeze status"
        return (f"{kind} {name!r} not found in namespace {self.namespace}; "
                f"list them with `rolloutctl {lister} -n {self.namespace}` (or -A)")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@contextmanager
def session(opts: ClusterOptions) -> Iterator[Session]:
    """A session whose errors become one line and exit code 2 (see ``errors.reported``)."""
    current: Session | None = None

    def who() -> tuple[str | None, str | None]:
        if current is None:
            return None, None
        return current.server, current._user or current.kube_user

    try:
        with reported(who=who):
            current = Session(opts)
            yield current
    finally:
        if current is not None:
            current.close()


Fetch = Callable[[], RolloutPlan]
