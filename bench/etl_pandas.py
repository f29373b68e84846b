"""A plain pandas implementation of safellm's cohorts and features (the reference for `bench/etl.py`).

Same definitions as `safellm/data/cohorts.py` and `safellm/data/features.py` (same leakage rules,
same column names and order, same values), written the way a data scientist would: `read_csv` the
tables, then merges and groupbys. No DuckDB. Only the feature catalogue (names, item ids, code lists)
is shared with the package.

    .venv/bin/python bench/etl_pandas.py MIMIC_DIR --out DIR   # DIR/<task>.parquet + cohort_report.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from safellm.data.catalogue import (
    ELIX_FLAGS,
    ELIXHAUSER,
    ICU_UNITS,
    LABS,
    MED_CLASSES,
    VITAL_VALID,
    VITALS,
    features_for,
)

TASKS = ("readmission", "icu_mortality", "los")
TARGETS = {"readmission": "readmit_30d", "icu_mortality": "icu_mortality", "los": "los_days"}
UNIT_KEYS = {
    "readmission": ["subject_id", "hadm_id"],
    "icu_mortality": ["subject_id", "icustay_id"],
    "los": ["subject_id", "hadm_id"],
}
COHORT_COLUMNS = ["unit_id", "subject_id", "hadm_id", "icustay_id", "admittime", "prediction_time"]

H = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)

# The columns read from each table: "int", "float", "str" or "time".
TABLES: dict[str, dict[str, str]] = {
    "PATIENTS": {"subject_id": "int", "gender": "str", "dob": "time"},
    "ADMISSIONS": {
        "subject_id": "int",
        "hadm_id": "int",
        "admittime": "time",
        "dischtime": "time",
        "deathtime": "time",
        "admission_type": "str",
        "admission_location": "str",
        "discharge_location": "str",
        "insurance": "str",
        "ethnicity": "str",
        "hospital_expire_flag": "int",
    },
    "ICUSTAYS": {
        "subject_id": "int",
        "hadm_id": "int",
        "icustay_id": "int",
        "first_careunit": "str",
        "intime": "time",
        "outtime": "time",
    },
    "DIAGNOSES_ICD": {"hadm_id": "int", "icd9_code": "str"},
    "PROCEDURES_ICD": {"hadm_id": "int"},
    "PRESCRIPTIONS": {"hadm_id": "int", "startdate": "time", "drug": "str"},
    "LABEVENTS": {
        "subject_id": "int",
        "itemid": "int",
        "charttime": "time",
        "valuenum": "float",
        "flag": "str",
    },
    "MICROBIOLOGYEVENTS": {
        "hadm_id": "int",
        "chartdate": "time",
        "charttime": "time",
        "org_name": "str",
    },
    "TRANSFERS": {"hadm_id": "int", "eventtype": "str", "curr_careunit": "str", "intime": "time"},
    "SERVICES": {"hadm_id": "int", "transfertime": "time", "curr_service": "str"},
    "CHARTEVENTS": {"subject_id": "int", "itemid": "int", "charttime": "time", "valuenum": "float"},
}
OPTIONAL = {"CHARTEVENTS"}
_DTYPE = {"int": "Int64", "float": "float64", "str": "str", "time": "str"}

LAB_STEM = {itemid: stem for stem, (itemid, _, _) in LABS.items()}
VITAL_STEM = {i: stem for stem, (items, _, _) in VITALS.items() for i in items}


# --------------------------------------------------------------------------------------- loading
def find_file(source: Path, name: str) -> Path | None:
    wanted = {f"{name}.csv.gz".lower(), f"{name}.csv".lower()}
    hits = [p for p in Path(source).iterdir() if p.is_file() and p.name.lower() in wanted]
    hits.sort(key=lambda p: not p.name.lower().endswith(".gz"))
    return hits[0] if hits else None


def read_table(source: Path, name: str) -> pd.DataFrame | None:
    """The needed columns of one table (lower-case names, typed); None if an optional one is absent."""
    spec = TABLES[name]
    path = find_file(source, name)
    if path is None:
        if name in OPTIONAL:
            return None
        raise FileNotFoundError(f"{source}: no {name}.csv.gz or {name}.csv")
    header = pd.read_csv(path, nrows=0).columns
    raw = {c.strip().lower(): c for c in header}
    # CHARTEVENTS' ERROR flag (MetaVision): rows marked 1 are dropped; a file without it has none
    flag = raw.get("error") if name == "CHARTEVENTS" else None
    kw = {
        "usecols": [raw[c] for c in spec] + ([flag] if flag else []),
        "dtype": {raw[c]: _DTYPE[k] for c, k in spec.items()} | ({flag: "float64"} if flag else {}),
        "keep_default_na": False,  # like the SQL loader: only empty fields are missing
        "na_values": [""],
    }
    itemids = {"LABEVENTS": LAB_STEM, "CHARTEVENTS": VITAL_STEM}.get(name)
    if itemids is None:
        df = pd.read_csv(path, **kw)
    else:  # the event tables are big: keep only the items we use, chunk by chunk
        col = raw["itemid"]
        chunks = pd.read_csv(path, chunksize=2_000_000, **kw)
        keep = [
            c[c[col].isin(list(itemids)) & (c[flag].fillna(0) != 1 if flag else True)]
            for c in chunks
        ]
        df = pd.concat(keep, ignore_index=True)
        if flag:
            df = df.drop(columns=[flag])
    df.columns = [c.strip().lower() for c in df.columns]
    for c, kind in spec.items():
        if kind == "time":
            df[c] = pd.to_datetime(df[c], format="ISO8601")
    return df[list(spec)]


def load(source: Path) -> tuple[dict[str, pd.DataFrame], set[str]]:
    tables: dict[str, pd.DataFrame] = {}
    absent: set[str] = set()
    for name in TABLES:
        df = read_table(source, name)
        if df is None:
            absent.add(name)
            df = pd.DataFrame({c: pd.Series(dtype=_DTYPE[k]) for c, k in TABLES[name].items()})
            for c, k in TABLES[name].items():
                if k == "time":
                    df[c] = pd.to_datetime(df[c])
        tables[name] = df
    return tables, absent


# --------------------------------------------------------------------------------------- cohorts
def _finish(df: pd.DataFrame, key: str, target: str) -> pd.DataFrame:
    df = df.sort_values(["subject_id", key], kind="stable").reset_index(drop=True)
    df["unit_id"] = np.arange(1, len(df) + 1)
    return df[[*COHORT_COLUMNS, target]]


def build_cohorts(t: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    adm = t["ADMISSIONS"]
    atype = adm["admission_type"].str.upper()
    not_newborn = atype.notna() & (atype != "NEWBORN")
    no_icu = pd.Series(pd.NA, index=adm.index, dtype="Int64")

    # Readmission: alive at discharge, predicted at discharge; EMERGENCY/URGENT return within 30 d.
    alive = (adm["hospital_expire_flag"] == 0).fillna(False).astype(bool)
    r = adm[not_newborn & alive & adm["admittime"].notna() & adm["dischtime"].notna()].copy()
    r["icustay_id"] = no_icu
    r["prediction_time"] = r["dischtime"]
    r["_row"] = np.arange(len(r))
    returns = adm.loc[atype.isin(["EMERGENCY", "URGENT"]), ["subject_id", "admittime"]]
    pairs = r[["_row", "subject_id", "dischtime"]].merge(
        returns.dropna().rename(columns={"admittime": "back"}), on="subject_id"
    )
    gap = pairs["back"] - pairs["dischtime"]
    readmitted = pairs.loc[(gap > pd.Timedelta(0)) & (gap <= 30 * DAY), "_row"]
    r["readmit_30d"] = r["_row"].isin(readmitted).astype("int32")

    # ICU mortality: stays of >= 24 h, predicted at intime + 24 h.
    i = t["ICUSTAYS"].dropna(subset=["hadm_id"])
    i = i.merge(adm.dropna(subset=["hadm_id"])[["hadm_id", "admittime", "deathtime"]], on="hadm_id")
    i = i[(i["outtime"] - i["intime"]) >= 24 * H].copy()
    i["prediction_time"] = i["intime"] + 24 * H
    death = i["deathtime"]
    died = death.notna() & (death >= i["intime"]) & (death <= i["outtime"] + 6 * H)
    i["icu_mortality"] = died.astype("int32")

    # Length of stay: non-newborn admissions of >= 24 h, predicted at admittime + 24 h.
    stay = adm["dischtime"] - adm["admittime"]
    los = adm[not_newborn & (stay >= DAY)].copy()
    los["icustay_id"] = no_icu
    los["prediction_time"] = los["admittime"] + DAY
    los["los_days"] = (los["dischtime"] - los["admittime"]).dt.total_seconds() / 86400.0

    return {
        "readmission": _finish(r, "hadm_id", "readmit_30d"),
        "icu_mortality": _finish(i, "icustay_id", "icu_mortality"),
        "los": _finish(los, "hadm_id", "los_days"),
    }


def cohort_report(tables: dict[str, pd.DataFrame]) -> dict[str, dict[str, float | int]]:
    report: dict[str, dict[str, float | int]] = {}
    for task, df in tables.items():
        target = TARGETS[task]
        subjects = int(df["subject_id"].nunique())
        if task == "los":
            median = df[target].median()
            report[task] = {
                "rows": len(df),
                "subjects": subjects,
                "median_days": round(float(median), 4) if len(df) else 0.0,
            }
        else:
            positives = int(df[target].sum())
            report[task] = {"rows": len(df), "positives": positives, "subjects": subjects}
    return report


# -------------------------------------------------------------------------------------- features
def _per_unit(u: pd.DataFrame, values: pd.DataFrame | pd.Series, fill: float | None = None):
    out = values.reindex(u["unit_id"])
    return out.fillna(fill) if fill is not None else out


def _ethnicity_group(e: pd.Series) -> pd.Series:
    up = e.str.upper()
    conditions = [
        up.isna(),
        up.str.startswith("WHITE"),
        up.str.startswith("BLACK"),
        up.str.startswith("HISPANIC") | (up == "SOUTH AMERICAN"),
        up.str.startswith("ASIAN"),
        up.isin(["UNKNOWN/NOT SPECIFIED", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER"]),
    ]
    conditions = [c.fillna(False).astype(bool) for c in conditions]
    choices = ["UNKNOWN", "WHITE", "BLACK", "HISPANIC", "ASIAN", "UNKNOWN"]
    return pd.Series(np.select(conditions, choices, "OTHER"), index=e.index, dtype="str")


def demographics(u: pd.DataFrame, t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    adm = t["ADMISSIONS"].dropna(subset=["hadm_id"])
    cols = ["hadm_id", "dischtime", "ethnicity", "insurance", "admission_type"]
    cols += ["admission_location", "discharge_location"]
    d = u[["unit_id", "subject_id", "hadm_id", "admittime"]].merge(adm[cols], on="hadm_id")
    d = d.merge(t["PATIENTS"][["subject_id", "gender", "dob"]], on="subject_id", how="left")
    years = (d["admittime"] - d["dob"]).dt.total_seconds() / (365.25 * 86400)
    out = pd.DataFrame(
        {
            "age": years.clip(upper=90.0),
            "sex": d["gender"].str.upper(),
            "ethnicity_group": _ethnicity_group(d["ethnicity"]),
            "insurance": d["insurance"],
            "admission_type": d["admission_type"].str.upper(),
            "admission_location": d["admission_location"],
            "discharge_location": d["discharge_location"],
            "los_so_far_days": (d["dischtime"] - d["admittime"]).dt.total_seconds() / 86400.0,
        }
    )
    out.index = d["unit_id"]
    return _per_unit(u, out)


def _earlier_admissions(
    u: pd.DataFrame, adm: pd.DataFrame, own: bool = False, coded: bool = False
) -> pd.DataFrame:
    """(unit, admission) pairs of the same patient admitted before the unit (plus its own one).

    `coded`: only earlier admissions discharged before the prediction time (codes come at discharge).
    """
    b = adm.dropna(subset=["subject_id", "hadm_id"])[
        ["subject_id", "hadm_id", "admittime", "dischtime"]
    ].rename(columns={"hadm_id": "b_hadm_id", "admittime": "b_admittime", "dischtime": "b_disch"})
    p = u[["unit_id", "subject_id", "hadm_id", "admittime", "prediction_time"]].merge(
        b, on="subject_id"
    )
    other = (p["b_hadm_id"] != p["hadm_id"]).fillna(False).astype(bool)
    keep = (p["b_admittime"] < p["admittime"]) & other
    if coded:
        keep &= (p["b_disch"] < p["prediction_time"]).fillna(False).astype(bool)
    if own:
        keep |= (p["b_hadm_id"] == p["hadm_id"]).fillna(False).astype(bool)
    return p[keep]


def utilisation(u: pd.DataFrame, t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    p = _earlier_admissions(u, t["ADMISSIONS"])
    p = p.assign(
        in_6m=p["b_admittime"] >= p["admittime"] - pd.DateOffset(months=6),
        in_12m=p["b_admittime"] >= p["admittime"] - pd.DateOffset(months=12),
    )
    g = p.groupby("unit_id")
    counts = pd.DataFrame({"prior_adm_6m": g["in_6m"].sum(), "prior_adm_12m": g["in_12m"].sum()})
    done = p[p["b_disch"] <= p["admittime"]]
    gap_days = (done["admittime"] - done["b_disch"]).dt.total_seconds() / 86400.0
    last = gap_days.groupby(done["unit_id"]).min().rename("days_since_last_discharge")
    return pd.concat([_per_unit(u, counts, 0), _per_unit(u, last)], axis=1)


def icu_history(u: pd.DataFrame, t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    icu = t["ICUSTAYS"].rename(
        columns={"hadm_id": "i_hadm_id", "icustay_id": "i_icustay_id", "intime": "i_intime"}
    )
    cols = ["unit_id", "subject_id", "hadm_id", "icustay_id", "admittime", "prediction_time"]
    p = u[cols].merge(icu.dropna(subset=["subject_id"]), on="subject_id")
    p = p[p["i_intime"] < p["prediction_time"]]
    has_id = p["i_icustay_id"].notna()
    other = (p["i_hadm_id"] != p["hadm_id"]).fillna(False).astype(bool)
    same = (p["i_hadm_id"] == p["hadm_id"]).fillna(False).astype(bool)
    p = p.assign(
        prior=has_id & other & (p["i_intime"] < p["admittime"]),
        so_far=has_id & same,
        hours=(p["i_intime"] - p["admittime"]).dt.total_seconds() / 3600.0,
    )
    g = p.groupby("unit_id")
    counts = pd.DataFrame(
        {"prior_icu_stays": g["prior"].sum(), "icu_stays_so_far": g["so_far"].sum()}
    )
    this = p[(p["i_icustay_id"] == p["icustay_id"]).fillna(False).astype(bool)]
    stay = this.groupby("unit_id").agg(
        hours_before_icu=("hours", "first"), icu_first_careunit=("first_careunit", "first")
    )
    return pd.concat([_per_unit(u, counts, 0), _per_unit(u, stay)], axis=1)


def elixhauser_codes(diag: pd.DataFrame) -> pd.DataFrame:
    """Each distinct ICD-9 code of DIAGNOSES_ICD with the Elixhauser groups (and weights) it is in."""
    codes = pd.Series(diag["icd9_code"].dropna().unique(), dtype="str")
    parts = []
    for grp, (_, weight, prefixes) in ELIXHAUSER.items():
        hit = codes[codes.str.startswith(prefixes)]
        parts.append(pd.DataFrame({"icd9_code": hit, "grp": grp, "weight": weight}))
    return pd.concat(parts, ignore_index=True).drop_duplicates()


def comorbidity(u: pd.DataFrame, t: dict[str, pd.DataFrame], task: str) -> pd.DataFrame:
    # ICD codes are coded at discharge: the current admission's only when predicting at discharge.
    seen = _earlier_admissions(u, t["ADMISSIONS"], own=task == "readmission", coded=True)
    seen = seen[["unit_id", "b_hadm_id"]].drop_duplicates()
    diag = t["DIAGNOSES_ICD"].dropna(subset=["hadm_id", "icd9_code"])
    groups = (
        seen.merge(diag, left_on="b_hadm_id", right_on="hadm_id")
        .merge(elixhauser_codes(diag), on="icd9_code")[["unit_id", "grp", "weight"]]
        .drop_duplicates()
    )
    g = groups.groupby("unit_id")
    out = pd.DataFrame({"elix_count": g.size(), "elix_vw_score": g["weight"].sum()})
    flags = pd.crosstab(groups["unit_id"], groups["grp"]).clip(upper=1)
    for grp in ELIX_FLAGS:
        out[f"elix_{grp}"] = flags[grp] if grp in flags.columns else 0
    return _per_unit(u, out, 0)


def code_counts(u: pd.DataFrame, t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    n_diag = t["DIAGNOSES_ICD"].groupby("hadm_id").size()
    n_proc = t["PROCEDURES_ICD"].groupby("hadm_id").size()
    prior = _earlier_admissions(u, t["ADMISSIONS"], coded=True)
    n_prior = prior["b_hadm_id"].map(n_diag).fillna(0).groupby(prior["unit_id"]).sum()
    out = pd.DataFrame(
        {
            "n_diag_current": u["hadm_id"].map(n_diag).fillna(0).to_numpy(),
            "n_proc_current": u["hadm_id"].map(n_proc).fillna(0).to_numpy(),
            "n_diag_prior": n_prior.reindex(u["unit_id"]).fillna(0).to_numpy(),
        },
        index=u["unit_id"],
    )
    return out.astype("int64")


def medications(u: pd.DataFrame, t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rx = t["PRESCRIPTIONS"].dropna(subset=["hadm_id", "drug"])
    m = u[["unit_id", "hadm_id", "prediction_time"]].merge(rx, on="hadm_id")
    # A start *date* counts as known at the end of that day.
    m = m[m["startdate"] + DAY <= m["prediction_time"]]
    drug = m["drug"].str.lower()
    out = pd.DataFrame({"n_meds": drug.groupby(m["unit_id"]).nunique()})
    high_risk = []
    for cls, (_, patterns, alert) in MED_CLASSES.items():
        hit = drug.str.contains("|".join(re.escape(p) for p in patterns))
        if cls == "anticoagulant":  # line flushes are not anticoagulation
            hit &= ~drug.str.contains("flush", regex=False)
        out[f"med_{cls}"] = hit.astype(int).groupby(m["unit_id"]).max()
        if alert:
            high_risk.append(f"med_{cls}")
    out = _per_unit(u, out, 0).astype("int64")
    out["n_high_risk_med_classes"] = out[high_risk].sum(axis=1)
    return out


def _last_min_max(events: pd.DataFrame, stats: tuple[str, ...]) -> pd.DataFrame:
    """Per (unit, stem): the last value (latest charttime; the highest value on ties), min, max."""
    v = events[events["valuenum"].notna()].sort_values(["unit_id", "stem", "charttime", "valuenum"])
    return v.groupby(["unit_id", "stem"])["valuenum"].agg(list(stats))


def _wide(long: pd.DataFrame, prefix: str) -> pd.DataFrame:
    wide = long.unstack("stem")
    wide.columns = [f"{prefix}_{stem}_{stat}" for stat, stem in wide.columns]
    return wide


def labs(u: pd.DataFrame, t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    lab = t["LABEVENTS"].dropna(subset=["subject_id", "charttime"])
    cols = ["unit_id", "subject_id", "admittime", "prediction_time"]
    e = u[cols].merge(lab, on="subject_id")
    e = e[(e["charttime"] >= e["admittime"] - 12 * H) & (e["charttime"] < e["prediction_time"])]
    e = e.assign(stem=e["itemid"].map(LAB_STEM))
    values = _wide(_last_min_max(e, ("last", "min", "max")), "lab")
    abnormal = e[(e["flag"].str.lower() == "abnormal").fillna(False).astype(bool)]
    n_abn = abnormal.groupby(["unit_id", "stem"]).size().rename("n_abnormal").to_frame()
    n_abn = _per_unit(u, _wide(n_abn, "lab"), 0)
    names = [f"lab_{s}_{k}" for s in LABS for k in ("last", "min", "max")]
    values = values.reindex(columns=names)
    names = [f"lab_{s}_n_abnormal" for s in LABS]
    n_abn = n_abn.reindex(columns=names, fill_value=0).astype("int64")
    return pd.concat([_per_unit(u, values), n_abn], axis=1)


def events(u: pd.DataFrame, t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    base = u[["unit_id", "hadm_id", "prediction_time"]]

    micro = t["MICROBIOLOGYEVENTS"].dropna(subset=["hadm_id", "org_name"])
    mc = base.merge(micro, on="hadm_id")
    # the organism is known 72 h after the specimen (a date alone: after its day's end)
    specimen = mc["charttime"].fillna(mc["chartdate"] + DAY)
    mc = mc[(specimen + pd.Timedelta(hours=72) <= mc["prediction_time"]).fillna(False)]
    mc = mc.assign(when=mc["charttime"].fillna(mc["chartdate"]))
    cultures = mc.drop_duplicates(["unit_id", "when", "org_name"]).groupby("unit_id").size()

    tr = base.merge(t["TRANSFERS"].dropna(subset=["hadm_id"]), on="hadm_id")
    tr = tr[tr["intime"] < tr["prediction_time"]]
    kind = tr["eventtype"].str.lower()
    to_icu = kind.isin(["admit", "transfer"]) & tr["curr_careunit"].str.upper().isin(ICU_UNITS)
    n_transfers = (kind == "transfer").groupby(tr["unit_id"]).sum()
    n_icu = to_icu.groupby(tr["unit_id"]).sum()

    sv = base.merge(t["SERVICES"].dropna(subset=["hadm_id"]), on="hadm_id")
    sv = sv[sv["transfertime"] < sv["prediction_time"]]
    n_services = sv.groupby("unit_id").size()
    # latest named service; equal times break towards the larger name
    named = sv[sv["curr_service"].notna()].sort_values(["unit_id", "transfertime", "curr_service"])
    last_service = named.groupby("unit_id")["curr_service"].last()

    counts = pd.DataFrame(
        {
            "n_positive_cultures": cultures,
            "n_transfers": n_transfers,
            "n_icu_transfers": n_icu,
            "n_services": n_services,
        }
    )
    counts = _per_unit(u, counts, 0).astype("int64")
    return pd.concat([counts, _per_unit(u, last_service.rename("last_service"))], axis=1)


def vitals(u: pd.DataFrame, t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    chart = t["CHARTEVENTS"].dropna(subset=["subject_id", "charttime"])
    e = u[["unit_id", "subject_id", "prediction_time"]].merge(chart, on="subject_id")
    e = e[
        (e["charttime"] >= e["prediction_time"] - 24 * H) & (e["charttime"] < e["prediction_time"])
    ]
    e = e.assign(stem=e["itemid"].map(VITAL_STEM))
    lo = e["stem"].map({s: r[0] for s, r in VITAL_VALID.items()}).astype(float)
    hi = e["stem"].map({s: r[1] for s, r in VITAL_VALID.items()}).astype(float)
    value = e["valuenum"].astype(float)
    e = e[(value >= lo) & (value <= hi)]  # plausible values only
    last = _wide(_last_min_max(e, ("last",)), "vital")
    return _per_unit(u, last.reindex(columns=[f"vital_{s}_last" for s in VITALS]))


def build_features(
    task: str, u: pd.DataFrame, t: dict[str, pd.DataFrame], absent: set[str]
) -> pd.DataFrame:
    groups = [
        demographics(u, t),
        utilisation(u, t),
        icu_history(u, t),
        comorbidity(u, t, task),
        code_counts(u, t),
        medications(u, t),
        labs(u, t),
        events(u, t),
        vitals(u, t),
    ]
    feats = pd.concat(groups, axis=1)
    kept = [f.name for f in features_for(task) if not set(f.sources) & absent]
    return pd.concat([u.reset_index(drop=True), feats[kept].reset_index(drop=True)], axis=1)


def build_pandas(source: Path) -> dict[str, pd.DataFrame]:
    """Every task's cohort + feature table, keyed by task, from the MIMIC-III folder `source`."""
    tables, absent = load(Path(source))
    cohorts = build_cohorts(tables)
    return {task: build_features(task, cohorts[task], tables, absent) for task in TASKS}


