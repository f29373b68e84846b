"""`safellm train`: the tabular models of a task (or all), or with `--temporal` the temporal model
beside them (same data, same folds)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from safellm.cli.console import fail, out, settings, stages
from safellm.errors import SafeLLMError

SHOWN = ("auroc", "auprc", "brier", "calibration_slope")  # beside the temporal model


def train(
    task: Annotated[str, typer.Option("--task", help="readmission|icu_mortality|los|all")] = "all",
    data: Annotated[
        Path | None, typer.Option("--data", help="Built data folder [default: $SAFELLM_HOME/data].")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Artifact root [default: $SAFELLM_HOME].")
    ] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=20, help="Bootstrap replicates.")] = 200,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Skip MLflow logging.")] = False,
    temporal: Annotated[
        bool,
        typer.Option(
            "--temporal",
            help="Train the temporal model (event sequences; readmission, icu_mortality) "
            "instead of the tabular ones, and compare it with them.",
        ),
    ] = False,
) -> None:
    """Train, evaluate (CIs), fairness, imbalance analysis, plots, model card, bundle, MLflow."""
    from safellm.services.training import train_tasks

    s = settings()
    try:
        with stages() as stage:
            summaries = train_tasks(
                s,
                task,
                temporal=temporal,
                data_dir=data,
                home=out_dir,
                n_boot=n_boot,
                log_mlflow=not no_mlflow,
                stage=stage,
            )
    except SafeLLMError as exc:
        raise fail(exc) from exc
    (print_temporal if temporal else print_training)(summaries)


def print_training(summaries: list[Any]) -> None:
    for s in summaries:
        table = Table(title=f"{s.task} — out-of-fold metrics, 95 % CI (bundle {s.version})")
        names = list(next(iter(s.metrics.values())).keys())
        table.add_column("model")
        for n in names:
            table.add_column(n, justify="right")
        for model, ms in s.metrics.items():
            mark = " *" if model == s.default_model else ""
            table.add_row(model + mark, *[ms[n].fmt() for n in names])
        if s.baseline:
            table.add_row("median baseline", *[s.baseline[n].fmt() for n in names])
        out.print(table)
        out.print(f"  run folder: {s.run_dir}  (* = default model)")


def print_temporal(summaries: list[Any]) -> None:
    for s in summaries:
        table = Table(title=f"{s.task} — out-of-fold metrics, 95 % CI, same folds ({s.version})")
        table.add_column("model")
        for n in SHOWN:
            table.add_column(n, justify="right")
        table.add_row("temporal", *[s.metrics[n].fmt() for n in SHOWN])
        for model, ms in s.tabular_metrics.items():
            table.add_row(f"{model} (tabular)", *[ms[n].fmt() for n in SHOWN if n in ms])
        out.print(table)
        if not s.tabular_metrics:
            out.print(
                "  no tabular bundle trained on the same data to compare with "
                f"(safellm train --task {s.task})"
            )
        per_epoch = f"{s.seconds_per_epoch:.1f} s/epoch, " if s.seconds_per_epoch else ""
        out.print(
            f"  {s.epochs} epochs in the final fit, {per_epoch}{s.seconds:.0f} s in all; "
            f"run folder: {s.run_dir}"
        )
