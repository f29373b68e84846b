"""The synthetic MIMIC-III generator: shape, determinism, integrity, outcome signal, atomicity."""

from __future__ import annotations

import csv
import gzip
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safellm.data.synthetic import TABLE_COLUMNS, SynthSummary, synthesize

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
TS_COLUMNS: dict[str, tuple[str, ...]] = {
    "PATIENTS": ("dob", "dod", "dod_hosp", "dod_ssn"),
    "ADMISSIONS": ("admittime", "dischtime", "deathtime", "edregtime", "edouttime"),
    "ICUSTAYS": ("intime", "outtime"),
    "LABEVENTS": ("charttime",),
    "CHARTEVENTS": ("charttime", "storetime"),
    "PRESCRIPTIONS": ("startdate", "enddate"),
    "MICROBIOLOGYEVENTS": ("chartdate", "charttime"),
    "TRANSFERS": ("intime", "outtime"),
    "SERVICES": ("transfertime",),
    "NOTEEVENTS": ("chartdate", "charttime", "storetime"),
}


# MIMIC-III v1.4's CHARTEVENTS header (the demo copy here has no CHARTEVENTS)
FULL_RELEASE_CHARTEVENTS = (
    "ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,ITEMID,CHARTTIME,STORETIME,CGID,VALUE,VALUENUM,VALUEUOM,"
    "WARNING,ERROR,RESULTSTATUS,STOPPED"
)


def demo_dir() -> Path:
    """The MIMIC-III demo folder: $SAFELLM_MIMIC_DEMO_DIR or ../shared/data/mimic-iii-demo-1.4."""
    env = os.environ.get("SAFELLM_MIMIC_DEMO_DIR")
    if env:
        return Path(env)
    return Path(__file__).parents[2] / ".." / "shared" / "data" / "mimic-iii-demo-1.4"


def first_line(path: Path) -> str:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        return fh.readline()


def read(folder: Path, table: str) -> pd.DataFrame:
    df = pd.read_csv(folder / f"{table}.csv.gz", dtype={"icd9_code": str}, keep_default_na=True)
    for col in TS_COLUMNS.get(table, ()):
        df[col] = pd.to_datetime(df[col], format=TS_FORMAT)
    return df


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    # several batches, so batch boundaries and id offsets are exercised; with CHARTEVENTS, so the
    # shape and integrity checks cover it too
    return synthesize(
        tmp_path_factory.mktemp("synth") / "mimic", 300, seed=7, batch_size=128,
        chartevents="vitals",
    )  # fmt: skip


@pytest.fixture(scope="module")
def tables(small: SynthSummary) -> dict[str, pd.DataFrame]:
    return {t: read(small.out_dir, t) for t in TABLE_COLUMNS}


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return synthesize(tmp_path_factory.mktemp("synth") / "mimic", 2000, seed=11)


# ------------------------------------------------------------------------------- shape


def test_headers_equal_the_demo_release(small: SynthSummary) -> None:
    demo = demo_dir()
    if not demo.is_dir():
        pytest.fail(f"MIMIC-III demo not found at {demo}; set SAFELLM_MIMIC_DEMO_DIR")
    assert sorted(p.name for p in small.out_dir.iterdir()) == sorted(
        f"{t}.csv.gz" for t in TABLE_COLUMNS
    )
    for table, cols in TABLE_COLUMNS.items():
        if table == "CHARTEVENTS":  # not in the demo copy here: the full release's header
            theirs = FULL_RELEASE_CHARTEVENTS.split(",")
        else:
            theirs = next(csv.reader([first_line(demo / f"{table}.csv.gz")]))
        # the demo's LABEVENTS copy has upper-case quoted headers (full-release style)
        assert [c.strip().lower() for c in theirs] == list(cols), table
        assert first_line(small.out_dir / f"{table}.csv.gz") == ",".join(cols) + "\n", table


def test_summary_matches_the_files(small: SynthSummary, tables: dict[str, pd.DataFrame]) -> None:
    assert small.patients == 300 and small.seed == 7
    assert set(small.rows) == set(TABLE_COLUMNS)
    for table, df in tables.items():
        assert small.rows[table] == len(df), table
        assert list(df.columns) == list(TABLE_COLUMNS[table])
    assert small.admissions == len(tables["ADMISSIONS"])
    assert small.icustays == len(tables["ICUSTAYS"])
    assert len(tables["PATIENTS"]) == 300
    # roughly MIMIC's proportions
    assert 1.1 < small.admissions / 300 < 1.5
    assert 0.95 < small.icustays / small.admissions < 1.15
    assert 300 < small.rows["LABEVENTS"] / 300 < 900


