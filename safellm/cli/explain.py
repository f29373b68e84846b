"""`safellm demo` and `safellm explain`: Facts, note evidence and a streamed, guarded rationale
for one patient, each explanation recorded in the audit trail."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from safellm.cli.console import console, fail, out, settings, stages
from safellm.cli.data import build, hospital, print_report
from safellm.cli.train import print_training
from safellm.errors import SafeLLMError, UserInputError
from safellm.progress import Stage
from safellm.tasks import task_spec

if TYPE_CHECKING:  # the explanation stack (pandas, scikit-learn, ...) loads when a command runs
    from safellm.explain.facts import Facts
    from safellm.rationale import Explanation
    from safellm.services.explanation import ExplanationService


def demo(
    n_boot: Annotated[int, typer.Option("--n-boot", min=20, help="Bootstrap replicates.")] = 100,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Model for the rationale [default: $SAFELLM_LLM_MODEL, local]."
        ),
    ] = None,
) -> None:
    """The whole path on the embedded default: a synthetic hospital, its cohorts and features, the
    readmission model, and the highest-risk patient's Facts, note evidence and rationale, written
    by the packaged local model."""
    from safellm.services.explanation import ExplanationService
    from safellm.services.training import train_tasks

    s = settings()
    task = "readmission"
    try:
        with stages() as stage:
            source = hospital(s, s.synthetic_patients, None, s.seed, stage)
            report = build(s, source, None, stage)
        print_report(report)
        with stages() as stage:
            summaries = train_tasks(s, task, n_boot=n_boot, stage=stage)
        print_training(summaries)
        service = ExplanationService(s)
        question = "Why is this patient at high risk of readmission?"
        facts = service.facts_of(task, service.highest_risk(task), question)
        print_facts(facts)
        # the demo always ends with an answer: a failing model gives the grounded fallback
        stream_explanation(service, facts, question, model, "cli:demo", fallback=True)
    except SafeLLMError as exc:
        raise fail(exc) from exc
    out.print(
        "\nAsk about any patient in the chat: [bold]safellm serve[/], then open "
        "http://127.0.0.1:8000/chat (the REST API is at http://127.0.0.1:8000/docs)."
    )


def explain(
    task: Annotated[str, typer.Option("--task", help="readmission|icu_mortality|los")],
    hadm_id: Annotated[int | None, typer.Option("--hadm-id", help="Admission (HADM_ID).")] = None,
    icustay_id: Annotated[
        int | None, typer.Option("--icustay-id", help="ICU stay (ICUSTAY_ID), icu_mortality.")
    ] = None,
    question: Annotated[
        str | None, typer.Option("--question", help="The clinician's question.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="local (packaged GGUF), fake (deterministic), or a LiteLLM model string "
            "[default: $SAFELLM_LLM_MODEL, else local].",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the Explanation as JSON.")] = False,
    risk_model: Annotated[
        str | None,
        typer.Option(
            "--risk-model",
            help="tabular (SHAP) or temporal (event sequences, integrated gradients) "
            "[default: $SAFELLM_RISK_MODEL, else tabular].",
        ),
    ] = None,
) -> None:
    """Explain one patient's prediction: Facts, note evidence and a cited rationale."""
    from safellm.services.explanation import Ask, Caller, ExplanationService

    s = settings()
    if risk_model is not None:
        if risk_model not in ("tabular", "temporal"):
            raise fail(
                UserInputError(f"--risk-model must be tabular or temporal, not {risk_model!r}")
            )
        s = s.model_copy(update={"risk_model": risk_model})
    try:
        task_spec(task)
        service = ExplanationService(s)
        facts = service.facts(task, hadm_id, icustay_id, question)
        if as_json:
            with stages() as stage:
                _prepare(service, model, stage)
            exp = service.explain_facts(
                facts, caller=Caller("cli", "cli:explain"), ask=Ask(question, model)
            )
        else:
            print_facts(facts)
            exp = stream_explanation(service, facts, question, model, "cli:explain")
    except SafeLLMError as exc:
        raise fail(exc) from exc
    if as_json:
        sys.stdout.write(exp.model_dump_json(indent=2) + "\n")


def _prepare(service: ExplanationService, model: str | None, stage: Stage) -> str:
    """The model's name; the packaged local model assembled first when it is the one."""
    from safellm.llm.local import prepare_local_model

    name = model or service.settings.llm_model
    if name == "local":
        prepare_local_model(service.settings, stage)
    return name


def stream_explanation(
    service: ExplanationService,
    facts: Facts,
    question: str | None,
    model: str | None,
    route: str,
    fallback: bool = False,
) -> Explanation:
    """Print the note evidence, then the rationale token by token, then its citations."""
    from safellm.services.explanation import Ask, Caller

    for n in facts.notes:
        text = " ".join(n.text.split())
        out.print(f"[bold]{n.id}[/] {n.category}, {n.chart_time}: {text[:160]}", highlight=False)
    with stages() as stage:
        name = _prepare(service, model, stage)
    console.print(f"[dim]asking {name} ...[/]")
    out.print("[bold]Rationale:[/] ", end="")

    def token(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    exp = service.explain_facts(
        facts,
        caller=Caller("cli", route),
        ask=Ask(question, model),
        on_token=token,
        fallback=fallback,
    )
    sys.stdout.write("\n")
    cited = ", ".join(exp.rationale.citations) or "none"
    first = f"first token {exp.first_token_s:.1f} s, " if exp.first_token_s is not None else ""
    g = exp.guard
    found = f"; found: {', '.join(g.rules)}" if g.rules else ""
    out.print(
        f"  citations: {cited}; guard: {g.verdict} (policy {exp.versions.policy}{found}); "
        f"{first}{exp.latency_s:.1f} s in all; llm {exp.versions.llm}, prompt {exp.versions.prompt}",
        highlight=False,
    )
    return exp


def print_facts(facts: Facts, top: int = 8) -> None:
    """The prediction and its top contributions, values as displayed (`Contribution.shown`), and
    a last row for all other features, so the column adds up to the model output from the base."""
    p = facts.prediction
    spec = task_spec(facts.task)
    unit = f"ICU stay {facts.icustay_id}" if facts.icustay_id else f"admission {facts.hadm_id}"
    table = Table(
        title=f"{facts.task}: {unit} (patient {facts.subject_id}) — predicted "
        f"{spec.format_risk(p.risk)}, band {p.band}; contributions in {p.space} "
        f"(base {p.base_value:+.3f}, output {p.model_output:+.3f})",
        caption=f"model {facts.model}, bundle {facts.model_version}",
    )
    table.add_column("id")
    table.add_column("feature")
    table.add_column("value", justify="right")
    table.add_column("contribution", justify="right")
    table.add_column("direction")
    for c in facts.contributions[:top]:
        table.add_row(c.id, c.label, c.shown, f"{c.shap:+.3f}", c.direction)
    rest = facts.contributions[top:]
    n_other = len(rest) + facts.n_other
    if n_other:
        other = facts.other_contributions + sum(c.shap for c in rest)
        direction = "raises" if other > 0 else "lowers" if other < 0 else ""
        table.add_row("", f"all other features ({n_other})", "", f"{other:+.3f}", direction)
    out.print(table)
