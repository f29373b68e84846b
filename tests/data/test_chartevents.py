"""CHARTEVENTS: the synthetic hospital's charting and the vital-sign features read from it.

The features are recomputed here in pandas from the raw file (ERROR rows and implausible values
dropped, the last value in the 24 h before the prediction time, the larger value on tied times),
independently of the build's SQL; rows at or after the prediction time change nothing; CareVue and
MetaVision stays both get their vital signs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from safellm.data.build import BuildResult, build_dataset
from safellm.data.catalogue import VITAL_VALID, VITALS
from safellm.data.synthetic import synthesize
from safellm.data.synthetic.chart import ITEMS, STAYS_PER_CHUNK

TASKS = ("readmission", "icu_mortality", "los")
CV_ITEMS = {it.cv for it in ITEMS.values()}
MV_ITEMS = {it.mv for it in ITEMS.values()}


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chart") / "h"
    synthesize(out, 160, seed=5, batch_size=80, chartevents="vitals")
    return out


@pytest.fixture(scope="module")
def built(hospital: Path, tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    return build_dataset(hospital, tmp_path_factory.mktemp("chart") / "d")


@pytest.fixture(scope="module")
def chart(hospital: Path) -> pd.DataFrame:
    df = pd.read_csv(hospital / "CHARTEVENTS.csv.gz", parse_dates=["charttime", "storetime"])
    return df


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------ the generator
def test_other_tables_do_not_depend_on_chartevents(hospital: Path, tmp_path: Path) -> None:
    synthesize(tmp_path / "none", 160, seed=5, batch_size=80)
    assert not (tmp_path / "none" / "CHARTEVENTS.csv.gz").exists()
    for f in sorted((tmp_path / "none").iterdir()):
        assert _sha(f) == _sha(hospital / f.name), f.name


def test_each_stay_is_charted_hourly_in_its_own_system(hospital: Path, chart: pd.DataFrame) -> None:
    icu = pd.read_csv(hospital / "ICUSTAYS.csv.gz", parse_dates=["intime", "outtime"])
    assert len(icu) > STAYS_PER_CHUNK  # several chunks of stays
    assert set(icu.dbsource) == {"carevue", "metavision"}
    rows = chart.merge(icu[["icustay_id", "dbsource", "intime", "outtime"]], on="icustay_id")
    assert len(rows) == len(chart)  # every row belongs to a stay of this hospital
    cv = rows.dbsource == "carevue"
    assert set(rows.itemid[cv]) <= CV_ITEMS and set(rows.itemid[~cv]) <= MV_ITEMS
    assert set(rows.itemid[cv]) == CV_ITEMS and set(rows.itemid[~cv]) == MV_ITEMS
    # inside the stay, on the hour
    assert (rows.charttime >= rows.intime).all() and (rows.charttime <= rows.outtime).all()
    assert (rows.charttime.dt.minute == 0).all() and (rows.storetime > rows.charttime).all()
    # a heart rate nearly every hour of every stay
    hr = rows[rows.itemid.isin([211, 220045])].groupby("icustay_id").charttime.nunique()
    hours = ((icu.set_index("icustay_id").outtime - icu.set_index("icustay_id").intime)
             .dt.total_seconds() / 3600).loc[hr.index]  # fmt: skip
    assert 0.9 < (hr / np.maximum(hours, 1)).median() <= 1.05


def test_errors_and_duplicates_as_in_the_real_table(hospital: Path, chart: pd.DataFrame) -> None:
    icu = pd.read_csv(hospital / "ICUSTAYS.csv.gz")
    rows = chart.merge(icu[["icustay_id", "dbsource"]], on="icustay_id")
    mv = rows[rows.dbsource == "metavision"]
    cv = rows[rows.dbsource == "carevue"]
    assert cv.error.isna().all() and set(mv.error.dropna().astype(int)) == {0, 1}
    flagged = mv[mv.error == 1]
    assert 0 < len(flagged) < 0.01 * len(mv)
    # each flagged value is charted again, right, at the same time: ten times or a tenth of it
    right = mv[mv.error == 0].groupby(["icustay_id", "itemid", "charttime"]).valuenum.max()
    pair = right.loc[list(zip(flagged.icustay_id, flagged.itemid, flagged.charttime, strict=True))]
    ratio = flagged.valuenum.to_numpy() / pair.to_numpy()
    assert np.all((np.abs(ratio - 10) < 1.5) | (np.abs(ratio - 0.1) < 0.06))
    # CareVue: no flag, but some implausible values
    for stem, (items, _, _) in VITALS.items():
        v = rows[rows.itemid.isin(items)].valuenum
        assert v.notna().all(), stem
    out_of_range = sum(
        (~cv[cv.itemid.isin(items)].valuenum.between(*VITAL_VALID[s])).sum()
        for s, (items, _, _) in VITALS.items()
    )
    assert out_of_range > 0
    assert chart.drop(columns=["row_id"]).duplicated().sum() > 0


def test_full_mode_has_the_real_tables_size(tmp_path: Path) -> None:
    s = synthesize(tmp_path / "f", 40, seed=1, chartevents="full")
    per_stay = s.rows["CHARTEVENTS"] / s.icustays
    # MIMIC-III v1.4: 330,712,483 rows / 61,532 ICU stays = 5,375 per stay
    assert 3500 < per_stay < 8000


def test_bad_chartevents_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chartevents must be one of none, vitals, full"):
        synthesize(tmp_path / "x", 5, chartevents="hourly")


# ------------------------------------------------------------------------------- the features
def _recompute(chart: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """Last plausible value of each vital sign in [prediction - 24 h, prediction), by pandas."""
    stem_of = {i: s for s, (items, _, _) in VITALS.items() for i in items}
    c = chart[chart.error.fillna(0) != 1].assign(stem=lambda d: d.itemid.map(stem_of))
    c = c.dropna(subset=["stem", "valuenum"])
    lo = c.stem.map({s: r[0] for s, r in VITAL_VALID.items()})
    hi = c.stem.map({s: r[1] for s, r in VITAL_VALID.items()})
    c = c[(c.valuenum >= lo) & (c.valuenum <= hi)]
    e = units[["unit_id", "subject_id", "prediction_time"]].merge(c, on="subject_id")
    e = e[
        (e.charttime >= e.prediction_time - pd.Timedelta(hours=24))
        & (e.charttime < e.prediction_time)
    ]
    last = e.sort_values(["charttime", "valuenum"]).groupby(["unit_id", "stem"]).valuenum.last()
    wide = last.unstack("stem").reindex(columns=list(VITALS))
    wide.columns = [f"vital_{s}_last" for s in wide.columns]
    return wide.reindex(units.unit_id)


@pytest.mark.parametrize("task", TASKS)
def test_vital_features_equal_a_pandas_recomputation(
    built: BuildResult, chart: pd.DataFrame, task: str
) -> None:
    units = pd.read_parquet(built.out_dir / f"{task}.parquet")
    names = [f"vital_{s}_last" for s in VITALS]
    assert set(names) <= set(built.features[task])
    got = units.set_index("unit_id")[names]
    want = _recompute(chart, units)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_names=False)
    if task == "icu_mortality":  # 24 h into the ICU: every stay has its vital signs
        assert got.notna().all(axis=1).mean() > 0.95


def test_carevue_and_metavision_stays_both_get_vital_signs(
    hospital: Path, built: BuildResult
) -> None:
    units = pd.read_parquet(built.out_dir / "icu_mortality.parquet")
    icu = pd.read_csv(hospital / "ICUSTAYS.csv.gz")[["icustay_id", "dbsource"]]
    u = units.merge(icu, on="icustay_id")
    names = [f"vital_{s}_last" for s in VITALS]
    for system in ("carevue", "metavision"):
        part = u[u.dbsource == system]
        assert len(part) > 20, system
        assert part[names].notna().all(axis=1).mean() > 0.95, system


def test_mistyped_and_flagged_values_are_not_read(
    hospital: Path, tmp_path: Path, append, built: BuildResult
) -> None:  # type: ignore[no-untyped-def]
    """A flagged (ERROR = 1) heart rate and an implausible one, charted last before the
    prediction, leave the feature as it was; a plausible one becomes the last value."""
    units = pd.read_parquet(built.out_dir / "icu_mortality.parquet")
    u = units.dropna(subset=["vital_heart_rate_last"]).iloc[0]
    t = (u.prediction_time - pd.Timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    base = {"subject_id": u.subject_id, "hadm_id": u.hadm_id, "icustay_id": u.icustay_id,
            "itemid": 220045, "charttime": t}  # fmt: skip
    copy = tmp_path / "h"
    copy.mkdir()
    for f in hospital.iterdir():
        (copy / f.name).symlink_to(f)
    (copy / "CHARTEVENTS.csv.gz").unlink()
    (copy / "CHARTEVENTS.csv.gz").write_bytes((hospital / "CHARTEVENTS.csv.gz").read_bytes())
    append(copy / "CHARTEVENTS.csv.gz", [
        {**base, "row_id": 10**8, "value": "5", "valuenum": 5, "error": 0},
        {**base, "row_id": 10**8 + 1, "value": "299", "valuenum": 299, "error": 1},
    ])  # fmt: skip
    after = build_dataset(copy, tmp_path / "d1", notes=False, events=False)
    new = pd.read_parquet(after.out_dir / "icu_mortality.parquet").set_index("unit_id")
    assert new.loc[u.unit_id, "vital_heart_rate_last"] == u.vital_heart_rate_last
    append(copy / "CHARTEVENTS.csv.gz", [
        {**base, "row_id": 10**8 + 2, "value": "131", "valuenum": 131, "error": 0},
    ])  # fmt: skip
    later = build_dataset(copy, tmp_path / "d2", notes=False, events=False)
    new = pd.read_parquet(later.out_dir / "icu_mortality.parquet").set_index("unit_id")
    assert new.loc[u.unit_id, "vital_heart_rate_last"] == 131


@pytest.mark.parametrize("task", TASKS)
def test_chart_rows_at_or_after_the_prediction_time_change_nothing(
    hospital: Path, tmp_path: Path, append, built: BuildResult, task: str
) -> None:  # type: ignore[no-untyped-def]
    """Vital signs charted at, 1 s and 1 h after each unit's prediction time (each subject's last
    unit, so that no later unit may rightly see them) leave the features and events unchanged."""
    copy = tmp_path / "h"
    copy.mkdir()
    for f in hospital.iterdir():
        if f.name != "CHARTEVENTS.csv.gz":
            (copy / f.name).symlink_to(f)
    (copy / "CHARTEVENTS.csv.gz").write_bytes((hospital / "CHARTEVENTS.csv.gz").read_bytes())
    units = pd.read_parquet(built.out_dir / f"{task}.parquet")
    last = units.sort_values("prediction_time").groupby("subject_id").tail(1)
    rows: list[dict[str, object]] = []
    for _, u in last.iterrows():
        for dt in (0, 1, 3600):
            t = (u.prediction_time + pd.Timedelta(seconds=dt)).strftime("%Y-%m-%d %H:%M:%S")
            for stem, (items, _, _) in VITALS.items():
                value = VITAL_VALID[stem][1]  # plausible, and larger than any real one
                rows.append({"row_id": 10**8 + len(rows), "subject_id": u.subject_id,
                             "hadm_id": u.hadm_id, "itemid": items[-1], "charttime": t,
                             "value": value, "valuenum": value, "error": 0})  # fmt: skip
    assert len(rows) > 300
    append(copy / "CHARTEVENTS.csv.gz", rows)
    after = build_dataset(copy, tmp_path / "d", notes=False)
    new = pd.read_parquet(after.out_dir / f"{task}.parquet")
    pd.testing.assert_frame_equal(units, new)
    ev_old = pd.read_parquet(built.out_dir / f"events_{task}.parquet")
    ev_new = pd.read_parquet(after.out_dir / f"events_{task}.parquet")
    pd.testing.assert_frame_equal(ev_old, ev_new)


def test_vital_signs_are_events_of_the_temporal_model(built: BuildResult) -> None:
    ev = pd.read_parquet(built.out_dir / "events_icu_mortality.parquet")
    vit = ev[ev.token.str.startswith("vital:")]
    assert set(vit.token) == {f"vital:{s}" for s in VITALS}
    assert (vit.hours_before > 0).all() and vit.value.notna().all()
    for stem, (lo, hi) in VITAL_VALID.items():
        v = vit[vit.token == f"vital:{stem}"].value
        assert v.between(lo, hi).all(), stem
    # at most one value per sign and 4-hour block
    block = np.floor(vit.hours_before / 4)
    assert not vit.assign(block=block).duplicated(["unit_id", "token", "block"]).any()
    # 24 h into the ICU stay: several blocks per unit
    assert vit.groupby("unit_id").size().median() >= 20


def test_a_chartevents_file_without_the_error_column_builds(
    hospital: Path, tmp_path: Path, chart: pd.DataFrame, built: BuildResult
) -> None:
    copy = tmp_path / "h"
    copy.mkdir()
    for f in hospital.iterdir():
        if f.name != "CHARTEVENTS.csv.gz":
            (copy / f.name).symlink_to(f)
    kept = chart[chart.error.fillna(0) != 1].drop(columns=["error"])
    kept.to_csv(copy / "CHARTEVENTS.csv.gz", index=False, date_format="%Y-%m-%d %H:%M:%S")
    after = build_dataset(copy, tmp_path / "d", notes=False, events=False)
    for task in TASKS:
        old = pd.read_parquet(built.out_dir / f"{task}.parquet")
        new = pd.read_parquet(after.out_dir / f"{task}.parquet")
        pd.testing.assert_frame_equal(old, new)
