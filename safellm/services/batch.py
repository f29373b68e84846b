"""Batch explanations: every unit of a task (or a chosen list, or a window of prediction times)
predicted, explained and guarded, written as Parquet. The nightly job of a hospital that wants
each discharge scored and explained before anyone asks.

    summary = run_batch(settings, BatchJob(task="readmission", out=Path("nightly"), model="fake"))

The folder `out` holds `job.json` (what is being run), `parts/` (one Parquet file per finished
chunk of units, each written whole or not at all), then, at the end, `<task>.parquet` (every row,
in the task table's order) and `summary.json` (counts by guard outcome, throughput). Run again
with the same `out`, a job continues with the units that no part holds yet (an interrupted night
loses at most the chunk under way); a different job (another task, model, question, prompt,
policy or risk model) in the same folder is refused. A unit that fails is a row with its `error`
and the others go on. Every explanation is also appended to the audit trail, as the API's are.

Engines: `local` (this process, one unit after the other) or `ray` (`safellm.services.batch_ray`:
Ray Data over a cluster), both through `explain_rows`, so a row does not depend on the engine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from safellm.errors import UserInputError
from safellm.fsutil import atomic_path, atomic_write_text
from safellm.progress import Stage, quiet
from safellm.services.batch_rows import BatchJob, Engine, explain_rows, row_schema, write_part

__all__ = ["BatchJob", "BatchSummary", "run_batch"]
from safellm.tasks import task_spec

if TYPE_CHECKING:
    import pandas as pd

    from safellm.config import Settings
    from safellm.services.explanation import ExplanationService


class BatchSummary(BaseModel):
    task: str
    out: Path
    engine: Engine
    units: int = Field(description="Units in the job.")
    done_before: int = Field(description="Units found in parts written by an earlier run.")
    done_now: int
    errors: int
    by_outcome: dict[str, int] = Field(description="Rows by guard outcome (errors not counted).")
    seconds: float = Field(description="Wall time of this run.")
    units_per_hour: float = Field(description="This run's units over its wall time.")
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    table: Path


# ---------------------------------------------------------------------------------- the job
def select_units(frame: pd.DataFrame, job: BatchJob) -> pd.DataFrame:
    """The rows of the task table the job covers, in the table's order."""
    import pandas as pd

    rows = frame
    if job.units is not None:
        what = task_spec(job.task).unit  # hadm_id, or icustay_id for a per-stay task
        wanted = set(job.units)
        rows = rows[rows[what].isin(wanted)]
        missing = wanted - {int(u) for u in rows[what]}
        if missing:
            shown = ", ".join(str(u) for u in sorted(missing)[:5])
            raise UserInputError(
                f"{len(missing)} of the units asked for are not in the {job.task} cohort "
                f"({what}: {shown}{' …' if len(missing) > 5 else ''})"
            )
    times = pd.to_datetime(rows["prediction_time"])
    if job.since is not None:
        rows = rows[times >= pd.Timestamp(job.since)]
        times = times[rows.index]
    if job.until is not None:
        rows = rows[times < pd.Timestamp(job.until)]
    if job.limit is not None:
        rows = rows.iloc[: job.limit]
    return rows


def job_identity(service: ExplanationService, job: BatchJob) -> dict[str, Any]:
    """What makes two runs the same job (a folder holds one job's rows)."""
    return {
        "task": job.task,
        "model": job.model or service.settings.llm_model,
        "question": job.question,
        "prompt": service.prompt("explain-risk").version,
        "policy": service.guard.policy_version,
        "risk_model": service.explainer(job.task).version,
        "units": job.units,
        "since": job.since.isoformat() if job.since else None,
        "until": job.until.isoformat() if job.until else None,
        "limit": job.limit,
    }


def _claim_folder(out: Path, identity: dict[str, Any]) -> None:
    marker = out / "job.json"
    if marker.is_file():
        try:
            before = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserInputError(f"{marker} is unreadable ({exc}); use another --out") from exc
        if before != identity:
            changed = ", ".join(k for k in identity if before.get(k) != identity[k])
            raise UserInputError(
                f"{out} holds another batch job (it differs in: {changed}); use another --out "
                f"or remove that folder"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps(identity, indent=2) + "\n")


