"""The job of `safellm batch` (`BatchJob`) and its rows, the same for every engine: a unit's
Facts and guarded rationale (`explain_rows`), the Parquet schema (`COLUMNS`) and the writing of
one part, whole or not at all (`write_part`)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from safellm.errors import SafeLLMError
from safellm.fsutil import atomic_path

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from safellm.services.explanation import ExplanationService

Engine = Literal["local", "ray"]


class BatchJob(BaseModel):
    """What to run. `units`: these unit ids only (admissions, or ICU stays for a per-stay task);
    `since`/`until`: units whose prediction time falls in [since, until); `limit`: the first N of
    what remains (in the task table's order)."""

    task: str
    out: Path
    model: str | None = None
    question: str | None = None
    units: list[int] | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = Field(default=None, ge=1)
    chunk: int = Field(default=32, ge=1, description="Units per Parquet part (and per Ray batch).")
    engine: Engine = "local"
    address: str | None = None  # the Ray cluster (default: RAY_ADDRESS, else a local one)
    workers: int = Field(default=2, ge=1, description="Ray actors (each loads the models once).")


CALLER_KEY = "batch"  # the audit trail's key id for batch explanations

# one row per unit; `error` set (and the explanation's columns empty) when the unit failed
COLUMNS: dict[str, str] = {
    "task": "string",
    "unit_id": "int64",
    "subject_id": "int64",
    "hadm_id": "int64",
    "icustay_id": "int64",
    "prediction_time": "timestamp",
    "risk": "float64",
    "band": "string",
    "facts": "string",  # the Facts as JSON (DESIGN.md's `facts`)
    "rationale": "string",
    "citations": "list<string>",
    "guard_outcome": "string",  # passed | re-asked | repaired | fallback | refused
    "guard_passed": "bool",
    "violations": "string",  # JSON list of {rule, detail, span}
    "risk_model_version": "string",
    "prompt_version": "string",
    "policy_version": "string",
    "llm": "string",
    "latency_s": "float64",
    "error": "string",
}


def row_schema() -> pa.Schema:
    import pyarrow as pa

    kinds = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us"),
        "list<string>": pa.list_(pa.string()),
    }
    return pa.schema([(name, kinds[kind]) for name, kind in COLUMNS.items()])


def _id(value: Any) -> int | None:
    return None if value is None or value != value else int(value)


def explain_rows(
    service: ExplanationService,
    task: str,
    rows: pd.DataFrame,
    *,
    model: str | None = None,
    question: str | None = None,
    run_id: str = "batch",
) -> list[dict[str, Any]]:
    """One output row per row of the task table in `rows`: Facts, guarded rationale (the
    grounded fallback when the model fails), audited; a unit that fails is a row with its
    error. The same for every engine."""
    from safellm.services.explanation import Ask, Caller

    out: list[dict[str, Any]] = []
    ask = Ask(question, model)
    for _, row in rows.iterrows():
        rec: dict[str, Any] = {name: None for name in COLUMNS}
        rec.update(
            task=task,
            unit_id=_id(row["unit_id"]),
            subject_id=_id(row["subject_id"]),
            hadm_id=_id(row["hadm_id"]),
            icustay_id=_id(row.get("icustay_id")),
            prediction_time=row.get("prediction_time"),
        )
        started = time.perf_counter()
        try:
            facts = service.facts_of(task, row, question)
            exp = service.explain_facts(
                facts,
                caller=Caller(CALLER_KEY, "batch", f"{run_id}-{rec['unit_id']}"),
                ask=ask,
                fallback=True,
            )
        except Exception as exc:  # recorded with the unit; the run goes on
            detail = str(exc) if isinstance(exc, SafeLLMError) else "internal error"
            rec["error"] = f"{type(exc).__name__}: {detail}"
        else:
            rec.update(
                risk=exp.prediction.risk,
                band=exp.prediction.band,
                facts=exp.facts.model_dump_json(),
                rationale=exp.rationale.text,
                citations=list(exp.rationale.citations),
                guard_outcome=exp.guard.outcome,
                guard_passed=exp.guard.passed,
                violations=json.dumps([v.model_dump() for v in exp.guard.violations]),
                risk_model_version=exp.versions.risk_model,
                prompt_version=exp.versions.prompt,
                policy_version=exp.versions.policy,
                llm=exp.versions.llm,
            )
        rec["latency_s"] = round(time.perf_counter() - started, 4)
        out.append(rec)
    return out


def to_table(records: Sequence[dict[str, Any]]) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist(list(records), schema=row_schema())


def write_part(out: Path, records: Sequence[dict[str, Any]]) -> Path:
    """One chunk's rows as `parts/part-<first unit>-<count>.parquet`, atomically."""
    import pyarrow.parquet as pq

    path = out / "parts" / f"part-{records[0]['unit_id']:012d}-{len(records)}.parquet"
    with atomic_path(path) as tmp:
        pq.write_table(to_table(records), tmp)
    return path
