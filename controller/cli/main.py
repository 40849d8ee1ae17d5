"""rolloutctl: the operator's command line (also ``kubectl rolloutctl``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from controller import __version__
from controller.api import crd
from controller.cli.documents import check_files

app = typer.Typer(
    name="rolloutctl",
    help="Progressive rollouts gated by SLOs and error budgets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="YAML files of RolloutPlans/SLOPolicies")],
) -> None:
    """Check plans and policies; print one line per problem (FILE: FIELD: MESSAGE)."""
    reports = check_files(files)
    lines = [line for r in reports for line in r.lines()]
    for line in lines:
        typer.echo(line)
    if lines:
        raise typer.Exit(1)
    count = sum(len(r.plans) + len(r.policies) for r in reports)
    typer.echo(f"{count} object(s) in {len(files)} file(s): valid", err=True)


@app.command()
def crds(
    output_dir: Annotated[
        Path | None, typer.Option("--output-dir", help="Write one file per CRD here")
    ] = None,
) -> None:
    """Print the CustomResourceDefinitions (generated from the API models)."""
    rendered = {name: crd.render(obj) for name, obj in crd.all_crds().items()}
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            (output_dir / name).write_text(text, encoding="utf-8")
        return
    typer.echo("---\n".join(rendered.values()), nl=False)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"rolloutctl {__version__}")


# -- commands defined in their own modules (one line each) ---------------------------------
from controller.cli.run import run  # noqa: E402
from controller.cli.simulate import simulate  # noqa: E402

app.command()(simulate)
app.command()(run)


def main() -> None:
    sys.exit(app())
