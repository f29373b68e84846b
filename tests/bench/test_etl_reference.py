"""The pandas reference (`bench/etl_pandas.py`) and the DuckDB build give the same tables.

Two independent implementations of the cohort and feature definitions, compared unit by unit on the
MIMIC-III demo, on a small synthetic hospital and on the demo with boundary cases appended (every
rule's edge, plus a CHARTEVENTS table so the vital signs are compared too): this cross-validates the
SQL.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from safellm.data.build import REPORT_FILE, BuildResult, build_dataset

BENCH = Path(__file__).resolve().parents[2] / "bench"
TASKS = ("readmission", "icu_mortality", "los")


def _load_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("etl_pandas", BENCH / "etl_pandas.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


etl = _load_reference()

Built = tuple[BuildResult, dict[str, pd.DataFrame]]


def _both(source: Path, out: Path) -> Built:
    return build_dataset(source, out), etl.build_pandas(source)


@pytest.fixture(scope="module")
def demo(mimic_demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _both(mimic_demo_dir, tmp_path_factory.mktemp("ref-demo") / "data")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Built:
    from safellm.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("ref-synth")
    synthesize(root / "hospital", 200, seed=0)
    return _both(root / "hospital", root / "data")


# Boundary cases appended to a copy of the demo (subjects 99001-99002), each at an edge of a rule:
# readmission exactly 30 days later, stays of exactly 24 h, death exactly at ICU outtime + 6 h, a
# prediction at midnight with date-only prescriptions and cultures the day before, a lab exactly at
# admittime - 12 h and one exactly at the prediction time, tied lab/vital times, 6 months back from
# the 31st, a service row without a name, a lower-case ICU unit; and a patient without a DOB.
# CHARTEVENTS (absent from the demo) is added so the vital signs are compared too.
NO_DOB = 99001  # the patient without a date of birth
EDGE_ROWS: dict[str, list[dict[str, object]]] = {
    "PATIENTS": [
        {"row_id": 1, "subject_id": 99001, "gender": "m", "dob": ""},
        {"row_id": 2, "subject_id": 99002, "gender": "F", "dob": "2100-05-17 00:00:00"},
    ],
    "ADMISSIONS": [
        {
            "subject_id": 99001,
            "hadm_id": 990011,
            "admittime": "2150-01-01 08:00:00",
            "dischtime": "2150-01-05 00:00:00",
            "admission_type": "ELECTIVE",
            "ethnicity": "WHITE - RUSSIAN",
            "insurance": "Medicare",
            "hospital_expire_flag": 0,
        },
        {
            "subject_id": 99001,
            "hadm_id": 990012,
            "admittime": "2150-02-04 00:00:00",
            "dischtime": "2150-02-05 00:00:00",
            "admission_type": "urgent",
            "hospital_expire_flag": 0,
        },
        {
            "subject_id": 99002,
            "hadm_id": 990021,
            "admittime": "2151-02-28 09:59:00",
            "dischtime": "2151-03-02 09:59:00",
            "admission_type": "EMERGENCY",
            "ethnicity": "SOUTH AMERICAN",
            "hospital_expire_flag": 0,
        },
        {
            "subject_id": 99002,
            "hadm_id": 990022,
            "admittime": "2151-02-28 10:00:00",
            "dischtime": "2151-02-28 12:00:00",
            "admission_type": "EMERGENCY",
            "hospital_expire_flag": 0,
        },
        {
            "subject_id": 99002,
            "hadm_id": 990023,
            "admittime": "2151-08-31 10:00:00",
            "dischtime": "2151-09-02 16:00:00",
            "deathtime": "2151-09-02 16:00:00",
            "admission_type": "EMERGENCY",
            "ethnicity": "ASIAN - CHINESE",
            "hospital_expire_flag": 1,
        },
    ],
    "ICUSTAYS": [
        {
            "subject_id": 99002,
            "hadm_id": 990023,
            "icustay_id": 9900231,
            "first_careunit": "MICU",
            "intime": "2151-09-01 10:00:00",
            "outtime": "2151-09-02 10:00:00",
        },
        {
            "subject_id": 99002,
            "hadm_id": 990023,
            "icustay_id": 9900232,
            "first_careunit": "CCU",
            "intime": "2151-09-02 12:00:00",
            "outtime": "2151-09-03 11:59:59",
        },
        {
            "subject_id": 99002,
            "hadm_id": 990021,
            "icustay_id": 9900211,
            "first_careunit": "SICU",
            "intime": "2151-02-28 11:00:00",
            "outtime": "2151-03-01 11:00:00",
        },
    ],
    "DIAGNOSES_ICD": [
        {"subject_id": 99001, "hadm_id": 990011, "icd9_code": "40403"},
        {"subject_id": 99002, "hadm_id": 990021, "icd9_code": "4255"},
        {"subject_id": 99002, "hadm_id": 990021, "icd9_code": ""},
        {"subject_id": 99002, "hadm_id": 990023, "icd9_code": "1970"},
    ],
    "PRESCRIPTIONS": [
        {
            "subject_id": 99001,
            "hadm_id": 990011,
            "startdate": "2150-01-04 00:00:00",
            "drug": "Heparin Flush (10 units/ml)",
        },
        {
            "subject_id": 99001,
            "hadm_id": 990011,
            "startdate": "2150-01-04 00:00:00",
            "drug": "Insulin",
        },
        {
            "subject_id": 99001,
            "hadm_id": 990011,
            "startdate": "2150-01-04 00:00:00",
            "drug": "INSULIN",
        },
        {
            "subject_id": 99001,
            "hadm_id": 990011,
            "startdate": "2150-01-05 00:00:00",
            "drug": "Morphine Sulfate",
        },
    ],
    "LABEVENTS": [
        {"subject_id": 99001, "itemid": 50912, "charttime": "2149-12-31 20:00:00", "valuenum": 1.1},
        {
            "subject_id": 99001,
            "itemid": 50912,
            "charttime": "2150-01-03 06:00:00",
            "valuenum": 2.5,
            "flag": "abnormal",
        },
        {"subject_id": 99001, "itemid": 50912, "charttime": "2150-01-03 06:00:00", "valuenum": 1.9},
        {
            "subject_id": 99001,
            "itemid": 50912,
            "charttime": "2150-01-04 06:00:00",
            "flag": "ABNORMAL",
        },
        {"subject_id": 99001, "itemid": 50912, "charttime": "2150-01-05 00:00:00", "valuenum": 9.9},
        {"subject_id": 99002, "itemid": 50813, "charttime": "2151-09-02 09:59:59", "valuenum": 4.2},
    ],
    "MICROBIOLOGYEVENTS": [
        {
            "subject_id": 99001,
            "hadm_id": 990011,
            "chartdate": "2150-01-04 00:00:00",
            "org_name": "ESCHERICHIA COLI",
        },
        {
            "subject_id": 99001,
            "hadm_id": 990011,
            "chartdate": "2150-01-03 00:00:00",
            "org_name": "ESCHERICHIA COLI",
        },
        {
            "subject_id": 99001,
            "hadm_id": 990011,
            "chartdate": "2150-01-03 00:00:00",
            "org_name": "ESCHERICHIA COLI",
        },
        {
            "subject_id": 99001,
            "hadm_id": 990011,
            "chartdate": "2150-01-02 00:00:00",
            "charttime": "2150-01-02 10:00:00",
            "org_name": "ESCHERICHIA COLI",
        },
    ],
    "TRANSFERS": [
        {
            "subject_id": 99002,
            "hadm_id": 990023,
            "eventtype": "transfer",
            "curr_careunit": "micu",
            "intime": "2151-09-01 10:00:00",
        },
        {
            "subject_id": 99002,
            "hadm_id": 990023,
            "eventtype": "transfer",
            "curr_careunit": "CCU",
            "intime": "2151-09-02 12:00:00",
        },
    ],
    "SERVICES": [
        {
            "subject_id": 99002,
            "hadm_id": 990023,
            "transfertime": "2151-08-31 10:00:00",
            "curr_service": "MED",
        },
        {
            "subject_id": 99002,
            "hadm_id": 990023,
            "transfertime": "2151-09-01 09:00:00",
            "curr_service": "",
        },
    ],
}
CHARTEVENTS = [
    (99002, 220045, "2151-09-01 10:00:00", 80.0),  # exactly prediction_time - 24 h: in
    (99002, 220045, "2151-09-02 08:00:00", 95.0),
    (99002, 211, "2151-09-02 08:00:00", 91.0),  # tie with the row above: the higher value wins
    (99002, 220045, "2151-09-02 10:00:00", 150.0),  # exactly at the prediction time: out
    (99002, 220277, "2151-09-02 09:00:00", None),
    (99002, 646, "2151-09-01 23:00:00", 97.0),
    (99002, 999999, "2151-09-02 09:00:00", 1.0),  # not a vital sign
]


def _append(path: Path, rows: list[dict[str, object]]) -> None:
    with gzip.open(path, "rt", newline="") as fh:
        cols = [c.strip().lower() for c in next(csv.reader(fh))]
    with gzip.open(path, "at", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])


@pytest.fixture(scope="module")
def edge(mimic_demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("ref-edge")
    src = root / "mimic"
    src.mkdir()
    for f in mimic_demo_dir.glob("*.csv.gz"):
        shutil.copy(f, src / f.name)
        (src / f.name).chmod(0o644)
    for table, rows in EDGE_ROWS.items():
        _append(src / f"{table}.csv.gz", rows)
    with gzip.open(src / "CHARTEVENTS.csv.gz", "wt", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["ROW_ID", "SUBJECT_ID", "HADM_ID", "ITEMID", "CHARTTIME", "VALUENUM"])
        for i, (subject, item, when, value) in enumerate(CHARTEVENTS, 1):
            w.writerow([i, subject, 990023, item, when, "" if value is None else value])
    return _both(src, root / "data")


def _check(built: Built, task: str, ignore: tuple[str, ...] = ()) -> None:
    result, ref = built
    sql = pd.read_parquet(result.out_dir / f"{task}.parquet").drop(columns=list(ignore))
    ref = {task: ref[task].drop(columns=list(ignore))}
    diffs = etl.mismatches(sql, ref[task], etl.UNIT_KEYS[task])
    assert not diffs, f"{task}: SQL and pandas disagree:\n  " + "\n  ".join(diffs)
    assert len(sql) > 0


@pytest.mark.parametrize("task", TASKS)
def test_demo_tables_match_pandas_reference(demo: Built, task: str) -> None:
    _check(demo, task)


@pytest.mark.parametrize("task", TASKS)
def test_synthetic_tables_match_pandas_reference(synthetic: Built, task: str) -> None:
    _check(synthetic, task)


@pytest.mark.parametrize("task", TASKS)
def test_edge_case_tables_match_pandas_reference(edge: Built, task: str) -> None:
    """Every rule's boundary, vital signs and a patient without a DOB included."""
    result, ref = edge
    assert "vital_heart_rate_last" in result.features[task]
    assert ref[task]["subject_id"].isin([99001, 99002]).sum() > 0
    _check(edge, task)


