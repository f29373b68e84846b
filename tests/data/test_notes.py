"""Notes for evidence: only those charted before the prediction time, cut into chunks."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from safellm.data.notes import before, chunk_text, chunks, load_notes
from safellm.errors import ArtifactError

T = datetime(2150, 3, 10, 12, 0)


def _notes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "note_id": [1, 2, 3, 4, 5],
            "subject_id": 7,
            "hadm_id": 70,
            "chartdate": pd.to_datetime(
                ["2150-03-09", "2150-03-10", "2150-03-10", "2150-03-09", None]
            ),
            "charttime": pd.to_datetime(
                ["2150-03-09 08:00", "2150-03-10 11:59", "2150-03-10 12:00", None, None]
            ),
            "category": ["Nursing", "Physician", "Nursing", "Discharge summary", "Radiology"],
            "description": "",
            "text": ["a", "b", "c", "d", "e"],
        }
    )


def test_only_notes_charted_before_the_prediction_time() -> None:
    kept = before(_notes(), T)
    # 3 is charted exactly at the prediction time; 5 has no date at all; 4 (a date only) counts
    # as written at the end of 2150-03-09, before noon on the 10th
    assert kept["note_id"].tolist() == [1, 2, 4]
    # a date-only note of the prediction day is not available yet at noon
    day = _notes().assign(chartdate=pd.to_datetime(["2150-03-10"] * 5), charttime=pd.NaT)
    assert before(day, T).empty


def test_chunks_pack_sentences_and_keep_their_note() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(30))
    pieces = chunk_text(text, max_words=20)
    assert len(pieces) > 5 and all(len(p.split()) <= 20 for p in pieces)
    assert " ".join(pieces) == text
    notes = _notes().assign(text=[text, "short", "x", "y", "z"])
    out = chunks(notes.iloc[:2], max_words=20)
    assert {c.note_id for c in out} == {1, 2} and out[-1].text == "short"
    assert out[0].chart_time == "2150-03-09 08:00"


def test_missing_notes_export_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="safellm data build"):
        load_notes(tmp_path, 1)
    _notes().to_parquet(tmp_path / "notes.parquet")
    assert load_notes(tmp_path, 70)["note_id"].tolist() == [1, 2, 3, 4, 5]
    assert load_notes(tmp_path, 71).empty
