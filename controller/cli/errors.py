"""One line per problem, with the fix, and an exit code; never a traceback.

Exit codes shared by every command: 0 success (or healthy), 1 a documented "bad news"
outcome (rolled back, degraded, a failed drill, doctor warnings), 2 an error (unknown plan,
no cluster, no permission, a timeout, bad arguments).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

EXIT_OK = 0
EXIT_BAD = 1
EXIT_ERROR = 2


class CliError(Exception):
    """A problem to report as one line (``error: ...``) and exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def echo_error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


@contextmanager
def reported(server: str | None = None, user: str | None = None) -> Iterator[None]:
    """Turn the errors a command may meet into one line on stderr and an exit code.

    Imports of the adapters happen lazily so that a command that never talks to a cluster
    does not pay for the Kubernetes client.
    """
    try:
        yield
    except CliError as exc:
        echo_error(exc.message)
        raise typer.Exit(exc.code) from None
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        echo_error("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        message = describe(exc, server, user)
        if message is None:
            raise
        echo_error(message)
        raise typer.Exit(EXIT_ERROR) from None


def describe(exc: BaseException, server: str | None = None,
             user: str | None = None) -> str | None:
    """The one-line message (with the fix) for a known error, or None for a bug."""
    if "controller.adapters.kube.client" in sys.modules:
        from controller.adapters.kube.client import NoCluster

        if isinstance(exc, NoCluster):
            return f"no cluster to talk to: {exc}"
    from controller.errors import ControllerError, NotFound, Permanent

    if not isinstance(exc, ControllerError):
        return None
    where = f" at {server}" if server else ""
    if exc.reason == "ApiUnreachable":
        return (f"cannot reach the API server{where}: is the cluster running? "
                "Check --kubeconfig and --context (kubectl cluster-info)")
    if exc.reason == "CertificateRefused":
        return exc.message
    if exc.reason == "Forbidden":
        what = exc.message.split(": forbidden", 1)[0]
        who = f" for user {user}" if user else ""
        return (f"{what}: forbidden{who}; ask a cluster admin for a role that allows it "
                "(`rolloutctl doctor` lists what is missing)")
    if isinstance(exc, NotFound):
        return f"{exc.message}; check the name and the namespace (-n)"
    if isinstance(exc, Permanent):
        return exc.message
    return f"{exc.message}; try again in a moment"
