"""What every `safellm` command shares: the two consoles (messages on stderr, results on stdout),
settings, the error exit, and rich progress bars for the use cases' stages."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from safellm.config import Settings
from safellm.errors import SafeLLMError
from safellm.progress import Advance, Stage

console = Console(stderr=True)
# wide enough for the metric tables when the output goes to a file or a pipe
out = Console(width=None if sys.stdout.isatty() else 160)


def settings() -> Settings:
    """The settings from the environment; a bad value is a clear error (exit 2) naming its
    variable — the value itself is not echoed: it may be a password."""
    try:
        return Settings()
    except ValidationError as exc:
        for e in exc.errors():
            name = "SAFELLM_" + "_".join(str(x) for x in e["loc"]).upper()
            console.print(f"[bold red]error:[/] {name}: {e['msg']}", highlight=False)
        raise typer.Exit(code=2) from None


def fail(exc: SafeLLMError) -> typer.Exit:
    """Say what went wrong (no traceback) and exit with status 2."""
    console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=2)


@contextmanager
def stages() -> Iterator[Stage]:
    """A `Stage` drawing one progress bar per stage of the work, added as the stages come
    (shown only on a terminal)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("[dim]{task.fields[step]}"),
        console=console,
        disable=not console.is_terminal,
    ) as bar:

        def stage(title: str, total: int) -> Advance:
            task = bar.add_task(title, total=total, step="")

            def advance(n: int, step: str) -> None:
                bar.update(task, advance=n, step=step)

            return advance

        yield stage
