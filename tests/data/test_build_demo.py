"""The data build on the MIMIC-III demo: pinned cohort counts, report file, leakage checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from safellm.cli import app
from safellm.data.build import build_dataset
from safellm.data.catalogue import FEATURES

# The counts our cohort definitions give on the MIMIC-III demo v1.4 (checked by hand in pandas).
DEMO_REPORT = {
    "readmission": {"rows": 89, "positives": 11, "subjects": 67},
    "icu_mortality": {"rows": 114, "positives": 23, "subjects": 82},
    "los": {"rows": 119, "subjects": 91, "median_days": 7.0167},
}


def test_cli_build_on_demo_pins_cohort_counts(mimic_demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "built"
    res = CliRunner().invoke(
        app, ["data", "build", "--mimic-dir", str(mimic_demo_dir), "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "cohort_report.json").read_text())
    assert report == DEMO_REPORT
    for task in DEMO_REPORT:
        assert (out / f"{task}.parquet").stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())
    # the demo ships an empty NOTEEVENTS file and no CHARTEVENTS
    assert manifest["skipped_tables"] == ["CHARTEVENTS"]
    assert pd.read_parquet(out / "notes.parquet").empty


def test_every_feature_column_is_in_the_catalogue(demo_build) -> None:
    for task, names in demo_build.features.items():
        df = pd.read_parquet(demo_build.out_dir / f"{task}.parquet")
        assert list(df.columns[-len(names) :]) == names
        for n in names:
            f = FEATURES[n]
            assert f.label and task in f.tasks
        # CHARTEVENTS is absent from the demo: its features are skipped, not crashed on.
        assert not any(n.startswith("vital_") for n in names)


def test_readmission_features_match_hand_computation(demo_build, mimic_demo_dir: Path) -> None:
    """Known admission: last / min creatinine and lab counts recomputed in pandas."""
    feats = pd.read_parquet(demo_build.out_dir / "readmission.parquet").set_index("hadm_id")
    labs = pd.read_csv(mimic_demo_dir / "LABEVENTS.csv.gz", parse_dates=["CHARTTIME"])
    labs.columns = labs.columns.str.lower()
    adm = pd.read_csv(
        mimic_demo_dir / "ADMISSIONS.csv.gz", parse_dates=["admittime", "dischtime"]
    ).set_index("hadm_id")
    checked = 0
    for hadm_id in feats.index[:40]:
        a = adm.loc[hadm_id]
        win = labs[
            (labs.subject_id == a.subject_id)
            & (labs.itemid == 50912)
            & (labs.charttime >= a.admittime - pd.Timedelta(hours=12))
            & (labs.charttime < a.dischtime)
            & labs.valuenum.notna()
        ]
        row = feats.loc[hadm_id]
        if win.empty:
            assert pd.isna(row.lab_creatinine_last)
            continue
        win = win.sort_values(["charttime", "valuenum"])
        assert row.lab_creatinine_last == pytest.approx(win.valuenum.iloc[-1])
        assert row.lab_creatinine_min == pytest.approx(win.valuenum.min())
        assert row.lab_creatinine_n_abnormal == (win.flag.str.lower() == "abnormal").sum()
        checked += 1
    assert checked >= 20


def _fmt(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [
        {
            k: (v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, pd.Timestamp) else v)
            for k, v in row.items()
        }
        for row in rows
    ]


def _future_events(units: pd.DataFrame) -> dict[str, list[dict[str, object]]]:
    """Events at (or just after) each unit's prediction time, with values that would show."""
    ev: dict[str, list[dict[str, object]]] = {
        k: []
        for k in (
            "LABEVENTS",
            "PRESCRIPTIONS",
            "MICROBIOLOGYEVENTS",
            "TRANSFERS",
            "SERVICES",
            "ICUSTAYS",
        )
    }
    for r in units.itertuples():
        t = r.prediction_time
        later = t + pd.Timedelta(minutes=1)
        ids = {"subject_id": r.subject_id, "hadm_id": r.hadm_id}
        for itemid in (50912, 51222, 50813):
            ev["LABEVENTS"].append(
                {
                    **ids,
                    "itemid": itemid,
                    "charttime": t,
                    "value": "999",
                    "valuenum": 999,
                    "flag": "abnormal",
                }
            )
        # a date-only prescription on the prediction day: not known before the day ends
        ev["PRESCRIPTIONS"].append({**ids, "startdate": t.normalize(), "drug": "Warfarin XR"})
        ev["MICROBIOLOGYEVENTS"].append(
            {
                **ids,
                "chartdate": t.normalize(),
                "charttime": later,
                "org_name": "STAPH AUREUS COAG +",
            }
        )
        ev["MICROBIOLOGYEVENTS"].append({**ids, "chartdate": t.normalize(), "org_name": "E. COLI"})
        ev["TRANSFERS"].append(
            {**ids, "eventtype": "transfer", "curr_careunit": "MICU", "intime": later}
        )
        ev["SERVICES"].append({**ids, "transfertime": t, "curr_service": "NSURG"})
        ev["ICUSTAYS"].append(
            {
                **ids,
                "icustay_id": 900000 + len(ev["ICUSTAYS"]),
                "first_careunit": "SICU",
                "last_careunit": "SICU",
                "intime": later,
                "outtime": later + pd.Timedelta(hours=2),
            }
        )
    return ev


