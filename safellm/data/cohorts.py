"""The three cohort definitions, exactly as in DESIGN.md, as DuckDB SQL over staged MIMIC tables.

Each cohort table has one row per unit (admission or ICU stay) with: `unit_id`, `subject_id`,
`hadm_id`, `icustay_id` (null for admission-level tasks), `admittime`, `prediction_time` and the
task's target column.

- readmission: ADMISSIONS rows with admission_type != NEWBORN and hospital_expire_flag = 0;
  prediction at dischtime; readmit_30d = 1 iff the patient has another EMERGENCY/URGENT admission with
  dischtime < admittime <= dischtime + 30 days.
- icu_mortality: ICUSTAYS rows of at least 24 h; prediction at intime + 24 h; icu_mortality = 1 iff the
  admission's deathtime is not null and intime <= deathtime <= outtime + 6 h.
- los: ADMISSIONS rows with admission_type != NEWBORN lasting at least 24 h; prediction at
  admittime + 24 h; los_days = (dischtime - admittime) in days.
"""

from __future__ import annotations

import duckdb

from safellm.tasks import TASKS

_DAY = 86400

# task -> its cohort query (target column and unit as in the task's `TaskSpec`)
COHORT_SQL: dict[str, str] = {
    "readmission": f"""
        SELECT a.subject_id, a.hadm_id, CAST(NULL AS BIGINT) AS icustay_id, a.admittime,
               a.dischtime AS prediction_time,
               CAST(EXISTS (
                   SELECT 1 FROM admissions b
                   WHERE b.subject_id = a.subject_id
                     AND upper(b.admission_type) IN ('EMERGENCY', 'URGENT')
                     AND b.admittime > a.dischtime
                     AND epoch(b.admittime) - epoch(a.dischtime) <= 30 * {_DAY}
               ) AS INTEGER) AS readmit_30d
        FROM admissions a
        WHERE upper(a.admission_type) <> 'NEWBORN' AND a.hospital_expire_flag = 0
          AND a.admittime IS NOT NULL AND a.dischtime IS NOT NULL
        """,
    "icu_mortality": """
        SELECT i.subject_id, i.hadm_id, i.icustay_id, a.admittime,
               i.intime + INTERVAL 24 HOUR AS prediction_time,
               CAST(a.deathtime IS NOT NULL AND a.deathtime >= i.intime
                    AND a.deathtime <= i.outtime + INTERVAL 6 HOUR AS INTEGER) AS icu_mortality
        FROM icustays i JOIN admissions a ON a.hadm_id = i.hadm_id
        WHERE epoch(i.outtime) - epoch(i.intime) >= 86400
        """,
    "los": f"""
        SELECT subject_id, hadm_id, CAST(NULL AS BIGINT) AS icustay_id, admittime,
               admittime + INTERVAL 24 HOUR AS prediction_time,
               (epoch(dischtime) - epoch(admittime)) / {_DAY}.0 AS los_days
        FROM admissions
        WHERE upper(admission_type) <> 'NEWBORN'
          AND epoch(dischtime) - epoch(admittime) >= {_DAY}
        """,
}
assert set(COHORT_SQL) == set(TASKS), "one cohort query per task"


def cohort_select(task: str) -> str:
    """The task's cohort query with a dense `unit_id` (by patient, then unit) in front: the
    build's cohort table and the FHIR route's one-statement query (`unit_query`) both read it."""
    return (
        f"SELECT row_number() OVER (ORDER BY subject_id, {TASKS[task].unit}) AS unit_id, * "
        f"FROM ({COHORT_SQL[task]})"
    )


def build_cohort(con: duckdb.DuckDBPyConnection, task: str) -> str:
    """Create table `cohort_<task>` (ordered, with a dense `unit_id`) and return its name."""
    table = f"cohort_{task}"
    con.execute(f"CREATE OR REPLACE TABLE {table} AS {cohort_select(task)} ORDER BY unit_id")
    return table


def cohort_report(con: duckdb.DuckDBPyConnection, task: str) -> dict[str, float | int]:
    """The counts DESIGN.md promises in cohort_report.json for one task."""
    spec = TASKS[task]
    table = f"cohort_{task}"
    if spec.kind == "classification":
        rows, positives, subjects = con.execute(
            f"SELECT count(*), coalesce(sum({spec.target}), 0), count(DISTINCT subject_id) "
            f"FROM {table}"
        ).fetchone() or (0, 0, 0)
        return {"rows": int(rows), "positives": int(positives), "subjects": int(subjects)}
    rows, subjects, median = con.execute(
        f"SELECT count(*), count(DISTINCT subject_id), median({spec.target}) FROM {table}"
    ).fetchone() or (0, 0, None)
    return {
        "rows": int(rows),
        "subjects": int(subjects),
        "median_days": round(float(median), 4) if median is not None else 0.0,
    }
