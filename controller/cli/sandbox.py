"""``rolloutctl sandbox``: not in the installed package; says where the sandbox lives.

The sandbox (a local control plane built from Go modules, Debian's Prometheus, demo
services, a Slack stand-in and the controller on this machine) is a tool of the rolloutctl
repository (``scripts/sandbox``, ``tests/harness/``): it needs the repository's Go tool
modules and the test harness, neither of which ships in the wheel or the image. This stub
keeps ``rolloutctl sandbox ...`` from an installed package a clear one-line error.
"""

from __future__ import annotations

import typer

from controller.cli.errors import EXIT_ERROR, echo_error

NOT_INSTALLED = (
    "the sandbox is a development tool of the rolloutctl repository, not part of the "
    "installed package: it builds a local Kubernetes control plane from Go modules (Go "
    "1.26) and runs Debian's prometheus and the tests' stand-ins. In a clone of "
    "https://github.com/rolloutctl/rolloutctl run `make demo`, or "
    "`scripts/sandbox up|down|status|demo`."
)

sandbox_app = typer.Typer(
    help="Not in the installed package: the sandbox is the repository's `scripts/sandbox`.",
    hidden=True,
    invoke_without_command=True,
    add_completion=False,
)


@sandbox_app.callback()
def sandbox() -> None:
    """Runs before any subcommand: there is no sandbox in the installed package."""
    echo_error(NOT_INSTALLED)
    raise typer.Exit(EXIT_ERROR)


def _moved() -> None:  # never runs: the callback above exits first
    """Moved to the repository's `scripts/sandbox`."""


# The old subcommands stay known, so `rolloutctl sandbox up --dir X` reaches the message
# above instead of "No such command".
for _name in ("up", "down", "status", "demo"):
    sandbox_app.command(_name, context_settings={
        "allow_extra_args": True, "ignore_unknown_options": True})(_moved)
