"""Informers: list-then-watch of one resource into a thread-safe cache of raw objects.

An :class:`Informer` keeps ``namespace/name -> object dict`` (camelCase, as the API server
sends it) for all namespaces or for a given list (one list-watch thread per namespace),
and calls ``on_add`` / ``on_update`` / ``on_delete`` after each change reaches the cache.

* **List, then watch** from the list's resourceVersion, with ``allowWatchBookmarks`` (the
  resourceVersion moves on even when nothing we watch changes; the API server sends one
  about every minute), ``timeoutSeconds`` (the server ends each watch; we resume from the
  last version seen) and a client read timeout (``idle_timeout_seconds``, 90 s: a watch
  silent for longer, not even a bookmark, is presumed dead and reopened).
* **410 Gone** (raised by ``Watch.stream`` as an ``ApiException``, or arriving as an
  ``ERROR`` event): list again and diff the cache against the list, so handlers see an add,
  update or delete for exactly what changed while we were not watching.
* **Other errors**: back off exponentially (0.5 s doubling to 30 s, with jitter), then
  resume the watch (or retry the list).
* **Resync**: every ``resync_seconds`` each cached object is delivered again as an update
  (level-triggered consumers converge even if they dropped something).
* :meth:`Informer.stop` closes the open watches (their sockets are shut down) and joins the
  threads.

``kubernetes.informer`` (client 37.x) is not used: it reconnects without backoff, keeps
``V1*`` objects for built-in kinds, takes one namespace and sets no read timeout.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError, ReadTimeoutError

from controller.api.types import GROUP, VERSION

__all__ = [
    "DEPLOYMENTS",
    "ROLLOUT_PLANS",
    "SLO_POLICIES",
    "ApiClient",
    "Backoff",
    "Cache",
    "Informer",
    "Resource",
    "object_key",
    "plan_policy_keys",
    "plan_workload_keys",
]

log = logging.getLogger(__name__)

#: the client type, for layers that hold one without importing ``kubernetes`` themselves
ApiClient = client.ApiClient
Object = dict[str, Any]
Handler = Callable[[Object], None]
IndexFunc = Callable[[Object], Iterable[str]]


@dataclass(frozen=True)
class Resource:
    """A namespaced API resource the informer can list and watch."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def is_custom(self) -> bool:
        return self.group not in ("", "apps")

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


ROLLOUT_PLANS = Resource(GROUP, VERSION, "rolloutplans", "RolloutPlan")
SLO_POLICIES = Resource(GROUP, VERSION, "slopolicies", "SLOPolicy")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")