def test_timestamps_parse_and_lie_in_2100_2200(small: SynthSummary) -> None:
    for table, cols in TS_COLUMNS.items():
        df = pd.read_csv(small.out_dir / f"{table}.csv.gz", usecols=list(cols), dtype=str)
        for col in cols:
            vals = df[col].dropna()
            assert vals.str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all(), (table, col)
            pd.to_datetime(vals, format=TS_FORMAT)  # raises if any does not parse
    adm = read(small.out_dir, "ADMISSIONS")
    assert adm.admittime.dt.year.min() >= 2100 and adm.dischtime.dt.year.max() <= 2200


def test_dates_are_midnight_and_numbers_plain(tables: dict[str, pd.DataFrame]) -> None:
    rx = tables["PRESCRIPTIONS"]
    for col in ("startdate", "enddate"):
        assert (rx[col] == rx[col].dt.normalize()).all()
    assert (rx.enddate >= rx.startdate).all()
    lab = tables["LABEVENTS"]
    assert pd.api.types.is_float_dtype(lab.valuenum) and lab.valuenum.notna().all()
    assert set(lab.flag.dropna()) == {"abnormal"}


# ------------------------------------------------------------------------------- determinism


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", 120, seed=3, batch_size=50)
    b = synthesize(tmp_path / "b", 120, seed=3, batch_size=50)
    c = synthesize(tmp_path / "c", 120, seed=4, batch_size=50)
    assert _file_bytes(a.out_dir) == _file_bytes(b.out_dir)
    assert a.rows == b.rows
    fa, fc = _file_bytes(a.out_dir), _file_bytes(c.out_dir)
    for table in ("PATIENTS", "ADMISSIONS", "LABEVENTS", "NOTEEVENTS"):
        assert fa[f"{table}.csv.gz"] != fc[f"{table}.csv.gz"], table
    # dictionaries are fixed
    assert fa["D_LABITEMS.csv.gz"] == fc["D_LABITEMS.csv.gz"]


# ------------------------------------------------------------------------------- integrity


def test_ids_unique_and_in_mimic_ranges(tables: dict[str, pd.DataFrame]) -> None:
    pat, adm, icu = tables["PATIENTS"], tables["ADMISSIONS"], tables["ICUSTAYS"]
    assert pat.subject_id.is_unique and adm.hadm_id.is_unique and icu.icustay_id.is_unique
    assert pat.subject_id.between(1, 99_999).all()
    assert adm.hadm_id.between(100_000, 199_999).all()
    assert icu.icustay_id.between(200_000, 299_999).all()
    for table, df in tables.items():
        assert df.row_id.is_unique and (df.row_id == np.arange(1, len(df) + 1)).all(), table


def test_foreign_keys(tables: dict[str, pd.DataFrame]) -> None:
    adm = tables["ADMISSIONS"].set_index("hadm_id")
    subjects = set(tables["PATIENTS"].subject_id)
    assert set(adm.subject_id) <= subjects
    children = [t for t in TABLE_COLUMNS if t not in ("PATIENTS", "ADMISSIONS")]
    children = [t for t in children if not t.startswith("D_")]
    for table in children:
        df = tables[table]
        inside = df[df.hadm_id.notna()]
        assert set(inside.hadm_id.astype(int)) <= set(adm.index), table
        # the subject of each row is the subject of its admission
        assert (adm.loc[inside.hadm_id.astype(int), "subject_id"].to_numpy()
                == inside.subject_id.to_numpy()).all(), table  # fmt: skip
    assert tables["DIAGNOSES_ICD"].hadm_id.nunique() == len(adm)
    icu_ids = set(tables["ICUSTAYS"].icustay_id)
    for table in ("TRANSFERS", "PRESCRIPTIONS"):
        assert set(tables[table].icustay_id.dropna().astype(int)) <= icu_ids, table


