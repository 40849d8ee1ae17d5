"""Defaults shared by the controller, the CLI and the Helm chart: one place for each.

The chart (``helm/rolloutctl``) keeps literal values (Helm cannot import Python);
``tests/unit/test_chart_values_equal_the_constants.py`` fails when the two drift apart.
"""

from __future__ import annotations

from typing import Final

#: the leader-election Lease: ``rolloutctl run --lease-name``, ``rolloutctl doctor --lease``,
#: the Manager's default, the chart's ``leaderElection.leaseName``
LEASE_NAME: Final = "rolloutctl-controller"
#: where the Lease lives when ``POD_NAMESPACE`` is not set (the chart's release namespace)
LEASE_NAMESPACE: Final = "rolloutctl-system"
#: the controller's ServiceAccount (``doctor`` checks its RBAC; the chart's default name)
SERVICE_ACCOUNT: Final = "rolloutctl"

#: /metrics, /healthz and /readyz (the chart's container port and metrics Service port)
METRICS_PORT: Final = 8080
#: ``rolloutctl run --metrics-address`` outside a cluster: loopback only
METRICS_ADDRESS: Final = f"127.0.0.1:{METRICS_PORT}"
#: ``rolloutctl dashboard --port`` (on 127.0.0.1)
DASHBOARD_PORT: Final = 7420
