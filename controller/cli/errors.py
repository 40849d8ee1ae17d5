"""One line per problem, with the fix, and an exit code; never a traceback.

Exit codes shared by every command: 0 success (or healthy), 1 a documented "bad news"
outcome (rolled back, degraded, a failed drill, doctor warnings), 2 an error (unknown plan,
no cluster, no permission, a timeout, bad arguments).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum

import typer


class ExitCode(IntEnum):
    """The one exit-code table of every command (``reported`` and ``session`` map errors
    to it; commands return its members)."""

    OK = 0           # success, healthy
    BAD = 1          # a documented bad-news outcome, or invalid input files
    ERROR = 2        # an error: no cluster, unknown object, no permission, a timeout
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


EXIT_OK = ExitCode.OK
EXIT_BAD = ExitCode.BAD
EXIT_ERROR = ExitCode.ERROR


class CliError(Exception):
    """A problem to report as one line (``error: ...``) and exit with ``code``."""

    def __init__(self, message: str, code: int = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def echo_error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def exit_for(exc: BaseException, server: str | None = None,
             user: str | None = None) -> int | None:
    """Print EXC as one line on stderr and return its exit code; None for a bug (an error
    with no message of its own: let it raise)."""
    if isinstance(exc, CliError):
        echo_error(exc.message)
        return exc.code
    if isinstance(exc, KeyboardInterrupt):
        echo_error("interrupted")
        return ExitCode.INTERRUPTED
    message = describe(exc, server, user)
    if message is None:
        return None
    echo_error(message)
    return ExitCode.ERROR


@contextmanager
def reported(server: str | None = None, user: str | None = None, *,
             who: Callable[[], tuple[str | None, str | None]] | None = None) -> Iterator[None]:
    """Turn the errors a command may meet into one line on stderr and an exit code
    (:func:`exit_for`). WHO, when given, names the server and user at the time of the error
    (a session learns them as it goes).

    Imports of the adapters happen lazily so that a command that never talks to a cluster
    does not pay for the Kubernetes client.
    """
    try:
        yield
    except typer.Exit:
        raise
    except (Exception, KeyboardInterrupt) as exc:
        if who is not None:
            server, user = who()
        code = exit_for(exc, server, user)
        if code is None:
            raise
        raise typer.Exit(code) from None


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
