"""``rolloutctl dashboard``: a read-only web dashboard on 127.0.0.1, as the user.

It reads the cluster with the user's kubeconfig (so it shows exactly what the user's RBAC
allows: no new credentials, no server-side auth) and Prometheus for the charts.
"""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from controller.cli.errors import ExitCode
from controller.cli.options import ClusterOptions, Context, Kubeconfig
from controller.constants import DASHBOARD_PORT


def dashboard(
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    namespace: Annotated[list[str] | None, typer.Option(
        "-n", "--namespace", metavar="NS",
        help="Show only this namespace (repeatable); default: every namespace you can list. "
             "Also where to look when you may not list namespaces.")] = None,
    port: Annotated[int, typer.Option(
        "--port", min=0, max=65535,
        help="Port on 127.0.0.1 (0: any free port)")] = DASHBOARD_PORT,
    no_browser: Annotated[bool, typer.Option(
        "--no-browser", help="Print the URL only; do not open a browser")] = False,
    prometheus_url: Annotated[str | None, typer.Option(
        "--prometheus-url", envvar="ROLLOUTCTL_PROMETHEUS_URL", metavar="URL",
        help="Prometheus scraping the controller (default: each policy's "
             "spec.prometheus.url)")] = None,
) -> None:
    """Serve a live, read-only dashboard of plans, budgets and freezes on 127.0.0.1."""
    from controller.cli.errors import echo_error
    from controller.cli.session import session
    from controller.dashboard.server import Dashboard, serve
    from controller.dashboard.sources import Clients, snapshot_cache, sources

    with session(ClusterOptions(kubeconfig, context)) as s:
        clients = Clients()
        board = Dashboard(snapshot_cache(s, list(namespace or [])),
                          sources(clients, prometheus_url), who=s.user())
        try:
            server = serve(board, port)
        except OSError as exc:
            echo_error(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); choose another "
                       "with --port (0 picks a free one)")
            raise typer.Exit(ExitCode.ERROR) from None
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        typer.echo(f"dashboard: {url}  (read-only, as {s.user()}; Ctrl-C to stop)")
        if not no_browser:
            import webbrowser

            webbrowser.open(url)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            server.server_close()