# ------------------------------------------------------------------------------------ comparison
def mismatches(
    sql: pd.DataFrame, ref: pd.DataFrame, keys: list[str], tol: float = 1e-9
) -> list[str]:
    """Differences between two tables of units, in words (empty when they agree).

    Rows are matched on the unit keys; floats agree within `tol`; dtypes may differ.
    """
    if list(sql.columns) != list(ref.columns):
        only_sql = [c for c in sql.columns if c not in ref.columns]
        only_ref = [c for c in ref.columns if c not in sql.columns]
        return [f"columns differ: only in SQL {only_sql}, only in pandas {only_ref}"]
    a = sql.sort_values(keys, kind="stable").reset_index(drop=True)
    b = ref.sort_values(keys, kind="stable").reset_index(drop=True)
    sql_units = a[keys].astype("float64").to_numpy()
    ref_units = b[keys].astype("float64").to_numpy()
    if sql_units.shape != ref_units.shape or not np.array_equal(sql_units, ref_units):
        merged = a[keys].merge(b[keys], on=keys, how="outer", indicator=True)
        only_sql = merged[merged["_merge"] == "left_only"][keys].head(5).to_dict("records")
        only_ref = merged[merged["_merge"] == "right_only"][keys].head(5).to_dict("records")
        return [
            f"units differ: SQL {len(a)} rows, pandas {len(b)} rows; "
            f"only in SQL e.g. {only_sql}; only in pandas e.g. {only_ref}"
        ]
    out = []
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_datetime64_any_dtype(x) or pd.api.types.is_datetime64_any_dtype(y):
            same = ((x == y) | (x.isna() & y.isna())).to_numpy(dtype=bool)
        elif pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xf, yf = x.astype("float64").to_numpy(), y.astype("float64").to_numpy()
            close = np.isclose(xf, yf, rtol=tol, atol=tol)
            same = close | (np.isnan(xf) & np.isnan(yf))
        else:
            xo, yo = x.astype(object), y.astype(object)
            same = ((xo == yo) | (x.isna() & y.isna())).to_numpy(dtype=bool)
        if not same.all():
            bad = np.flatnonzero(~same)
            examples = [
                f"{dict(zip(keys, a.loc[i, keys].tolist(), strict=True))}: "
                f"SQL {x.iloc[i]!r} vs pandas {y.iloc[i]!r}"
                for i in bad[:3]
            ]
            out.append(f"{col}: {len(bad)} of {len(a)} units differ, e.g. {'; '.join(examples)}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("source", type=Path, help="a MIMIC-III folder (demo, full or synthetic)")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    tables = build_pandas(args.source)
    args.out.mkdir(parents=True, exist_ok=True)
    for task, df in tables.items():
        df.to_parquet(args.out / f"{task}.parquet", compression="zstd", index=False)
    report = cohort_report(tables)
    (args.out / "cohort_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    print(f"pandas reference built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
