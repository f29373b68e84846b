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
    period: Annotated[
        str,
        typer.Option("--period", help="Concept drift: month|quarter|year of prediction time."),
    ] = "month",
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=0, help="Concept drift: bootstrap resamples per period.")
    ] = 200,
) -> None:
    """Drift between the training data and a current batch (PSI, KS per feature; predictions),
    of the guard's fallback and failure rates over time, and of the model's performance per
    period on the batch's known outcomes (concept drift). Exit 1 on any alert."""
    from safellm.errors import UserInputError
    from safellm.risk.drift import PERIODS
    from safellm.services.monitoring import run_monitor
    from safellm.tasks import task_spec

    try:
        task_spec(task)
        if period not in PERIODS:
            raise UserInputError(f"--period must be one of {', '.join(PERIODS)}, not {period!r}")
        report, paths = run_monitor(
            settings(),
            task=task,
            current_dir=current,
            reference_dir=reference,
            window=timedelta(days=window_days),
            out_dir=out_dir,
            period=period,
            n_boot=n_boot,
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
    perf = report.performance
    if perf is not None:
        table = Table(title=f"Performance per {perf.period} on known outcomes (95 % CI)")
        for col in (perf.period, "units", "pos", "AUROC", "cal. intercept", "Brier", "alert"):
            table.add_column(col, justify="left" if col in (perf.period, "alert") else "right")
        judged = [w for w in perf.windows if w.auroc is not None]
        for w in judged:
            table.add_row(
                w.start[:7] if perf.period == "month" else w.start,
                str(w.n),
                str(w.positives),
                w.auroc.fmt() if w.auroc else "n/a",
                w.calibration_intercept.fmt(2) if w.calibration_intercept else "n/a",
                w.brier.fmt() if w.brier else "n/a",
                w.why if w.alert else "",
            )
        if judged:
            out.print(table)
        skipped = len(perf.windows) - len(judged)
        if skipped:
            out.print(
                f"{skipped} {perf.period}s with fewer than {report.thresholds.min_window_units} "
                "units or one outcome only were not judged."
            )
        val = "n/a" if perf.validation_auroc is None else f"{perf.validation_auroc:.3f}"
        out.print(f"Performance: {perf.why or 'no degradation'} (validation AUROC {val})")
    out.print(f"Reports: {paths['html']}  {paths['json']}", highlight=False)
    if report.alert:
        out.print(f"[bold red]ALERT[/]: {'; '.join(report.alerts)}", highlight=False)
        raise typer.Exit(code=1)
    out.print("No drift alert.")
