"""Notifications: Slack (threads, in-place updates, webhooks), e-mail and incident webhooks.

The engine writes announcements into ``status.notifications.outbox``; the reconciler calls
``Dispatcher.submit(kind, namespace, name)`` after its status write; the dispatcher delivers
them in the background and records the outcome in status. See ``dispatcher.py``.
"""

from controller.adapters.notify.dispatcher import Dispatcher, DispatcherConfig, SystemClock
from controller.adapters.notify.errors import (
    Conflict,
    DeliveryError,
    ObjectGone,
    SecretUnavailable,
    StoreError,
)
from controller.adapters.notify.memory import InMemoryNotificationStore
from controller.adapters.notify.metrics import NotifyMetrics
from controller.adapters.notify.routing import Channel
from controller.adapters.notify.store import KubeNotificationStore, NotificationStore
from controller.adapters.notify.subject import Kind, ObjectRef, Subject

__all__ = [
    "Channel",
    "Conflict",
    "DeliveryError",
    "Dispatcher",
    "DispatcherConfig",
    "InMemoryNotificationStore",
    "Kind",
    "KubeNotificationStore",
    "NotificationStore",
    "NotifyMetrics",
    "ObjectGone",
    "ObjectRef",
    "SecretUnavailable",
    "StoreError",
    "Subject",
    "SystemClock",
]
