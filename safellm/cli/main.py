"""The `safellm` command: the Typer app, its sub-apps and commands. Each command lives in its own
module of this package and calls a use case of `safellm.services`; heavy libraries are imported
inside the commands that need them."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.logging import RichHandler

from safellm import __version__
from safellm.cli import batch, explain, monitor, serve, train
from safellm.cli import eval as eval_cmd
from safellm.cli.console import console, out
from safellm.cli.data import data_app
from safellm.cli.fhir import fhir_app
from safellm.cli.guard import guard_app
from safellm.config import apply_offline_switches

app = typer.Typer(
    help="SafeLLM: clinical risk models with explanations checked against the facts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(guard_app, name="guard")
app.add_typer(fhir_app, name="fhir")
app.command("train")(train.train)
app.command("demo")(explain.demo)
app.command("explain")(explain.explain)
app.command("serve")(serve.serve)
app.add_typer(serve.audit_app, name="audit")
app.command("eval")(eval_cmd.evaluate)
app.command("batch")(batch.batch)
app.command("monitor")(monitor.monitor)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    apply_offline_switches()
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
    )
    if version:
        out.print(f"safellm {__version__}")
        raise typer.Exit()


def main() -> None:
    app()
