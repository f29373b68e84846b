"""`safellm train --temporal`: the temporal model per classification task, with its metrics printed
beside the tabular models' (same data, same folds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from safellm.cli import _progress, out
from safellm.config import Settings
from safellm.risk.temporal_registry import TEMPORAL_TASKS, check_temporal

SHOWN = ("auroc", "auprc", "brier", "calibration_slope")


def train_temporal_tasks(
    settings: Settings,
    task: str,
    data: Path | None,
    out_dir: Path | None,
    n_boot: int = 200,
) -> list[Any]:
    from safellm.risk.temporal_workflow import temporal_steps, train_temporal_and_register

    tasks = list(TEMPORAL_TASKS) if task == "all" else [check_temporal(task)]
    home = out_dir or settings.home
    data_dir = data or settings.data_dir
    summaries = []
    with _progress(len(tasks) * temporal_steps(), "Training the temporal model") as advance:
        for t in tasks:
            summaries.append(
                train_temporal_and_register(
                    t, data_dir, home, seed=settings.seed, n_boot=n_boot, progress=advance
                )
            )
    return summaries


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
