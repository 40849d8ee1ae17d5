"""The manager maps the error taxonomy as ``controller.errors`` documents it: ``Permanent``
is not retried (the key comes back with the object's next change), ``Transient`` is retried
with per-key backoff, ``Conflict`` at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry

from controller.errors import Conflict, ControllerError, NotFound, Permanent, Transient
from controller.runtime.manager import Manager


class Raising:
    def __init__(self) -> None:
        self.error: ControllerError | None = None
        self.calls = 0

    def reconcile(self, key: str) -> float | None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return None


@pytest.fixture
def manager() -> Iterator[Manager]:
    api = ApiClient()
    try:
        yield Manager(api, CollectorRegistry(), bind=None, leader_election=False)
    finally:
        api.close()  # type: ignore[no-untyped-call]


def run_once(manager: Manager, error: ControllerError | None) -> tuple[int, int, int]:
    """One reconcile raising ERROR; (keys queued now, keys waiting, requeues counted)."""
    reconciler = Raising()
    reconciler.error = error
    queue = manager.add_controller(f"c{id(reconciler)}", reconciler)
    ctl = manager._controllers[queue.name]
    manager._reconcile(ctl, "shop/checkout")
    assert reconciler.calls == 1
    return len(queue), queue.waiting(), queue.num_requeues("shop/checkout")


@pytest.mark.parametrize("error", [
    Permanent("spec.target: no such Deployment", "Invalid"),
    NotFound("shop/checkout: not found"),
])
def test_a_permanent_error_is_not_retried(manager: Manager, error: Permanent) -> None:
    assert run_once(manager, error) == (0, 0, 0)


def test_a_transient_error_is_retried_with_backoff(manager: Manager) -> None:
    assert run_once(manager, Transient("timeout")) == (0, 1, 1)


def test_a_conflict_is_retried_at_once(manager: Manager) -> None:
    assert run_once(manager, Conflict("409")) == (1, 0, 0)
