"""Notifications: Slack (threads, in-place updates, webhooks), e-mail and incident webhooks.

The engine writes announcements into ``status.notifications.outbox``; the reconciler calls
``Dispatcher.submit(kind, namespace, name)`` after its status write; the dispatcher delivers
them in the background and records the outcome in status. See ``dispatcher.py``.

Wiring (one per controller process; ``cli/run.py``)::

    queue = WorkQueue("notifications", registry, clock=clock.monotonic, max_keys=1000)
    store = KubeNotificationStore(api_client, reporting_instance=pod_name)
    notifier = Dispatcher(store, DispatcherConfig(cluster_name="prod-eu1"), queue=queue)
    manager.add_controller("notifications", notifier, workers, queue=queue)
    ...
    notifier.submit("RolloutPlan", namespace, name)   # after every reconcile pass

Standalone (tests): ``Dispatcher(..., queue=queue).start()`` ... ``stop()``.

RBAC it needs: get on rolloutplans and slopolicies, patch on their ``/status``, get on
secrets (in the namespaces of plans and policies that name one), create on events. Slack
app scopes: ``chat:write``, ``channels:history``, ``groups:history``, ``channels:read``,
``groups:read``.
"""

from controller.adapters.notify.channels import Channel
from controller.adapters.notify.dispatcher import (
    Dispatcher,
    DispatcherConfig,
    NullNotifier,
    SystemClock,
)
from controller.adapters.notify.errors import DeliveryError, SecretUnavailable
from controller.adapters.notify.memory import InMemoryNotificationStore
from controller.adapters.notify.metrics import NotifyMetrics
from controller.adapters.notify.routing import ChannelName
from controller.adapters.notify.store import KubeNotificationStore, NotificationStore
from controller.adapters.notify.subject import Kind, ObjectRef, Subject

__all__ = [
    "Channel",
    "ChannelName",
    "DeliveryError",
    "Dispatcher",
    "DispatcherConfig",
    "InMemoryNotificationStore",
    "Kind",
    "KubeNotificationStore",
    "NotificationStore",
    "NotifyMetrics",
    "NullNotifier",
    "ObjectRef",
    "SecretUnavailable",
    "Subject",
    "SystemClock",
]
