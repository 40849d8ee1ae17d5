"""Prometheus metrics of the notifier (``prometheus_client``)."""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class NotifyMetrics:
    """Label values come from fixed sets (channel names, known types, CamelCase reasons),
    never from user input or a server's answer."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.sent = Counter(
            "rolloutctl_notifications_sent_total",
            "Notifications delivered, by channel and type.",
            ["channel", "type"], registry=registry,
        )
        self.failed = Counter(
            "rolloutctl_notifications_failed_total",
            "Notification delivery attempts that failed, by channel and reason.",
            ["channel", "reason"], registry=registry,
        )
        self.dropped = Counter(
            "rolloutctl_notifications_dropped_total",
            "Notifications given up on, or submits refused because the queue was full.",
            ["reason"], registry=registry,
        )
        self.queue_depth = Gauge(
            "rolloutctl_notifications_queue_depth",
            "Objects waiting for the notification dispatcher.",
            registry=registry,
        )
        self.send_seconds = Histogram(
            "rolloutctl_notifications_send_seconds",
            "Time one delivery took, by channel.",
            ["channel"], registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )


_default: NotifyMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> NotifyMetrics:
    """The process-wide metrics on the default registry (registered once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = NotifyMetrics(REGISTRY)
        return _default
