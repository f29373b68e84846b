"""`safellm data synth`, `safellm data build`, `safellm data ingest` and `safellm data export`."""

from __future__ import annotations

import dataclasses
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safellm.cli.console import console, fail, out, settings, stages
from safellm.config import Settings
from safellm.errors import SafeLLMError, UserInputError
from safellm.progress import Stage
from safellm.services.data import build_data, synthesize_hospital

data_app = typer.Typer(
    help="Build data: synthetic hospitals, cohorts and features.", no_args_is_help=True
)


def hospital(
    s: Settings,
    patients: int,
    out_dir: Path | None,
    seed: int,
    stage: Stage,
    chartevents: str | None = None,
) -> Path:
    """A synthetic hospital (reused when it exists), said on the console."""
    made = synthesize_hospital(s, patients, out_dir, seed, stage, chartevents)
    if made.summary is None:
        console.print(f"[green]using[/] {made.folder}")
    else:
        summary = made.summary
        console.print(
            f"[green]wrote[/] {summary.out_dir}: {summary.patients:,} patients, "
            f"{summary.admissions:,} admissions, {summary.icustays:,} ICU stays, "
            f"{summary.rows.get('LABEVENTS', 0):,} lab rows"
            + (
                f", {summary.rows['CHARTEVENTS']:,} chart rows"
                if "CHARTEVENTS" in summary.rows
                else ""
            )
        )
    return made.folder


def build(
    s: Settings,
    source: Path,
    out_dir: Path | None,
    stage: Stage,
    notes: bool = True,
    events: bool = True,
) -> dict[str, Any]:
    """Cohorts + features, said on the console; returns the cohort report."""
    result = build_data(s, source, out_dir, notes=notes, events=events, stage=stage)
    console.print(f"[green]wrote[/] {result.out_dir} in {result.seconds:.1f} s")
    if result.skipped_tables:
        console.print(
            f"[yellow]absent optional tables:[/] {', '.join(result.skipped_tables)} "
            f"(their features were skipped)"
        )
    return result.report


def print_report(report: dict[str, Any]) -> None:
    table = Table(title="Cohorts")
    for col in ("task", "rows", "positives", "subjects", "median LOS (days)"):
        table.add_column(col, justify="right" if col != "task" else "left")
    for task, r in report.items():
        table.add_row(
            task,
            f"{r['rows']:,}",
            f"{r['positives']:,}" if "positives" in r else "",
            f"{r['subjects']:,}",
            f"{r['median_days']:.2f}" if "median_days" in r else "",
        )
    out.print(table)


class ChartOption(StrEnum):
    none = "none"
    vitals = "vitals"
    full = "full"


CHART_OPTION = typer.Option(
    "--chartevents",
    help="CHARTEVENTS of the synthetic hospital: none, vitals (vital signs and GCS, hourly in "
    "the ICU) or full (plus the other charted items: the real table's size, ~7,000 rows per "
    "patient) [default: SAFELLM_SYNTHETIC_CHARTEVENTS, none].",
)


def _chart(option: ChartOption | None) -> str | None:
    return None if option is None else option.value