def test_icu_stays_and_transfers_fit_their_admission(tables: dict[str, pd.DataFrame]) -> None:
    adm = tables["ADMISSIONS"].set_index("hadm_id")
    icu = tables["ICUSTAYS"].join(adm[["admittime", "dischtime"]], on="hadm_id")
    assert (icu.intime >= icu.admittime).all() and (icu.outtime <= icu.dischtime).all()
    assert (icu.outtime > icu.intime).all()
    los = (icu.outtime - icu.intime).dt.total_seconds() / 86400
    assert np.allclose(los, icu.los, atol=1e-3)
    # ICU stays of one admission do not overlap
    icu = icu.sort_values(["hadm_id", "intime"])
    prev_out = icu.groupby("hadm_id").outtime.shift()
    assert (prev_out.isna() | (icu.intime >= prev_out)).all()

    tr = tables["TRANSFERS"].join(adm[["admittime", "dischtime"]], on="hadm_id")
    counts = tr.groupby(["hadm_id", "eventtype"]).size().unstack(fill_value=0)
    assert (counts["admit"] == 1).all() and (counts["discharge"] == 1).all()
    assert len(counts) == len(adm)
    assert (tr.intime >= tr.admittime).all() and (tr.intime <= tr.dischtime).all()
    dis = tr[tr.eventtype == "discharge"]
    assert (dis.intime == dis.dischtime).all() and dis.outtime.isna().all()
    # each ICU stay appears as a transfer segment with the same times and care unit
    seg = tr[tr.icustay_id.notna()].astype({"icustay_id": int}).set_index("icustay_id")
    st = tables["ICUSTAYS"].set_index("icustay_id")
    assert set(seg.index) == set(st.index)
    assert (seg.loc[st.index, "intime"] == st.intime).all()
    assert (seg.loc[st.index, "outtime"] == st.outtime).all()
    assert (seg.loc[st.index, "curr_careunit"] == st.first_careunit).all()
    assert (seg.loc[st.index, "curr_wardid"] == st.first_wardid).all()


def test_events_inside_stays_and_outpatient_labs_between(tables: dict[str, pd.DataFrame]) -> None:
    adm = tables["ADMISSIONS"]
    a = adm.set_index("hadm_id")
    lab = tables["LABEVENTS"]
    inp = lab[lab.hadm_id.notna()].join(a[["admittime", "dischtime"]], on="hadm_id")
    assert (inp.charttime >= inp.admittime).all() and (inp.charttime <= inp.dischtime).all()
    outp = lab[lab.hadm_id.isna()]
    assert 0.05 < len(outp) / len(lab) < 0.4
    m = outp[["subject_id", "charttime"]].merge(adm[["subject_id", "admittime", "dischtime"]])
    assert not ((m.charttime >= m.admittime) & (m.charttime <= m.dischtime)).any()
    for table, col in (("MICROBIOLOGYEVENTS", "charttime"), ("SERVICES", "transfertime")):
        df = tables[table].join(a[["admittime", "dischtime"]], on="hadm_id")
        assert (df[col] >= df.admittime).all() and (df[col] <= df.dischtime).all(), table
    rx = tables["PRESCRIPTIONS"].join(a[["admittime", "dischtime"]], on="hadm_id")
    assert (rx.startdate >= rx.admittime.dt.normalize()).all()
    assert (rx.enddate <= rx.dischtime.dt.normalize()).all()


def test_codes_and_items_are_in_the_dictionaries(tables: dict[str, pd.DataFrame]) -> None:
    assert set(tables["DIAGNOSES_ICD"].icd9_code) <= set(tables["D_ICD_DIAGNOSES"].icd9_code)
    assert set(tables["PROCEDURES_ICD"].icd9_code) <= set(tables["D_ICD_PROCEDURES"].icd9_code)
    assert set(tables["LABEVENTS"].itemid) <= set(tables["D_LABITEMS"].itemid)
    # codes are stored without the dot, as in MIMIC
    assert not tables["DIAGNOSES_ICD"].icd9_code.str.contains(r"\.").any()
    assert {"4280", "42731", "5849"} & set(tables["DIAGNOSES_ICD"].icd9_code)
    # the panel the project reads is there, with MIMIC's units
    units = tables["LABEVENTS"].groupby("itemid").valueuom.first()
    assert units[50912] == "mg/dL" and units[51222] == "g/dL" and units[50813] == "mmol/L"
    for item in (51222, 50912, 51006, 50983, 50971, 51301, 51265, 50813, 50882, 50931, 50862):
        assert item in units.index
    # seq_num runs 1..n within each admission
    dx = tables["DIAGNOSES_ICD"]
    assert (
        dx.groupby("hadm_id").seq_num.apply(lambda s: list(s) == list(range(1, len(s) + 1)))
    ).all()


