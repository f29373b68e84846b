"""MEDS export: the hospital behind a built data folder as a MEDS dataset, with each task's labels.

`safellm data export --format meds` writes, from the MIMIC-III folder the data was built from (the
manifest names it) and the built cohorts:

    data/<split>/<shard>.parquet      events: subject_id, time, code, numeric_value (MEDS DataSchema),
                                      sorted by subject and time, a subject in one shard only
    metadata/dataset.json             name, version (the source's fingerprint), ETL, MEDS version
    metadata/codes.parquet            every code once, with a description where one is known
    metadata/subject_splits.parquet   train / tuning / held_out per subject (see `subject_splits`)
    labels/<task>.parquet             the cohort's units as MEDS labels: subject_id, prediction_time
                                      and boolean_value (readmission, ICU mortality) or float_value
                                      (length of stay, days)
    aces/<task>.yaml                  an ACES task configuration over these codes

Every table is checked against the `meds` package's schemas before the folder is kept, and the
folder is written whole or not at all.

Codes (times are MIMIC-III's, shifted as in the source):

    GENDER//<F|M>                          static (no time)
    MEDS_BIRTH                             dob
    HOSPITAL_ADMISSION//<admission_type>   admittime
    HOSPITAL_DISCHARGE//<discharge_location>  dischtime
    ICU_ADMISSION//<first_careunit>        intime
    ICU_DISCHARGE                          outtime
    DIAGNOSIS//ICD9CM//<icd9_code>         the admission's dischtime (MIMIC-III codes are not timed)
    PROCEDURE//ICD9CM//<icd9_code>         the admission's dischtime
    MEDICATION//<drug>                     startdate
    LAB//<itemid>//<valueuom>              charttime, numeric_value = valuenum
    MEDS_DEATH                             the admission's deathtime; for a death outside the
                                           hospital, the end (23:59:59) of the date of death
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from safellm.data import mimic
from safellm.data.catalogue import LABS
from safellm.errors import ArtifactError, DataError
from safellm.fsutil import staged_dir
from safellm.tasks import TASKS

SPLITS = ("train", "tuning", "held_out")
SHARD_SUBJECTS = 10_000
ETL_NAME = "safellm"

# Codes that are not derived from a source value, with their descriptions.
_FIXED_CODES = {
    "MEDS_BIRTH": "Birth (date of birth)",
    "MEDS_DEATH": "Death (in-hospital time of death, else the end of the date of death)",
    "ICU_DISCHARGE": "Discharge from an ICU stay",
    "GENDER//F": "Gender: female",
    "GENDER//M": "Gender: male",
}

# One SELECT per kind of event over the `raw_<table>` views (`mimic.create_views`).
_EVENT_SELECTS = (
    "SELECT subject_id, NULL::TIMESTAMP AS time, 'GENDER//' || upper(gender) AS code, "
    "NULL::FLOAT AS numeric_value FROM raw_patients WHERE gender IS NOT NULL",
    "SELECT subject_id, dob, 'MEDS_BIRTH', NULL FROM raw_patients WHERE dob IS NOT NULL",
    "SELECT subject_id, deathtime, 'MEDS_DEATH', NULL FROM raw_admissions "
    "WHERE deathtime IS NOT NULL",
    # a death outside the hospital: MIMIC-III keeps its date only
    "SELECT p.subject_id, CAST(p.dod AS DATE) + INTERVAL 86399 SECOND, 'MEDS_DEATH', NULL "
    "FROM raw_patients p WHERE p.dod IS NOT NULL AND NOT EXISTS (SELECT 1 FROM raw_admissions a "
    "WHERE a.subject_id = p.subject_id AND a.deathtime IS NOT NULL)",
    "SELECT subject_id, admittime, 'HOSPITAL_ADMISSION//' || upper(admission_type), NULL "
    "FROM raw_admissions WHERE admittime IS NOT NULL AND admission_type IS NOT NULL",
    "SELECT subject_id, dischtime, 'HOSPITAL_DISCHARGE//' || "
    "coalesce(upper(discharge_location), 'UNKNOWN'), NULL FROM raw_admissions "
    "WHERE dischtime IS NOT NULL",
    "SELECT subject_id, intime, 'ICU_ADMISSION//' || coalesce(upper(first_careunit), 'UNKNOWN'), "
    "NULL FROM raw_icustays WHERE intime IS NOT NULL",
    "SELECT subject_id, outtime, 'ICU_DISCHARGE', NULL FROM raw_icustays WHERE outtime IS NOT NULL",
    "SELECT d.subject_id, a.dischtime, 'DIAGNOSIS//ICD9CM//' || d.icd9_code, NULL "
    "FROM raw_diagnoses_icd d JOIN raw_admissions a ON a.hadm_id = d.hadm_id "
    "WHERE d.icd9_code IS NOT NULL AND a.dischtime IS NOT NULL",
    "SELECT d.subject_id, a.dischtime, 'PROCEDURE//ICD9CM//' || d.icd9_code, NULL "
    "FROM raw_procedures_icd d JOIN raw_admissions a ON a.hadm_id = d.hadm_id "
    "WHERE d.icd9_code IS NOT NULL AND a.dischtime IS NOT NULL",
    "SELECT subject_id, startdate, 'MEDICATION//' || drug, NULL FROM raw_prescriptions "
    "WHERE startdate IS NOT NULL AND drug IS NOT NULL AND drug <> ''",
    "SELECT subject_id, charttime, 'LAB//' || itemid || '//' || coalesce(valueuom, 'UNKNOWN'), "
    "CAST(valuenum AS FLOAT) FROM raw_labevents WHERE charttime IS NOT NULL",
)


@dataclass
class MedsSummary:
    out_dir: Path
    subjects: int
    events: int
    codes: int
    shards: dict[str, int]  # split -> number of shards
    labels: dict[str, int]  # task -> label rows
    seconds: float
    splits: dict[str, int] = field(default_factory=dict)  # split -> subjects


def aces_config(task: str) -> Path:
    """The packaged ACES task configuration of `task` (a path to its YAML file)."""
    path = files("safellm.data").joinpath("aces", f"{task}.yaml")
    if not isinstance(path, Path) or not path.is_file():
        raise ArtifactError(f"no ACES configuration is packaged for the task {task!r}")
    return path


def label_table(cohort: pd.DataFrame, task: str) -> pa.Table:
    """A cohort's units as a MEDS label table (`subject_id`, `prediction_time`, and the task's
    value column), checked against `meds.LabelSchema`."""
    from meds import LabelSchema

    spec = TASKS[task]
    y = cohort[spec.target]
    if y.isna().any():
        raise DataError(f"{task}: {int(y.isna().sum())} units have no {spec.target}")
    columns: dict[str, pa.Array] = {
        "subject_id": pa.array(cohort["subject_id"].to_numpy(dtype="int64"), pa.int64()),
        "prediction_time": pa.array(
            pd.to_datetime(cohort["prediction_time"]).astype("datetime64[us]"),
            pa.timestamp("us"),
        ),
    }
    if spec.kind == "classification":
        columns["boolean_value"] = pa.array(y.to_numpy(dtype=int) == 1, pa.bool_())
    else:
        columns["float_value"] = pa.array(y.to_numpy(dtype="float32"), pa.float32())
    table = pa.table(columns)
    LabelSchema.validate(table)  # raises on a mismatch
    return table


def _validate_shard(path: Path) -> None:
    from meds import DataSchema

    DataSchema.validate(pq.read_schema(path))  # raises on a mismatch


def export_meds(
    source: Path,
    data_dir: Path,
    out_dir: Path,
    splits: pd.DataFrame,
    *,
    dataset_name: str,
    dataset_version: str,
    memory_limit: str = "2GB",
    threads: int = 2,
    shard_subjects: int = SHARD_SUBJECTS,
    progress: Callable[[str], None] | None = None,
) -> MedsSummary:
    """Write the MEDS dataset of the MIMIC-III folder `source` (built into `data_dir`) to `out_dir`.

    `splits` has one row per subject (`subject_id`, `split`); subjects it does not name go to
    `train`. Labels come from `data_dir`'s cohorts, one file per task built there."""
    import meds
    from meds import CodeMetadataSchema, DatasetMetadataSchema, SubjectSplitSchema

    from safellm import __version__

    started = time.perf_counter()
    step = progress or (lambda _name: None)
    folder = mimic.open_mimic(source)
    unknown = set(splits["split"]) - set(SPLITS)
    if unknown:
        raise DataError(f"unknown split names {sorted(unknown)}; MEDS uses {list(SPLITS)}")
    cohorts: dict[str, pd.DataFrame] = {}
    for task, spec in TASKS.items():
        path = Path(data_dir) / f"{task}.parquet"
        if path.exists():
            cohorts[task] = pd.read_parquet(
                path, columns=["subject_id", "prediction_time", spec.target]
            )
    if not cohorts:
        raise ArtifactError(f"{data_dir} holds no built cohort: run `safellm data build` first")
    with staged_dir(Path(out_dir)) as tmp:
        con = mimic.connect(
            ":memory:", memory_limit=memory_limit, threads=threads, temp_dir=tmp / "spill"
        )
        try:
            mimic.create_views(con, folder)
            try:
                con.execute(
                    "CREATE TABLE events AS " + " UNION ALL ".join(f"({s})" for s in _EVENT_SELECTS)
                )
            except duckdb.Error as exc:
                raise DataError(f"{folder.root}: the MEDS events could not be read: {exc}") from exc
            step("events")
            con.register("given_splits", splits[["subject_id", "split"]])
            con.execute(
                "CREATE TABLE subject_shard AS SELECT s.subject_id, s.split, "
                f"(row_number() OVER (PARTITION BY s.split ORDER BY s.subject_id) - 1) "
                f"// {int(shard_subjects)} AS shard FROM ("
                "SELECT p.subject_id, coalesce(g.split, 'train') AS split "
                "FROM (SELECT DISTINCT subject_id FROM events) p "
                "LEFT JOIN given_splits g ON g.subject_id = p.subject_id) s"
            )
            shard_counts: dict[str, int] = {}
            split_subjects: dict[str, int] = {}
            for split in SPLITS:
                n_shards, n_subjects = con.execute(
                    "SELECT count(DISTINCT shard), count(*) FROM subject_shard WHERE split = ?",
                    [split],
                ).fetchone() or (0, 0)
                shard_counts[split], split_subjects[split] = int(n_shards), int(n_subjects)
                (tmp / "data" / split).mkdir(parents=True, exist_ok=True)
                for shard in range(int(n_shards)):
                    path = tmp / "data" / split / f"{shard}.parquet"
                    con.execute(
                        "COPY (SELECT e.subject_id::BIGINT AS subject_id, e.time, e.code, "
                        "e.numeric_value FROM events e JOIN subject_shard s "
                        f"ON s.subject_id = e.subject_id WHERE s.split = '{split}' "
                        f"AND s.shard = {shard} ORDER BY e.subject_id, e.time NULLS FIRST, e.code) "
                        f"TO '{mimic._sql_path(path)}' (FORMAT parquet, COMPRESSION zstd)"
                    )
                    _validate_shard(path)
            step("shards")
            n_events, n_subjects = con.execute(
                "SELECT count(*), count(DISTINCT subject_id) FROM events"
            ).fetchone() or (0, 0)
            code_list = [
                r[0]
                for r in con.execute("SELECT DISTINCT code FROM events ORDER BY code").fetchall()
            ]
            split_rows = con.execute(
                "SELECT subject_id, split FROM subject_shard ORDER BY subject_id"
            ).fetchall()
        finally:
            con.close()
        meta = tmp / "metadata"
        meta.mkdir()
        code_table = pa.table(
            {
                "code": pa.array(code_list, pa.string()),
                "description": pa.array([_describe(c) for c in code_list], pa.string()),
                "parent_codes": pa.array([None] * len(code_list), pa.list_(pa.string())),
            }
        )
        CodeMetadataSchema.validate(code_table)
        pq.write_table(code_table, meta / "codes.parquet")
        split_table = pa.table(
            {
                "subject_id": pa.array([r[0] for r in split_rows], pa.int64()),
                "split": pa.array([r[1] for r in split_rows], pa.string()),
            }
        )
        SubjectSplitSchema.validate(split_table)
        pq.write_table(split_table, meta / "subject_splits.parquet")
        dataset = {
            "dataset_name": dataset_name,
            "dataset_version": dataset_version,
            "etl_name": ETL_NAME,
            "etl_version": __version__,
            "meds_version": meds.__version__,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        DatasetMetadataSchema.validate(dataset)
        (meta / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
        (tmp / "labels").mkdir()
        (tmp / "aces").mkdir()
        label_rows: dict[str, int] = {}
        for task, cohort in cohorts.items():
            table = label_table(cohort, task)
            pq.write_table(table, tmp / "labels" / f"{task}.parquet")
            label_rows[task] = table.num_rows
            (tmp / "aces" / f"{task}.yaml").write_text(aces_config(task).read_text())
        step("labels")
    return MedsSummary(
        out_dir=Path(out_dir),
        subjects=int(n_subjects),
        events=int(n_events),
        codes=len(code_list),
        shards=shard_counts,
        labels=label_rows,
        seconds=time.perf_counter() - started,
        splits=split_subjects,
    )


_LAB_NAMES = {itemid: label for itemid, label, _unit in LABS.values()}
_PREFIXES = {
    "HOSPITAL_ADMISSION//": "Hospital admission, type {}",
    "HOSPITAL_DISCHARGE//": "Hospital discharge to {}",
    "ICU_ADMISSION//": "ICU admission to {}",
    "DIAGNOSIS//ICD9CM//": "ICD-9-CM diagnosis {}",
    "PROCEDURE//ICD9CM//": "ICD-9-CM procedure {}",
    "MEDICATION//": "Prescription of {}",
}


def _describe(code: str) -> str | None:
    if code in _FIXED_CODES:
        return _FIXED_CODES[code]
    if code.startswith("LAB//"):
        _, item, unit = ([*code.split("//"), ""])[:3]
        name = _LAB_NAMES.get(int(item)) if item.isdigit() else None
        return f"{name or f'Lab item {item}'} ({unit})"
    for prefix, text in _PREFIXES.items():
        if code.startswith(prefix):
            return text.format(code[len(prefix) :])
    return None