@data_app.command("synth")
def data_synth(
    patients: Annotated[int, typer.Option("--patients", min=1, help="Number of patients.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (replaced if present).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    chartevents: Annotated[ChartOption | None, CHART_OPTION] = None,
) -> None:
    """Write a MIMIC-shaped synthetic hospital (tables + NOTEEVENTS) as .csv.gz files."""
    try:
        with stages() as stage:
            hospital(settings(), patients, out_dir, seed, stage, _chart(chartevents))
    except SafeLLMError as exc:
        raise fail(exc) from exc


@data_app.command("build")
def data_build(
    mimic_dir: Annotated[
        Path | None, typer.Option("--mimic-dir", help="A MIMIC-III folder (demo or full).")
    ] = None,
    synthetic: Annotated[
        int | None,
        typer.Option(
            "--synthetic",
            min=1,
            help="Build from a synthetic hospital of N patients (generated if needed).",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder [default: $SAFELLM_HOME/data].")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for --synthetic.")] = 0,
    chartevents: Annotated[ChartOption | None, CHART_OPTION] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    no_notes: Annotated[bool, typer.Option("--no-notes", help="Skip the notes export.")] = False,
    no_events: Annotated[
        bool,
        typer.Option("--no-events", help="Skip the event sequences (the temporal model's input)."),
    ] = False,
) -> None:
    """Build cohort and feature tables (Parquet) and cohort_report.json."""
    s = settings()
    try:
        if (mimic_dir is None) == (synthetic is None):
            raise UserInputError("give exactly one of --mimic-dir DIR or --synthetic N")
        with stages() as stage:
            if synthetic is not None:
                source = hospital(s, synthetic, None, seed, stage, _chart(chartevents))
            else:
                assert mimic_dir is not None
                source = mimic_dir
            report = build(s, source, out_dir, stage, notes=not no_notes, events=not no_events)
    except SafeLLMError as exc:
        raise fail(exc) from exc
    if as_json:
        out.print_json(json.dumps(report))
    else:
        print_report(report)


@data_app.command("ingest")
def data_ingest(
    mimic_dir: Annotated[
        Path, typer.Option("--mimic-dir", help="A MIMIC-III folder of .csv.gz or .csv files.")
    ],
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Output folder for the Parquet tables (replaced if present)."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Convert the tables to Parquet once, so that later builds (--mimic-dir OUT) skip the CSV
    parsing."""
    from safellm.services.data import ingest_data

    try:
        with stages() as stage:
            result = ingest_data(settings(), mimic_dir, out_dir, stage=stage)
    except SafeLLMError as exc:
        raise fail(exc) from exc
    if as_json:
        out.print_json(result.model_dump_json())
        return
    table = Table(title=f"Ingested to {result.out_dir} in {result.seconds:.1f} s")
    for col in ("table", "rows", "Parquet MB"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}", f"{result.megabytes[name]:,.1f}")
    out.print(table)
    console.print(f"build from it with: safellm data build --mimic-dir {result.out_dir}")


class ExportFormat(StrEnum):
    meds = "meds"


@data_app.command("export")
def data_export(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (replaced if present).")],
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="The dataset standard to write.")
    ] = ExportFormat.meds,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data", help="A built data folder [default: $SAFELLM_HOME/data]."),
    ] = None,
    split_task: Annotated[
        str,
        typer.Option(
            "--split-task",
            help="The task whose outer folds give the subject splits (fold 0 held_out, "
            "fold 1 tuning, the rest train).",
        ),
    ] = "readmission",
    shard_subjects: Annotated[
        int, typer.Option("--shard-subjects", min=1, help="Subjects per data shard.")
    ] = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Export the built hospital as a MEDS dataset: events, codes, subject splits, each task's
    labels and ACES task configurations."""
    from safellm.services.data import export_data

    try:
        with stages() as stage:
            summary = export_data(
                settings(),
                data_dir,
                out_dir,
                split_task=split_task,
                shard_subjects=shard_subjects,
                stage=stage,
            )
    except SafeLLMError as exc:
        raise fail(exc) from exc
    if as_json:
        out.print_json(json.dumps(dataclasses.asdict(summary), default=str))
        return
    console.print(
        f"[green]wrote[/] {summary.out_dir} ({fmt.value}) in {summary.seconds:.1f} s: "
        f"{summary.subjects:,} subjects, {summary.events:,} events, {summary.codes:,} codes"
    )
    table = Table(title="MEDS labels")
    table.add_column("task")
    table.add_column("labels", justify="right")
    for task, rows in summary.labels.items():
        table.add_row(task, f"{rows:,}")
    out.print(table)
    splits = ", ".join(f"{k} {v:,}" for k, v in summary.splits.items())
    console.print(f"subjects by split: {splits}")
