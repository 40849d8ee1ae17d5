"""rolloutctl: the operator's command line (also ``kubectl rolloutctl``).

Commands live in small modules whose top level imports only typer; each imports the
Kubernetes client, the models and rich when it runs, so ``rolloutctl status`` pays only for
what it uses. Register a command with one line in the block at the end of this file.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from controller import __version__
from controller.cli.errors import ExitCode

app = typer.Typer(
    name="rolloutctl",
    help="Progressive rollouts gated by SLOs and error budgets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def validate(
    files: Annotated[list[Path], typer.Argument(help="YAML files of RolloutPlans/SLOPolicies")],
) -> None:
    """Check plans and policies; print one line per problem (FILE: FIELD: MESSAGE)."""
    from controller.cli.documents import check_files

    reports = check_files(files)
    lines = [line for r in reports for line in r.lines()]
    for line in lines:
        typer.echo(line)
    if lines:
        raise typer.Exit(ExitCode.BAD)
    count = sum(len(r.plans) + len(r.policies) for r in reports)
    typer.echo(f"{count} object(s) in {len(files)} file(s): valid", err=True)


def crds(
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Write one file per CRD here")
    ] = None,
) -> None:
    """Print the CustomResourceDefinitions (generated from the API models)."""
    from controller.api import crd

    rendered = {name: crd.render(obj) for name, obj in crd.all_crds().items()}
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (output_dir / name).write_text(text, encoding="utf-8")
        return
    typer.echo("---\n".join(rendered.values()), nl=False)


def version() -> None:
    """Print the version."""
    typer.echo(f"rolloutctl {__version__}")


def main() -> None:
    try:
        app()
    except SystemExit as done:
        _exit(done.code)  # click ends every command with one
    _exit(0)


def _exit(code: str | int | None) -> None:
    """Exit with CODE (as ``sys.exit`` reads it), without tearing the interpreter down.

    A one-shot command has printed its answer; freeing every module and object afterwards
    is about 0.15 s of ``rolloutctl status`` and changes nothing for the user. The exit
    handlers still run and the output is flushed. While another thread lives (``run``, the
    controller, stopping) the normal exit is taken, so nothing is cut short.
    """
    if threading.active_count() > 1:
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`): no reader
            stream.flush()
    os._exit(status)


# ----------------------------------------------------------------------------- commands
# One line per command, in help order; command modules import only typer at their top.
from controller.cli import dashboard, doctor, drill, freeze, plans, report  # noqa: E402
from controller.cli.run import run  # noqa: E402
from controller.cli.sandbox import sandbox_app  # noqa: E402
from controller.cli.simulate import simulate  # noqa: E402

app.command()(plans.get)
app.command()(plans.status)
app.command()(plans.promote)
app.command()(plans.pause)
app.command()(plans.resume)
app.command()(plans.abort)
app.command()(plans.retry)
app.command()(drill.drill)
app.add_typer(freeze.freeze_app, name="freeze")
app.command()(freeze.budget)
app.command()(report.report)
app.command()(dashboard.dashboard)
app.command()(doctor.doctor)
app.command()(simulate)
app.command()(run)
app.add_typer(sandbox_app, name="sandbox")
app.command()(validate)
app.command()(crds)
app.command()(version)
# ----------------------------------------------------------------------------- end commands
