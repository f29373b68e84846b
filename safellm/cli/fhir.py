"""`safellm fhir`: admissions as FHIR R4 Bundles (`export`), and a risk with its Facts from a
Bundle (`predict`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from safellm.cli.console import console, fail, out, settings, stages
from safellm.errors import FhirInputError, SafeLLMError, UserInputError

fhir_app = typer.Typer(help="FHIR R4: export admissions as Bundles; predict from a Bundle.")


@fhir_app.command("export")
def export(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for admission-<HADM_ID>.json.")],
    hadm_id: Annotated[
        list[int] | None,
        typer.Option("--hadm-id", help="Only this admission; repeatable [default: all]."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A built data folder [default: $SAFELLM_HOME/data]; its MIMIC source is read.",
        ),
    ] = None,
) -> None:
    """Write FHIR R4 transaction Bundles, one per admission (load them into any FHIR server)."""
    from safellm.fhir.export import export_bundles

    s = settings()
    try:
        with stages() as stage:
            advance: dict[str, Any] = {}

            def progress(n: int, total: int) -> None:
                if "bar" not in advance:
                    advance["bar"] = stage("export Bundles", total)
                advance["bar"](1, f"{n}/{total}")

            files = export_bundles(data or s.data_dir, out_dir, hadm_id or None, progress)
    except SafeLLMError as exc:
        raise fail(exc) from exc
    size = sum(f.stat().st_size for f in files)
    out.print(f"{len(files)} Bundle(s), {size / 1e6:.1f} MB, in {out_dir}")


@fhir_app.command("predict")
def predict(
    bundle: Annotated[
        Path, typer.Option("--bundle", help="A FHIR R4 Bundle (JSON) of one patient.")
    ],
    task: Annotated[str, typer.Option("--task", help="readmission|icu_mortality|los")],
    encounter: Annotated[
        str | None,
        typer.Option(
            "--encounter", help="Encounter id of the admission or ICU stay [default: latest]."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The prediction and Facts as JSON.")
    ] = False,
) -> None:
    """Risk and Facts of a patient from a FHIR Bundle (the same models as the built data)."""
    from safellm.services.explanation import ExplanationService
    from safellm.services.fhir import predict_fhir

    s = settings()
    try:
        try:
            payload = json.loads(bundle.read_text())
        except (OSError, ValueError) as exc:
            raise UserInputError(f"{bundle}: cannot read a JSON Bundle ({exc})") from None
        pred = predict_fhir(ExplanationService(s), task, payload, encounter)
    except FhirInputError as exc:
        for i in exc.issues:
            console.print(f"[bold red]error:[/] {i.expression}: {i.diagnostics}", highlight=False)
        raise typer.Exit(code=2) from None
    except SafeLLMError as exc:
        raise fail(exc) from exc
    f = pred.facts
    if as_json:
        out.print_json(json.dumps({"facts": f.model_dump(mode="json"), "ignored": pred.ignored}))
        return
    from safellm.tasks import task_spec

    spec = task_spec(task)
    unit = f"ICU stay {f.icustay_id}" if f.icustay_id else f"admission {f.hadm_id}"
    out.print(f"{spec.label}, {unit}: {spec.format_risk(f.prediction.risk)} ({f.prediction.band})")
    for c in f.top(5):
        out.print(f"  [{c.id}] {c.label}: {c.shown} ({c.direction})")
    for why, n in sorted(pred.ignored.items()):
        out.print(f"  [dim]not read: {n} {why}[/]")