def object_key(obj: Object) -> str:
    """``namespace/name`` (just ``name`` for a cluster-scoped object)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


def plan_workload_keys(plan: Object) -> list[str]:
    """``namespace/name`` of the Deployments a RolloutPlan targets (stable and canary)."""
    namespace = (plan.get("metadata") or {}).get("namespace") or ""
    target = (plan.get("spec") or {}).get("target") or {}
    keys = []
    for role in ("stable", "canary"):
        ref = target.get(role) or {}
        if isinstance(ref, dict) and ref.get("name") and ref.get("kind", "Deployment") == (
            "Deployment"
        ):
            keys.append(f"{namespace}/{ref['name']}")
    return keys


def plan_policy_keys(plan: Object) -> list[str]:
    """``namespace/name`` of the SLOPolicy a RolloutPlan refers to (none or one)."""
    namespace = (plan.get("metadata") or {}).get("namespace") or ""
    ref = (plan.get("spec") or {}).get("sloPolicyRef") or {}
    name = ref.get("name") if isinstance(ref, dict) else None
    return [f"{namespace}/{name}"] if name else []


def _namespace_of(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _resource_version(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Cache:
    """The informer's objects by key, with optional indexes; safe to read from any thread.

    Objects are shared, not copied: readers must not mutate them.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._items: dict[str, Object] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}

    # -------------------------------------------------------------- reading

    def get(self, key: str) -> Object | None:
        with self._lock:
            return self._items.get(key)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def objects(self) -> list[Object]:
        with self._lock:
            return list(self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Index objects by the values FUNC returns (e.g. the Deployments a plan names)."""
        with self._lock:
            self._index_funcs[name] = func
            index: dict[str, set[str]] = {}
            for key, obj in self._items.items():
                for value in self._index_values(func, obj):
                    index.setdefault(value, set()).add(key)
            self._indexes[name] = index

    def index_keys(self, name: str, value: str) -> list[str]:
        """Keys of the objects whose index NAME contains VALUE, sorted."""
        with self._lock:
            return sorted(self._indexes[name].get(value, ()))

    def by_index(self, name: str, value: str) -> list[Object]:
        with self._lock:
            return [self._items[k] for k in self.index_keys(name, value)]

    # -------------------------------------------------------------- writing (the informer)

    def _put(self, obj: Object) -> Object | None:
        key = object_key(obj)
        with self._lock:
            old = self._items.get(key)
            if old is not None:
                self._unindex(key, old)
            self._items[key] = obj
            self._index(key, obj)
            return old

    def _delete(self, key: str) -> Object | None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._unindex(key, old)
            return old

    def _replace(
        self, namespace: str | None, objects: Sequence[Object]
    ) -> tuple[list[Object], list[Object], list[Object]]:
        """Make the part of the cache in NAMESPACE (None: all) equal OBJECTS; returns
        (added, updated, deleted), where updated holds objects whose resourceVersion moved."""
        fresh = {object_key(o): o for o in objects}
        added: list[Object] = []
        updated: list[Object] = []
        deleted: list[Object] = []
        with self._lock:
            mine = [k for k in self._items if namespace is None or _namespace_of(k) == namespace]
            for key in mine:
                if key not in fresh:
                    old = self._delete(key)
                    if old is not None:
                        deleted.append(old)
            for obj in fresh.values():
                old = self._put(obj)
                if old is None:
                    added.append(obj)
                elif _resource_version(old) != _resource_version(obj):
                    updated.append(obj)
        return added, updated, deleted

    def _index(self, key: str, obj: Object) -> None:
        for name, func in self._index_funcs.items():
            for value in self._index_values(func, obj):
                self._indexes[name].setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Object) -> None:
        for name, func in self._index_funcs.items():
            index = self._indexes[name]
            for value in self._index_values(func, obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    @staticmethod
    def _index_values(func: IndexFunc, obj: Object) -> list[str]:
        try:
            return [v for v in func(obj) if v]
        except Exception as exc:  # a malformed object must not break the cache
            log.warning("index function failed on %s: %s", object_key(obj), type(exc).__name__)
            return []


@dataclass(frozen=True)
class Backoff:
    """Delay before retry number ``failures`` (1-based): base * 2**(failures-1), capped,
    times a random factor in [1, 1 + jitter) (never above the cap)."""

    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.5

    def delay(self, failures: int) -> float:
        raw = self.base * 2.0 ** min(max(failures - 1, 0), 32)
        return float(min(self.cap, raw * (1.0 + self.jitter * random.random())))


_ADD, _UPDATE, _DELETE, _RESYNC = 0, 1, 2, 3


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class _WatchFailed(Exception):
    """The watch stream carried an ERROR event other than 410."""


class Informer:
    """List-then-watch of RESOURCE in NAMESPACES (None: all namespaces) into :attr:`cache`."""

    def __init__(
        self,
        api_client: client.ApiClient,
        resource: Resource,
        namespaces: Sequence[str] | None = None,
        *,
        resync_seconds: float | None = 600.0,
        watch_timeout_seconds: int = 300,
        idle_timeout_seconds: float = 90.0,
        request_timeout: tuple[float, float] = (5.0, 30.0),
        page_size: int = 500,
        backoff: Backoff | None = None,
    ) -> None:
        self.resource = resource
        self.cache = Cache()
        self._namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self._resync_seconds = resync_seconds
        self._watch_timeout = watch_timeout_seconds
        self._idle_timeout = min(idle_timeout_seconds, watch_timeout_seconds + 30.0)
        self._request_timeout = request_timeout
        self._page_size = page_size
        self._backoff = backoff or Backoff()
        self._custom = client.CustomObjectsApi(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._handlers: list[tuple[Handler | None, Handler | None, Handler | None,
                                   Handler | None]] = []
        self._lock = threading.Lock()
        self._synced: set[str | None] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: dict[str | None, Any] = {}
        self._lists = 0
        self._watch_starts = 0
        self._expired = 0
        self._errors = 0

    def __repr__(self) -> str:
        where = "all namespaces" if self._namespaces == [None] else ",".join(
            str(n) for n in self._namespaces)
        return f"Informer({self.resource}, {where})"

    # -------------------------------------------------------------- public

    def add_handlers(
        self,
        on_add: Handler | None = None,
        on_update: Handler | None = None,
        on_delete: Handler | None = None,
        on_resync: Handler | None = None,
    ) -> None:
        """Call these after each change reaches the cache (on the informer's threads: keep
        them short; an exception is logged and does not stop the informer). A periodic
        resync re-delivers every cached object to ON_RESYNC (default: ON_UPDATE)."""
        with self._lock:
            self._handlers.append((on_add, on_update, on_delete, on_resync or on_update))

    def has_synced(self) -> bool:
        """Every namespace has been listed once."""
        with self._lock:
            return len(self._synced) == len(self._namespaces)

    def wait_for_sync(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.has_synced():
            if time.monotonic() >= deadline or self._stop.wait(0.02):
                return self.has_synced()
        return True

    def is_alive(self) -> bool:
        """Every list-watch thread is running (False before start and after stop)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    @property
    def stats(self) -> dict[str, int]:
        """Counts for tests and metrics: lists done, watches opened, 410s met, other
        failures (each followed by a backoff)."""
        with self._lock:
            return {"lists": self._lists, "watches": self._watch_starts,
                    "expired": self._expired, "errors": self._errors}

    def start(self) -> None:
        if self._threads:
            raise RuntimeError(f"{self!r} is started once")
        for namespace in self._namespaces:
            self._spawn(f"informer-{self.resource.plural}-{namespace or 'all'}",
                        functools.partial(self._run, namespace))
        if self._resync_seconds:
            self._spawn(f"informer-{self.resource.plural}-resync", self._resync_loop)

    def stop(self, timeout: float = 5.0) -> None:
        """Close the open watches and join the threads (each waits at most TIMEOUT)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while True:
            # Watch.stop() can only shut a socket down once the response has arrived, so a
            # watch still connecting is stopped again on the next round.
            with self._lock:
                watches = list(self._watches.values())
            for w in watches:
                w.stop()
            alive = [t for t in self._threads if t.is_alive()]
            left = deadline - time.monotonic()
            if not alive or left <= 0:
                return
            alive[0].join(min(0.05, left))

    # -------------------------------------------------------------- the threads

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _run(self, namespace: str | None) -> None:
        version: str | None = None
        failures = 0
        where = namespace or "all namespaces"
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(namespace)
                    with self._lock:
                        self._synced.add(namespace)
                    failures = 0
                version, healthy = self._watch(namespace, version)
                if healthy:
                    failures = 0
                    continue
                failures += 1  # ended at once without an event: do not spin
                reason = "watch ended at once"
            except _Expired:
                with self._lock:
                    self._expired += 1
                log.info("%s in %s: resourceVersion expired (410), listing again",
                         self.resource, where)
                version = None
                continue
            except (ApiException, HTTPError, OSError, _WatchFailed, ValueError) as exc:
                if self._stop.is_set():
                    break
                failures += 1
                reason = _describe(exc)
            with self._lock:
                self._errors += 1
            delay = self._backoff.delay(failures)
            log.warning("%s in %s: %s; retrying in %.1f s", self.resource, where, reason, delay)
            self._stop.wait(delay)

    def _list(self, namespace: str | None) -> str:
        """List every page, replace this namespace's part of the cache, fire the diff."""
        objects: list[Object] = []
        token: str | None = None
        while True:
            page = self._call_list(namespace, limit=self._page_size, _continue=token,
                                   _preload_content=False,
                                   _request_timeout=self._request_timeout)
            body = json.loads(page.data)
            for item in body.get("items") or []:
                item.setdefault("apiVersion", self.resource.api_version)
                item.setdefault("kind", self.resource.kind)
                objects.append(item)
            meta = body.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                version = str(meta.get("resourceVersion") or "")
                break
        added, updated, deleted = self.cache._replace(namespace, objects)
        with self._lock:
            self._lists += 1
        for obj in deleted:
            self._fire(_DELETE, obj)
        for obj in added:
            self._fire(_ADD, obj)
        for obj in updated:
            self._fire(_UPDATE, obj)
        return version

    def _watch(self, namespace: str | None, version: str) -> tuple[str, bool]:
        """Watch from VERSION until the server ends the stream; returns the last version
        seen and whether the watch was healthy (it lasted or carried events)."""
        stream = watch.Watch(return_type=object)  # type: ignore[no-untyped-call]  # raw dicts
        with self._lock:
            if self._stop.is_set():
                return version, True
            self._watches[namespace] = stream
            self._watch_starts += 1
        started = time.monotonic()
        events = 0
        try:
            for event in stream.stream(  # type: ignore[no-untyped-call]
                self._list_function(namespace),
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=self._watch_timeout,
                # the server closes the watch after timeout_seconds and sends a bookmark
                # about every minute; a connection silent for longer is presumed dead
                _request_timeout=(self._request_timeout[0], self._idle_timeout),
            ):
                kind = event.get("type")
                obj = event.get("raw_object") or {}
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        raise _Expired()
                    raise _WatchFailed(f"watch error {code} {obj.get('reason', '')}".strip())
                events += 1
                version = _resource_version(obj) or version
                if kind == "BOOKMARK":
                    continue
                self._apply(kind, obj)
        except ApiException as exc:
            if exc.status == 410:
                raise _Expired() from None
            raise
        except ReadTimeoutError:
            log.debug("%s: watch silent for %.0f s, reopening", self.resource, self._idle_timeout)
            return version, True
        except (HTTPError, OSError):
            if self._stop.is_set():
                return version, True
            raise
        finally:
            stream.stop()  # type: ignore[no-untyped-call]
            with self._lock:
                self._watches.pop(namespace, None)
        return version, events > 0 or time.monotonic() - started >= 1.0

    def _apply(self, kind: Any, obj: Object) -> None:
        if kind in ("ADDED", "MODIFIED"):
            obj.setdefault("apiVersion", self.resource.api_version)
            obj.setdefault("kind", self.resource.kind)
            old = self.cache._put(obj)
            self._fire(_ADD if old is None else _UPDATE, obj)
        elif kind == "DELETED":
            self.cache._delete(object_key(obj))
            self._fire(_DELETE, obj)

    def _resync_loop(self) -> None:
        assert self._resync_seconds
        while not self._stop.wait(self._resync_seconds):
            self.resync()

    def resync(self) -> None:
        """Deliver every cached object to the resync handlers (what the timer does)."""
        for obj in self.cache.objects():
            self._fire(_RESYNC, obj)

    def _fire(self, which: int, obj: Object) -> None:
        with self._lock:
            handlers = [h[which] for h in self._handlers]
        for handler in handlers:
            if handler is None:
                continue
            try:
                handler(obj)
            except Exception as exc:
                log.error("%s handler failed on %s: %s", self.resource, object_key(obj),
                          type(exc).__name__)

    # -------------------------------------------------------------- the API calls

    def _list_function(self, namespace: str | None) -> Callable[..., Any]:
        r = self.resource
        if r.is_custom:
            if namespace is None:
                return functools.partial(
                    self._custom.list_cluster_custom_object, r.group, r.version, r.plural)
            return functools.partial(
                self._custom.list_namespaced_custom_object, r.group, r.version, namespace,
                r.plural)
        if r == DEPLOYMENTS:
            if namespace is None:
                return self._apps.list_deployment_for_all_namespaces
            return functools.partial(self._apps.list_namespaced_deployment, namespace)
        raise ValueError(f"no list function for {r}")

    def _call_list(self, namespace: str | None, **kwargs: Any) -> Any:
        if kwargs.get("_continue") is None:
            kwargs.pop("_continue", None)
        return self._list_function(namespace)(**kwargs)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"API server answered {exc.status}"
    if isinstance(exc, _WatchFailed):
        return str(exc)
    return type(exc).__name__