@pytest.mark.parametrize("task", ["readmission", "los"])
def test_edge_case_age_without_dob_is_missing(edge: Built, task: str) -> None:
    result, ref = edge
    assert ref[task].loc[ref[task]["subject_id"] == NO_DOB, "age"].isna().all()  # the definition
    sql = pd.read_parquet(result.out_dir / f"{task}.parquet")
    ages = sql.loc[sql["subject_id"] == NO_DOB, "age"]
    assert len(ages) == 2
    assert ages.isna().all(), f"SQL gives age {ages.tolist()} to a patient without a DOB"


@pytest.mark.parametrize("dataset", ["demo", "edge", "synthetic"])
def test_cohort_reports_match(dataset: str, request: pytest.FixtureRequest) -> None:
    result, ref = request.getfixturevalue(dataset)
    on_disk = json.loads((result.out_dir / REPORT_FILE).read_text())
    assert etl.cohort_report(ref) == on_disk == result.report


def test_mismatches_reports_a_changed_value() -> None:
    """The comparison itself is not vacuous: a tiny change is found and named."""
    a = pd.DataFrame({"subject_id": [1, 2], "hadm_id": [10, 20], "x": [1.0, np.nan]})
    assert etl.mismatches(a, a.iloc[::-1], ["subject_id", "hadm_id"]) == []
    b = a.assign(x=[1.0 + 1e-6, np.nan])
    (diff,) = etl.mismatches(a, b, ["subject_id", "hadm_id"])
    assert diff.startswith("x: 1 of 2 units differ")
    assert etl.mismatches(a, a.iloc[:1], ["subject_id", "hadm_id"])[0].startswith("units differ")
