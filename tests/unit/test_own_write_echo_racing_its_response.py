"""The watch can deliver a status write's echo before the writer has read the write's
response. The echo must still be recognised as the controller's own write (else every pass
queues the plan once more), and a change by anyone else must not be."""

from __future__ import annotations

import threading
from typing import Any

from controller.adapters.kube.objects import ObjectStore


class ObservedCondition(threading.Condition):
    """A condition that tells when a thread has started waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


class EchoFirst:
    """A CustomObjectsApi whose status write delivers the watch event (on another thread,
    as the informer would) before it returns its response."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.lock = ObservedCondition()
        store._written_lock = self.lock
        self.verdicts: list[bool] = []
        self.echoes: list[threading.Thread] = []
        self.version = 100

    def replace_namespaced_custom_object_status(self, group: str, version: str,
                                                namespace: str, plural: str, name: str,
                                                body: dict[str, Any],
                                                **_: Any) -> dict[str, Any]:
        self.version += 1
        written = {"kind": body["kind"], "apiVersion": body["apiVersion"],
                   "metadata": {"name": name, "namespace": namespace,
                                "resourceVersion": str(self.version)},
                   "status": body["status"]}
        echo = threading.Thread(target=lambda: self.verdicts.append(
            self.store.is_own_write(written)))
        echo.start()
        self.echoes.append(echo)
        # the response is returned once the event is being handled (the echo waits for it)
        assert self.lock.waiting.wait(30), "the echo did not wait for the write's response"
        self.lock.waiting.clear()
        return written


def plan(version: str) -> dict[str, Any]:
    return {"apiVersion": "rolloutctl.dev/v1alpha1", "kind": "RolloutPlan",
            "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": version},
            "spec": {}}


def test_an_echo_arriving_before_the_response_is_recognised_as_own() -> None:
    store = ObjectStore(api=None)  # type: ignore[arg-type]
    api = EchoFirst(store)
    store._custom = api  # type: ignore[assignment]
    written = store.write_status(plan("100"), {"phase": "Progressing"})
    for echo in api.echoes:
        echo.join(5)
    assert written["metadata"]["resourceVersion"] == "101"
    assert api.verdicts == [True]


def test_someone_elses_change_during_a_write_is_not_own() -> None:
    store = ObjectStore(api=None)  # type: ignore[arg-type]
    api = EchoFirst(store)
    store._custom = api  # type: ignore[assignment]
    store.write_status(plan("100"), {"phase": "Progressing"})
    for echo in api.echoes:
        echo.join(5)
    assert store.is_own_write(plan("250")) is False
    # and the echo is recognised once only: a resync of the same version is not a write
    assert store.is_own_write({**plan("101")}) is False