def test_deaths_are_consistent(tables: dict[str, pd.DataFrame]) -> None:
    adm, pat = tables["ADMISSIONS"], tables["PATIENTS"].set_index("subject_id")
    dead = adm[adm.hospital_expire_flag == 1]
    assert len(dead) > 0
    assert (dead.deathtime == dead.dischtime).all()
    assert (dead.discharge_location == "DEAD/EXPIRED").all()
    assert adm[adm.hospital_expire_flag == 0].deathtime.isna().all()
    assert (
        pat.loc[dead.subject_id, "dod"].to_numpy() == dead.dischtime.dt.normalize().to_numpy()
    ).all()
    assert (pat.loc[dead.subject_id, "dod_hosp"].notna()).all()
    # nobody is admitted after death; expire_flag follows dod
    last = adm.groupby("subject_id").dischtime.max()
    d = pat.dod.dropna()
    assert (d >= last[d.index].dt.normalize()).all()
    assert (pat.expire_flag == pat.dod.notna().astype(int)).all()


def test_demographics_look_like_mimic(tables: dict[str, pd.DataFrame]) -> None:
    adm, pat = tables["ADMISSIONS"], tables["PATIENTS"].set_index("subject_id")
    assert set(adm.admission_type) <= {"EMERGENCY", "ELECTIVE", "URGENT", "NEWBORN"}
    assert adm.admission_type.value_counts().idxmax() == "EMERGENCY"
    assert set(pat.gender) == {"M", "F"}
    first = adm.groupby("subject_id").admittime.min()
    age = (first - pat.dob[first.index]).dt.days / 365.2425
    newborn = adm[adm.admission_type == "NEWBORN"].subject_id
    assert (age[newborn] < 1).all()
    assert (age > 250).any()  # over-89s are shifted ~300 years back, as in MIMIC
    assert age[(age > 1) & (age < 250)].between(17, 90).all()
    assert {"HOME", "SNF", "DEAD/EXPIRED"} <= set(adm.discharge_location)
    assert set(tables["ICUSTAYS"].first_careunit) <= {
        "MICU",
        "SICU",
        "CCU",
        "CSRU",
        "TSICU",
        "NICU",
    }


def test_notes_come_from_the_record(tables: dict[str, pd.DataFrame]) -> None:
    notes, adm = tables["NOTEEVENTS"], tables["ADMISSIONS"].set_index("hadm_id")
    ds = notes[notes.category == "Discharge summary"].set_index("hadm_id")
    assert ds.index.is_unique and set(ds.index) == set(adm.index)
    assert ds.charttime.isna().all() and notes.iserror.isna().all()
    assert (ds.chartdate == adm.loc[ds.index, "dischtime"].dt.normalize()).all()
    assert ds.text.str.len().between(600, 4000).all()
    assert {"Nursing/other", "Physician ", "Radiology"} <= set(notes.category)
    other = notes[notes.category != "Discharge summary"].join(
        adm[["admittime", "dischtime"]], on="hadm_id"
    )
    assert (other.charttime >= other.admittime).all() and (other.charttime <= other.dischtime).all()
    assert other.text.str.len().between(150, 1200).all()
    assert notes.text.str.contains(r"\[\*\*Known lastname \d+\*\*\]").any()
    # the date markers and the creatinine values quoted are the patient's own
    lab = tables["LABEVENTS"]
    cr = lab[(lab.itemid == 50912) & lab.hadm_id.notna()]
    cr_values = cr.groupby("hadm_id").valuenum.agg(lambda s: set(s.round(1)))
    checked = 0
    for hadm_id, text in ds.text.items():
        t, d = adm.loc[hadm_id, "admittime"], adm.loc[hadm_id, "dischtime"]
        assert f"Admission Date:  [**{t.year}-{t.month}-{t.day}**]" in text
        assert f"Discharge Date:   [**{d.year}-{d.month}-{d.day}**]" in text
        quoted = [float(v) for v in re.findall(r"Creat-([\d.]+)", text)]
        if quoted:
            assert set(quoted) <= cr_values[hadm_id], hadm_id
            checked += 1
    assert checked > 0.5 * len(ds)


# ------------------------------------------------------------------------------- outcome signal


def readmission_labels(adm: pd.DataFrame) -> pd.DataFrame:
    """Non-newborn survivors with y = an EMERGENCY/URGENT admission within 30 days of discharge."""
    eu = adm[adm.admission_type.isin(["EMERGENCY", "URGENT"])][["subject_id", "admittime"]]
    m = adm[["hadm_id", "subject_id", "dischtime"]].merge(eu, on="subject_id")
    hit = m[(m.admittime > m.dischtime) & (m.admittime <= m.dischtime + pd.Timedelta(days=30))]
    el = adm[(adm.admission_type != "NEWBORN") & (adm.hospital_expire_flag == 0)].copy()
    el["y"] = el.hadm_id.isin(hit.hadm_id).astype(int)
    return el


