"""`safellm eval`: the offline prompt and hallucination eval suite."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from safellm.cli.console import fail, out, settings, stages
from safellm.errors import SafeLLMError


def evaluate(
    suite: Annotated[
        Path | None,
        typer.Option(
            "--suite", help="Eval suite (YAML) [default: default.v1.yaml of $SAFELLM_EVALS_DIR]."
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Model to evaluate, repeatable: local, fake, or a LiteLLM model string "
            "[default: $SAFELLM_LLM_MODEL, else local].",
        ),
    ] = None,
    prompt: Annotated[
        list[str] | None,
        typer.Option(
            "--prompt", help="Prompt version(s) to compare, repeatable: NAME or NAME:VERSION."
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Report folder [default: $SAFELLM_HOME/eval/SUITE]."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N cases.")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Forget cached case results and run every case.")
    ] = False,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log to MLflow.")] = True,
    by_patient: Annotated[
        bool,
        typer.Option(
            "--by-patient",
            help="Run one patient's cases one after another: a local model then evaluates each "
            "patient's prompt once (same answers, far faster; latencies of a prefetched patient).",
        ),
    ] = False,
) -> None:
    """Run an eval suite raw and guarded, side by side; write JSON, Markdown and HTML reports.
    Interrupted runs continue where they stopped. Exit 1 when a gate of the suite fails."""
    from safellm.evals.render import fmt
    from safellm.services.evaluation import run_eval

    try:
        with stages() as stage:
            report, paths = run_eval(
                settings(),
                suite_path=suite,
                models=model,
                prompts=prompt,
                out_dir=out_dir,
                stage=stage,
                limit=limit,
                mlflow=mlflow,
                fresh=fresh,
                by_patient=by_patient,
            )
    except SafeLLMError as exc:
        raise fail(exc) from exc
    for run in report.runs:
        targets = {(g.mode, g.metric): g for g in report.gates if g.run == run.label}
        follow = f", follow-ups with {run.followup_prompt}" if run.followup_prompt else ""
        table = Table(
            title=f"{report.suite} — {run.model} · {run.prompt} ({run.cases} cases, "
            f"{run.cached} from the cache{follow})"
        )
        for col in ("metric", "raw", "guarded", "target", "met"):
            table.add_column(col, justify="left" if col == "metric" else "right")
        for m, raw in run.metrics["raw"].items():
            g = targets.get(("guarded", m))
            met = "" if g is None else ("yes" if g.passed else "[bold red]NO[/]")
            table.add_row(
                m, fmt(m, raw), fmt(m, run.metrics["guarded"][m]), g.target if g else "", met
            )
        out.print(table)
        for note in run.notes:
            out.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    mu = report.mutation
    out.print(
        f"Guard mutation test: {mu.mutants} mutants of {mu.bases} correct rationales — "
        f"detection_rate {fmt('detection_rate', mu.detection_rate)}, "
        f"false_flag_rate {fmt('false_flag_rate', mu.false_flag_rate)}",
        highlight=False,
    )
    failed = [g for g in report.gates if not g.passed]
    for g in failed:
        out.print(
            f"[bold red]gate failed:[/] {g.run} {g.mode} {g.metric} = {fmt(g.metric, g.value)} "
            f"(target {g.target})",
            highlight=False,
        )
    out.print(f"Reports: {paths['markdown']}  {paths['html']}  {paths['json']}", highlight=False)
    if failed:
        raise typer.Exit(code=1)
    out.print(f"All {len(report.gates)} gates met.")