@pytest.mark.parametrize("task", ["readmission", "icu_mortality", "los"])
def test_no_feature_uses_data_after_the_prediction_time(
    task: str, demo_copy: Path, demo_build, tmp_path: Path, append
) -> None:
    """Events charted at or after each unit's prediction time leave every feature unchanged."""
    units = pd.read_parquet(demo_build.out_dir / f"{task}.parquet")
    # each subject's last unit, so that no later unit of the same patient may rightly see them
    last = units.sort_values("prediction_time").groupby("subject_id").tail(1)
    for table, rows in _future_events(last.head(40)).items():
        append(demo_copy / f"{table}.csv.gz", _fmt(rows))
    after = build_dataset(demo_copy, tmp_path / "after")
    new = pd.read_parquet(after.out_dir / f"{task}.parquet")
    # the appended 2-hour ICU stays are too short to enter the ICU cohort
    pd.testing.assert_frame_equal(units, new, check_dtype=False)


def test_future_events_would_change_features_if_dated_earlier(
    demo_copy: Path, tmp_path: Path, append
) -> None:
    """The converse of the leakage test: the same lab one minute BEFORE the cut does count."""
    before = build_dataset(demo_copy, tmp_path / "before")
    df = pd.read_parquet(before.out_dir / "readmission.parquet")
    r = df.iloc[0]
    t = (r.prediction_time - pd.Timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    append(
        demo_copy / "LABEVENTS.csv.gz",
        [
            {
                "subject_id": r.subject_id,
                "hadm_id": r.hadm_id,
                "itemid": 50912,
                "charttime": t,
                "valuenum": 999,
                "flag": "abnormal",
            }
        ],
    )
    after = build_dataset(demo_copy, tmp_path / "after")
    new = pd.read_parquet(after.out_dir / "readmission.parquet").iloc[0]
    assert new.lab_creatinine_last == 999 and new.lab_creatinine_max == 999


def test_upper_case_plain_csv_copy_gives_identical_tables(
    demo_copy: Path, demo_build, tmp_path: Path
) -> None:
    """The full release's style: upper-case quoted headers, quoted strings, plain .csv files."""
    import csv
    import gzip

    upper = tmp_path / "upper"
    upper.mkdir()
    for f in demo_copy.glob("*.csv.gz"):
        with (
            gzip.open(f, "rt", newline="") as src,
            open(
                upper / f.name.removesuffix(".gz").upper().replace(".CSV", ".csv"), "w", newline=""
            ) as dst,
        ):
            rows = csv.reader(src)
            header = next(rows)
            w = csv.writer(dst, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
            w.writerow([h.upper() for h in header])
            for row in rows:
                w.writerow(row)
    res = build_dataset(upper, tmp_path / "from_upper")
    assert res.report == demo_build.report
    for task in res.features:
        a = pd.read_parquet(demo_build.out_dir / f"{task}.parquet")
        b = pd.read_parquet(res.out_dir / f"{task}.parquet")
        pd.testing.assert_frame_equal(a, b)


def test_rebuild_replaces_output_atomically(
    demo_build, mimic_demo_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data"
    shutil.copytree(demo_build.out_dir, out)
    (out / "stale.txt").write_text("old")
    build_dataset(mimic_demo_dir, out)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.parametrize("task", ["readmission", "icu_mortality", "los"])
def test_a_later_admission_changes_no_feature_of_an_earlier_unit(
    task: str, demo_copy: Path, demo_build, tmp_path: Path, append
) -> None:  # type: ignore[no-untyped-def]
    """An elective admission after the prediction time, with heavy ICD codes, is invisible to the
    units before it (its codes, its existence, its ICU stay)."""
    units = pd.read_parquet(demo_build.out_dir / f"{task}.parquet")
    last = units.sort_values("prediction_time").groupby("subject_id").tail(1).head(30)
    adm, dx, px = [], [], []
    for k, r in enumerate(last.itertuples()):
        hadm = 900_000 + k
        start = r.prediction_time + pd.Timedelta(days=2)
        adm.append(
            {
                "row_id": 90_000 + k,
                "subject_id": r.subject_id,
                "hadm_id": hadm,
                "admittime": start,
                "dischtime": start + pd.Timedelta(days=6),
                "admission_type": "ELECTIVE",
                "admission_location": "PHYS REFERRAL/NORMAL DELI",
                "discharge_location": "HOME",
                "insurance": "Medicare",
                "ethnicity": "WHITE",
                "hospital_expire_flag": 0,
            }
        )
        for code in ("4280", "5856", "1970"):  # CHF, renal failure, metastatic cancer
            dx.append(
                {"subject_id": r.subject_id, "hadm_id": hadm, "seq_num": 1, "icd9_code": code}
            )
        px.append({"subject_id": r.subject_id, "hadm_id": hadm, "seq_num": 1, "icd9_code": "3961"})
    append(demo_copy / "ADMISSIONS.csv.gz", _fmt(adm))
    append(demo_copy / "DIAGNOSES_ICD.csv.gz", _fmt(dx))
    append(demo_copy / "PROCEDURES_ICD.csv.gz", _fmt(px))
    after = build_dataset(demo_copy, tmp_path / "after")
    new = pd.read_parquet(after.out_dir / f"{task}.parquet")
    key = "icustay_id" if task == "icu_mortality" else "hadm_id"
    new = new[new[key].isin(units[key])]  # the new admissions are units of their own
    assert len(new) == len(units)
    pd.testing.assert_frame_equal(
        units.drop(columns="unit_id").reset_index(drop=True),
        new.drop(columns="unit_id").reset_index(drop=True),
        check_dtype=False,
    )