def done_units(out: Path) -> set[int]:
    """Unit ids already written in `out/parts/` (parts are written whole: never a half)."""
    import pyarrow.parquet as pq

    done: set[int] = set()
    for part in sorted((out / "parts").glob("part-*.parquet")):
        done.update(int(u) for u in pq.read_table(part, columns=["unit_id"])["unit_id"].to_pylist())
    return done


def chunks(rows: pd.DataFrame, size: int) -> Iterable[pd.DataFrame]:
    for start in range(0, len(rows), size):
        yield rows.iloc[start : start + size]


def run_batch(
    settings: Settings,
    job: BatchJob,
    *,
    service: ExplanationService | None = None,
    stage: Stage = quiet,
    on_part: Callable[[Path], None] | None = None,
) -> BatchSummary:
    """Run `job` (continuing an earlier run in the same folder) and write its table and
    summary; `stage` draws the progress; `on_part` hears each part written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from safellm.services.explanation import ExplanationService

    task_spec(job.task)
    if settings.llm_model != (job.model or settings.llm_model):
        settings = settings.model_copy(update={"llm_model": job.model})
    service = service or ExplanationService(settings)
    if job.task not in service.available_tasks():
        raise UserInputError(
            f"task {job.task} has no built data or trained model in {settings.home} "
            f"(run `safellm data build` and `safellm train --task {job.task}`)"
        )
    frame = service.task_data(job.task).frame
    rows = select_units(frame, job)
    _claim_folder(job.out, job_identity(service, job))
    before = done_units(job.out)
    todo = rows[~rows["unit_id"].isin(before)]
    advance = stage(f"Explaining {job.task}", len(rows))
    advance(len(rows) - len(todo), "resumed" if before else "")
    started = time.perf_counter()
    if job.engine == "ray":
        from safellm.services.batch_ray import run_on_ray

        written = run_on_ray(settings, job, todo, advance=advance, on_part=on_part)
    else:
        written = 0
        for part in chunks(todo, job.chunk):
            records = explain_rows(service, job.task, part, model=job.model, question=job.question)
            path = write_part(job.out, records)
            written += len(records)
            advance(len(records), f"unit {records[-1]['unit_id']}")
            if on_part is not None:
                on_part(path)
    seconds = time.perf_counter() - started

    # the whole table, in the task table's order (a unit once), and its summary
    parts = (
        pq.read_table(job.out / "parts", schema=row_schema())
        if (job.out / "parts").is_dir()
        else row_schema().empty_table()
    )
    order = {int(u): i for i, u in enumerate(rows["unit_id"])}
    first: dict[int, int] = {}
    for i, u in enumerate(parts["unit_id"].to_pylist()):
        first.setdefault(u, i)
    picked = sorted((order[u], i) for u, i in first.items() if u in order)
    whole = parts.take(pa.array([i for _, i in picked], type=pa.int64()))
    dest = job.out / f"{job.task}.parquet"
    with atomic_path(dest) as tmp:
        pq.write_table(whole, tmp)
    table = whole.select(["error", "guard_outcome", "latency_s"]).to_pandas()
    ok = table[table["error"].isna()]
    lat = ok["latency_s"].astype(float)
    summary = BatchSummary(
        task=job.task,
        out=job.out,
        engine=job.engine,
        units=len(rows),
        done_before=len(rows) - len(todo),
        done_now=written,
        errors=int(table["error"].notna().sum()),
        by_outcome={str(k): int(v) for k, v in ok["guard_outcome"].value_counts().items()},
        seconds=round(seconds, 2),
        units_per_hour=round(written / seconds * 3600, 1) if seconds > 0 and written else 0.0,
        latency_p50_s=round(float(lat.quantile(0.5)), 3) if len(lat) else None,
        latency_p95_s=round(float(lat.quantile(0.95)), 3) if len(lat) else None,
        table=dest,
    )
    atomic_write_text(job.out / "summary.json", summary.model_dump_json(indent=2) + "\n")
    return summary
