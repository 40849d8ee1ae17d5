"""``rolloutctl run``: the controller process (what the Deployment in the Helm chart runs)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from controller.app import Config
from controller.cli.errors import ExitCode
from controller.constants import METRICS_ADDRESS

#: the flags' defaults are the composition root's
DEFAULT = Config()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(fmt: str, level: str) -> None:
    from controller.adapters.notify.redact import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # secrets never reach the log, whoever logs them
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "kubernetes", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)



def run(
    kubeconfig: Annotated[str | None, typer.Option(
        envvar="KUBECONFIG", help="Kubeconfig file (default: in-cluster config)")] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context")] = None,
    namespace: Annotated[list[str] | None, typer.Option(
        "--namespace", "-n", envvar="ROLLOUTCTL_NAMESPACES",
        help="Namespace to watch (repeat for several; default: all)")] = None,
    workers: Annotated[int, typer.Option(
        envvar="ROLLOUTCTL_WORKERS", min=1, help="Reconcile workers for plans")] = DEFAULT.workers,
    leader_elect: Annotated[bool, typer.Option(
        envvar="ROLLOUTCTL_LEADER_ELECT", help="Elect a leader on a Lease (for replicas > 1)")
    ] = DEFAULT.leader_elect,
    lease_namespace: Annotated[str, typer.Option(
        envvar="POD_NAMESPACE", help="Namespace of the leader Lease")] = DEFAULT.lease_namespace,
    lease_name: Annotated[str, typer.Option(
        envvar="ROLLOUTCTL_LEASE_NAME", help="Name of the leader Lease")
    ] = DEFAULT.lease_name,
    identity: Annotated[str | None, typer.Option(
        envvar="POD_NAME", help="This replica's name in the Lease (default: host-pid)")] = None,
    prometheus_url: Annotated[str | None, typer.Option(
        envvar="ROLLOUTCTL_PROMETHEUS_URL",
        help="Prometheus for SLOPolicies without spec.prometheus")] = None,
    metrics_address: Annotated[str, typer.Option(
        envvar="ROLLOUTCTL_METRICS_ADDRESS",
        help="host:port of /metrics, /healthz and /readyz")] = METRICS_ADDRESS,
    log_format: Annotated[str, typer.Option(
        envvar="ROLLOUTCTL_LOG_FORMAT", help="json or text")] = "json",
    log_level: Annotated[str, typer.Option(envvar="ROLLOUTCTL_LOG_LEVEL")] = "info",
    max_concurrent_rollouts: Annotated[int | None, typer.Option(
        envvar="ROLLOUTCTL_MAX_CONCURRENT_ROLLOUTS", min=1,
        help="Runs beyond this wait in Pending (default: no limit)")] = None,
    cluster_name: Annotated[str, typer.Option(
        envvar="ROLLOUTCTL_CLUSTER_NAME", help="Shown in Slack messages")] = DEFAULT.cluster_name,
    slack_base_url: Annotated[str | None, typer.Option(
        envvar="ROLLOUTCTL_SLACK_BASE_URL", help="Slack Web API base URL (for a stand-in)")
    ] = None,
    resync: Annotated[float, typer.Option(
        envvar="ROLLOUTCTL_RESYNC_SECONDS", help="Seconds between full resyncs")
    ] = DEFAULT.resync_seconds,
    egress_allow: Annotated[str, typer.Option(
        envvar="ROLLOUTCTL_EGRESS_ALLOW",
        help="Hosts and CIDRs tenant URLs may reach, comma-separated (default: any address "
        "but loopback, link-local and the API server's; '*' adds those to a list)")
    ] = DEFAULT.egress_allow,
    max_concurrent_rollouts_per_namespace: Annotated[int | None, typer.Option(
        envvar="ROLLOUTCTL_MAX_CONCURRENT_ROLLOUTS_PER_NAMESPACE", min=1,
        help="Runs of one namespace beyond this wait in Pending (default: no limit)")] = None,
    max_workers_per_namespace: Annotated[int | None, typer.Option(
        envvar="ROLLOUTCTL_MAX_WORKERS_PER_NAMESPACE", min=1,
        help="Workers one namespace's plans or policies may hold at once "
        "(default: all workers but one)")] = None,
    max_probes_per_namespace: Annotated[int, typer.Option(
        envvar="ROLLOUTCTL_MAX_PROBES_PER_NAMESPACE", min=1,
        help="Probers one namespace may run at once")] = DEFAULT.max_probes_per_namespace,
    http_max_connections: Annotated[int, typer.Option(
        envvar="ROLLOUTCTL_HTTP_MAX_CONNECTIONS", min=1,
        help="Connections the metrics/health server serves at once")
    ] = DEFAULT.http_max_connections,
    fast_interval: Annotated[float | None, typer.Option(
        envvar="ROLLOUTCTL_FAST_INTERVAL", min=0,
        help="Seconds between fast-path checks of every plan at a step (fast burn and "
        "errorRatioCeiling, one query per SLO template); default: the scrape interval the "
        "Prometheus servers in use report for their targets (/api/v1/targets), clamped to "
        "1-10 s, 10 s until known; 0 turns the fast path off")] = DEFAULT.fast_interval,
) -> None:
    """Run the controller: watch RolloutPlans and SLOPolicies and drive them."""
    if log_format not in ("json", "text"):
        raise typer.BadParameter("must be json or text", param_hint="--log-format")
    configure_logging(log_format, log_level)
    from controller.adapters.kube.client import NoCluster
    from controller.app import Config, ConfigError, build

    config = Config(
        kubeconfig=kubeconfig, context=context, namespaces=tuple(namespace or ()),
        workers=workers, leader_elect=leader_elect, lease_namespace=lease_namespace,
        lease_name=lease_name, identity=identity, prometheus_url=prometheus_url,
        metrics_address=metrics_address, max_concurrent_rollouts=max_concurrent_rollouts,
        cluster_name=cluster_name, slack_base_url=slack_base_url, resync_seconds=resync,
        egress_allow=egress_allow,
        max_concurrent_rollouts_per_namespace=max_concurrent_rollouts_per_namespace,
        max_workers_per_namespace=max_workers_per_namespace,
        max_probes_per_namespace=max_probes_per_namespace,
        http_max_connections=http_max_connections, fast_interval=fast_interval,
    )
    try:
        app = build(config)
    except ConfigError as exc:
        raise typer.BadParameter(exc.message, param_hint=exc.option) from None
    except NoCluster as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.ERROR) from None
    app.run()
