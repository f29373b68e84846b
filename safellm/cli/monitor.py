"""`safellm monitor`: drift of features, predictions and explanation quality."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safellm.cli.console import fail, out, settings
from safellm.errors import SafeLLMError


def monitor(
    current: Annotated[
        Path, typer.Option("--current", help="Built data folder of the current batch.")
    ],
    task: Annotated[str, typer.Option("--task", help="readmission|icu_mortality|los")] = (
        "readmission"
    ),
    reference: Annotated[
        Path | None,
        typer.Option("--reference", help="Reference data folder [default: $SAFELLM_HOME/data]."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Report folder [default: $SAFELLM_HOME/monitor/TASK]."),
    ] = None,
    window_days: Annotated[
        float, typer.Option("--window-days", min=0.001, help="Audit-trail window for quality.")
    ] = 7.0,
) -> None:
    """Drift between the training data and a current batch (PSI, KS per feature; predictions)
    and of the guard's fallback and failure rates over time. Exit 1 on any alert."""
    from safellm.services.monitoring import run_monitor
    from safellm.tasks import task_spec

    try:
        task_spec(task)
        report, paths = run_monitor(
            settings(),
            task=task,
            current_dir=current,
            reference_dir=reference,
            window=timedelta(days=window_days),
            out_dir=out_dir,
        )
    except SafeLLMError as exc:
        raise fail(exc) from exc
    table = Table(title=f"Drift, {task}: {report.model} (largest PSI first)")
    for col in ("feature", "PSI", "KS", "KS p", "alert"):
        table.add_column(col, justify="left" if col in ("feature", "alert") else "right")
    for f in [*report.features[:12], report.prediction]:
        table.add_row(
            f.feature,
            f"{f.psi:.3f}",
            "" if f.ks is None else f"{f.ks:.3f}",
            "" if f.ks_p is None else f"{f.ks_p:.1e}",
            f.why if f.alert else "",
        )
    out.print(table)
    q = report.quality
    out.print(f"Explanation quality: {q.why or 'no drift'} ({len(q.windows)} windows)")
    out.print(f"Reports: {paths['html']}  {paths['json']}", highlight=False)
    if report.alert:
        out.print(f"[bold red]ALERT[/]: {'; '.join(report.alerts)}", highlight=False)
        raise typer.Exit(code=1)
    out.print("No drift alert.")
