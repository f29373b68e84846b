"""The build on a small synthetic hospital: notes keep NOTEEVENTS' ids; future cultures wait."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from safellm.data.build import build_dataset
from safellm.data.synthetic import synthesize


def test_notes_keep_their_noteevents_ids(tmp_path: Path) -> None:
    synthesize(tmp_path / "h", 60, seed=2)
    build_dataset(tmp_path / "h", tmp_path / "d")
    notes = pd.read_parquet(tmp_path / "d" / "notes.parquet")
    raw = pd.read_csv(tmp_path / "h" / "NOTEEVENTS.csv.gz")
    assert len(notes) > 100
    merged = notes.merge(raw[["row_id", "hadm_id", "text"]], left_on="note_id", right_on="row_id")
    assert len(merged) == len(notes)
    assert (merged["text_x"] == merged["text_y"]).all()
    assert (merged["hadm_id_x"] == merged["hadm_id_y"]).all()


def test_positive_cultures_count_only_once_reported(tmp_path: Path, append) -> None:  # type: ignore[no-untyped-def]
    """An organism from a specimen taken 71 h before the prediction is not yet known; 73 h is."""
    synthesize(tmp_path / "h", 60, seed=2)
    before = build_dataset(tmp_path / "h", tmp_path / "d0")
    units = pd.read_parquet(before.out_dir / "readmission.parquet")
    r = units.sort_values("prediction_time").groupby("subject_id").tail(1).iloc[0]
    fmt = "%Y-%m-%d %H:%M:%S"
    rows = [
        {
            "row_id": 9_000_000 + i,
            "subject_id": r.subject_id,
            "hadm_id": r.hadm_id,
            "chartdate": (r.prediction_time - pd.Timedelta(hours=h)).normalize().strftime(fmt),
            "charttime": (r.prediction_time - pd.Timedelta(hours=h)).strftime(fmt),
            "org_name": org,
        }
        for i, (h, org) in enumerate([(71, "KLEBSIELLA PNEUMONIAE"), (73, "ENTEROCOCCUS SP.")])
    ]
    append(tmp_path / "h" / "MICROBIOLOGYEVENTS.csv.gz", rows)
    after = build_dataset(tmp_path / "h", tmp_path / "d1")
    new = pd.read_parquet(after.out_dir / "readmission.parquet").set_index("hadm_id")
    old = units.set_index("hadm_id")
    assert (
        new.loc[r.hadm_id, "n_positive_cultures"] == old.loc[r.hadm_id, "n_positive_cultures"] + 1
    )