def test_readmission_has_signal(large: SynthSummary) -> None:
    adm = read(large.out_dir, "ADMISSIONS")
    dx = read(large.out_dir, "DIAGNOSES_ICD")
    assert 1.1 < len(adm) / 2000 < 1.45
    el = readmission_labels(adm)
    rate = el.y.mean()
    assert 0.08 < rate < 0.18, rate
    chf = set(dx[dx.icd9_code.str.startswith("428")].hadm_id)
    with_chf = el[el.hadm_id.isin(chf)].y.mean()
    without = el[~el.hadm_id.isin(chf)].y.mean()
    assert with_chf > without + 0.08, (with_chf, without)
    # discharge to a facility carries more risk than discharge home
    snf = el[el.discharge_location.isin(["SNF", "REHAB/DISTINCT PART HOSP"])].y.mean()
    home = el[el.discharge_location == "HOME"].y.mean()
    assert snf > home + 0.03, (snf, home)


def test_readmission_has_a_timing_signal(large: SynthSummary) -> None:
    """Leaving hospital within 24 h of leaving the ICU raises the readmission rate: a signal in
    the timing of events, not in any per-stay aggregate."""
    adm = read(large.out_dir, "ADMISSIONS")
    el = readmission_labels(adm)
    icu = read(large.out_dir, "ICUSTAYS").groupby("hadm_id")["outtime"].max().rename("last_out")
    el = el.merge(icu, left_on="hadm_id", right_index=True)
    gap = (el["dischtime"] - el["last_out"]).dt.total_seconds() / 86400
    soon, later = el[gap < 1].y.mean(), el[gap >= 2].y.mean()
    assert (gap < 1).sum() > 100
    # +1.2 log-odds, diluted because quick discharges are the milder stays
    assert soon > 1.15 * later, (soon, later)


def test_icu_mortality_has_signal(large: SynthSummary) -> None:
    adm = read(large.out_dir, "ADMISSIONS")
    icu = read(large.out_dir, "ICUSTAYS").merge(adm[["hadm_id", "hospital_expire_flag"]])
    icu = icu[icu.los >= 1]
    assert 0.06 < icu.hospital_expire_flag.mean() < 0.15
    lab = pd.read_csv(
        large.out_dir / "LABEVENTS.csv.gz", usecols=["hadm_id", "itemid", "charttime", "valuenum"]
    )
    lac = lab[lab.itemid == 50813].dropna(subset=["hadm_id"]).astype({"hadm_id": int})
    lac["charttime"] = pd.to_datetime(lac.charttime, format=TS_FORMAT)
    lac = lac.merge(icu[["hadm_id", "icustay_id", "intime", "hospital_expire_flag"]])
    day1 = lac[(lac.charttime >= lac.intime - pd.Timedelta(hours=6))
               & (lac.charttime <= lac.intime + pd.Timedelta(hours=24))]  # fmt: skip
    worst = day1.groupby("icustay_id").agg(
        lac=("valuenum", "max"), y=("hospital_expire_flag", "first")
    )
    assert len(worst) > 0.5 * len(icu)
    high, low = worst[worst.lac >= 4].y.mean(), worst[worst.lac < 2].y.mean()
    assert high > low + 0.1, (high, low)


# ------------------------------------------------------------------------------- errors, atomicity


@pytest.mark.parametrize("patients", [0, -5])
def test_rejects_fewer_than_one_patient(tmp_path: Path, patients: int) -> None:
    with pytest.raises(ValueError, match="patients"):
        synthesize(tmp_path / "out", patients)
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_leaves_nothing(tmp_path: Path) -> None:
    calls: list[int] = []

    def boom(k: int) -> None:
        calls.append(k)
        raise RuntimeError("stop after the first batch")

    with pytest.raises(RuntimeError, match="first batch"):
        synthesize(tmp_path / "out", 60, batch_size=20, progress=boom)
    assert calls == [20]
    assert list(tmp_path.iterdir()) == []


def test_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        synthesize(blocker / "out", 10)
    assert list(tmp_path.iterdir()) == [blocker]


def test_replaces_an_existing_folder_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")

    def boom(k: int) -> None:
        raise RuntimeError("fail")

    with pytest.raises(RuntimeError):
        synthesize(out, 10, progress=boom)
    assert [p.name for p in out.iterdir()] == ["stale.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    done: list[int] = []
    summary = synthesize(out, 30, batch_size=10, progress=done.append)
    assert done == [10, 10, 10]
    assert summary.out_dir == out and summary.patients == 30
    # no CHARTEVENTS by default
    expected = sorted(f"{t}.csv.gz" for t in TABLE_COLUMNS if t != "CHARTEVENTS")
    assert sorted(p.name for p in out.iterdir()) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
