"""Event sequences of the data build: every unit has them, nothing after the prediction time, lab
events equal to the raw table's, the discharge events only where the prediction is the discharge."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from safellm.data.events import EVENT_COLUMNS, MAX_STAY_EVENTS, load_events
from safellm.errors import ArtifactError


@pytest.mark.parametrize("task", ["readmission", "icu_mortality", "los"])
def test_every_unit_has_events_and_none_after_the_prediction(demo_build, task: str) -> None:
    units = pd.read_parquet(demo_build.out_dir / f"{task}.parquet")
    ev = load_events(demo_build.out_dir, task)
    assert tuple(ev.columns) == EVENT_COLUMNS
    assert set(ev["unit_id"]) == set(units["unit_id"])  # at least the admission and the age
    assert (ev["hours_before"] >= 0).all()
    at_prediction = ev[ev["hours_before"] == 0]
    # only what is known at the prediction time itself: the discharge, for readmission
    assert set(at_prediction["token"].str.split(":").str[0]) <= {"dxnow", "dis"}
    if task != "readmission":
        assert at_prediction.empty
        assert not ev["token"].str.startswith(("dxnow", "dis")).any()
    # oldest first within each unit
    assert (ev.groupby("unit_id")["hours_before"].diff().dropna() <= 0).all()
    stay = ev[~ev["token"].str.startswith(("dx:", "dxnow:", "dis", "age"))]
    assert stay.groupby("unit_id").size().max() <= MAX_STAY_EVENTS


def test_lab_events_equal_the_raw_table(demo_build, mimic_demo_dir: Path) -> None:
    """ICU mortality (prediction 24 h after ICU admission): creatinine events of every stay
    recomputed from LABEVENTS in pandas."""
    units = pd.read_parquet(demo_build.out_dir / "icu_mortality.parquet")
    ev = load_events(demo_build.out_dir, "icu_mortality")
    labs = pd.read_csv(mimic_demo_dir / "LABEVENTS.csv.gz", parse_dates=["CHARTTIME"])
    labs.columns = labs.columns.str.lower()
    labs = labs[(labs["itemid"] == 50912) & labs["valuenum"].notna()]
    checked = 0
    for _, u in units.iterrows():
        own = labs[
            (labs["subject_id"] == u["subject_id"])
            & (labs["charttime"] >= u["admittime"] - pd.Timedelta(hours=12))
            & (labs["charttime"] < u["prediction_time"])
        ]
        got = ev[(ev["unit_id"] == u["unit_id"]) & (ev["token"] == "lab:creatinine")]
        assert sorted(got["value"]) == sorted(own["valuenum"]), u["icustay_id"]
        hours = (u["prediction_time"] - own["charttime"]).dt.total_seconds() / 3600
        assert sorted(got["hours_before"].round(6)) == sorted(hours.round(6))
        checked += len(own)
    assert checked > 100


def test_missing_events_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="rebuild the data"):
        load_events(tmp_path, "readmission")
    pd.DataFrame({"unit_id": [1]}).to_parquet(tmp_path / "events_readmission.parquet")
    with pytest.raises(ArtifactError, match="hours_before"):
        load_events(tmp_path, "readmission")
