"""`safellm batch`: every unit of a task predicted, explained and guarded, written as Parquet
(resumable: run it again with the same --out to continue)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safellm.cli.console import fail, out, settings, stages
from safellm.errors import SafeLLMError, UserInputError


def batch(
    task: Annotated[str, typer.Option("--task", help="readmission|icu_mortality|los")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder of the job (made if missing; reused: resume).")
    ],
    engine: Annotated[
        str, typer.Option("--engine", help="local (this process) or ray (a Ray cluster).")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray cluster to run on [default: $RAY_ADDRESS, else a local one started here].",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="local, fake (a dry run), or a LiteLLM model string "
            "[default: $SAFELLM_LLM_MODEL, else local].",
        ),
    ] = None,
    unit: Annotated[
        list[int] | None,
        typer.Option(
            "--unit", help="Only this unit (HADM_ID, or ICUSTAY_ID for icu_mortality); repeatable."
        ),
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option("--since", help="Only units predicted at or after this time."),
    ] = None,
    until: Annotated[
        datetime | None, typer.Option("--until", help="Only units predicted before this time.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="The first N units.")] = None,
    question: Annotated[
        str | None, typer.Option("--question", help="The question [default: the prompt's].")
    ] = None,
    chunk: Annotated[
        int, typer.Option("--chunk", min=1, help="Units per Parquet part (and Ray batch).")
    ] = 32,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Ray actors.")] = 2,
) -> None:
    """Predict, explain and guard every unit of a task (or the chosen ones) into Parquet."""
    from safellm.services.batch import BatchJob, run_batch

    s = settings()
    try:
        if engine not in ("local", "ray"):
            raise UserInputError(f"--engine must be local or ray, not {engine!r}")
        job = BatchJob(
            task=task,
            out=out_dir,
            model=model,
            question=question,
            units=unit or None,
            since=since,
            until=until,
            limit=limit,
            chunk=chunk,
            engine=engine,  # type: ignore[arg-type]
            address=address,
            workers=workers,
        )
        with stages() as stage:
            summary = run_batch(s, job, stage=stage)
    except SafeLLMError as exc:
        raise fail(exc) from exc
    table = Table(title=f"Batch {summary.task} ({summary.engine})", show_header=False)
    table.add_row("units", f"{summary.units:,}")
    table.add_row(
        "written now / found from an earlier run", f"{summary.done_now:,} / {summary.done_before:,}"
    )
    for outcome, n in sorted(summary.by_outcome.items(), key=lambda kv: -kv[1]):
        table.add_row(f"guard: {outcome}", f"{n:,}")
    table.add_row("errors", f"{summary.errors:,}")
    table.add_row("wall time", f"{summary.seconds:,.1f} s")
    table.add_row("throughput", f"{summary.units_per_hour:,.0f} units/hour")
    if summary.latency_p50_s is not None:
        table.add_row(
            "latency per unit p50 / p95",
            f"{summary.latency_p50_s:.2f} s / {summary.latency_p95_s:.2f} s",
        )
    table.add_row("table", str(summary.table))
    out.print(table)
    if summary.errors:
        out.print(f"[yellow]{summary.errors} unit(s) failed: see the `error` column[/]")
