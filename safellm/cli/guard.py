"""`safellm guard check` and `safellm guard calibrate`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from safellm.cli.console import fail, out, settings, stages
from safellm.errors import SafeLLMError, UserInputError
from safellm.resources import GROUNDING_SET

guard_app = typer.Typer(
    help="Check rationales against Facts and the clinical rules.", no_args_is_help=True
)


@guard_app.command("check")
def guard_check(
    facts_file: Annotated[
        Path, typer.Option("--facts", help="Facts JSON (the `facts` of `safellm explain --json`).")
    ],
    text_file: Annotated[Path, typer.Option("--text", help="The rationale to check (UTF-8 text).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a rationale against Facts: exit 0 when it passes, 1 on violations, 2 on bad input."""
    from safellm.guard.report import check_text, load_facts

    try:
        facts = load_facts(facts_file)
        try:
            text = text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserInputError(f"{text_file}: cannot read the rationale: {exc}") from exc
        report = check_text(text, facts, settings())
    except SafeLLMError as exc:
        raise fail(exc) from exc
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    else:
        verdict = "[green]passed[/]" if report.passed else "[red]violations[/]"
        out.print(
            f"{verdict}: {report.sentences} sentence(s) checked under policy {report.policy}",
            highlight=False,
        )
        for v in report.violations:
            where = f" at {v.span[0]}-{v.span[1]}" if v.span else ""
            out.print(f"  [bold]{v.rule}[/]{where}: {v.detail}", highlight=False)
    raise typer.Exit(code=0 if report.passed else 1)


@guard_app.command("calibrate")
def guard_calibrate(
    labelled: Annotated[
        Path | None,
        typer.Option(
            "--set", help=f"Labelled grounding pairs [default: {GROUNDING_SET} of the eval suites]."
        ),
    ] = None,
    judge: Annotated[
        bool, typer.Option("--judge/--no-judge", help="Also calibrate the local model as judge.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Set the note-grounding thresholds from labelled pairs (copy them into the policy)."""
    from safellm.services.calibration import calibrate_grounding

    s = settings()
    try:
        with stages() as stage:
            result = calibrate_grounding(
                s, labelled or s.evals_dir / GROUNDING_SET, judge=judge, stage=stage
            )
    except SafeLLMError as exc:
        raise fail(exc) from exc
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    out.print(
        f"{result.set}: {result.n_supported} supported, {result.n_unsupported} unsupported\n"
        f"  similarity_threshold: {result.similarity_threshold:.2f} "
        f"(similarity alone: accuracy {result.accuracy_similarity_only:.2f})\n"
        f"  judge_threshold: {result.judge_threshold}\n"
        f"  combined rule: balanced accuracy {result.balanced_accuracy:.2f}, "
        f"{result.false_accepts} false accepts, {result.false_rejects} false rejects",
        highlight=False,
    )
