"""Notes for evidence: only those charted before the prediction time, cut into chunks without
their template headings."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from safellm.data.notes import before, chunk_text, chunks, is_boilerplate, is_heading, load_notes
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


SUMMARY = """Admission Date:  [**2182-10-19**]              Discharge Date:   [**2182-10-21**]

Date of Birth:  [**2127-5-18**]             Sex:   M

Service: SURGERY

Allergies:
Penicillins

Attending:[**First Name3 (LF) 7918**]
Chief Complaint:
hip pain after a mechanical fall

HISTORY OF PRESENT ILLNESS:
This is a 55 year old man admitted with hip fracture after a fall.

Discharge Disposition:
Home With Service
"""


def test_heading_only_lines_are_left_out_of_chunks() -> None:
    """Template fields, titles and bare section names go; a bare label prefixes its content."""
    assert chunk_text(SUMMARY) == [
        "Chief Complaint: hip pain after a mechanical fall HISTORY OF PRESENT ILLNESS: This is a "
        "55 year old man admitted with hip fracture after a fall. Discharge Disposition: Home "
        "With Service"
    ]
    radiology = (
        "[**2168-7-19**] 10:24PM\n     CT HEAD W/O CONTRAST        Clip # [**Clip Number "
        "(Radiology) 13528**]\n     Reason: eval for infiltrate\n ________________\nFINAL REPORT\n"
        "COMPARISON: None.\nIMPRESSION: Hypodensity in the left MCA territory.\n"
    )
    assert chunk_text(radiology) == [
        "Reason: eval for infiltrate IMPRESSION: Hypodensity in the left MCA territory."
    ]
    nursing = "MICU Nursing Progress Note 1900-0700\nNeuro: A+Ox3, following commands."
    assert chunk_text(nursing) == ["Neuro: A+Ox3, following commands."]


@pytest.mark.parametrize(
    ("text", "heading"),
    [
        ("HISTORY OF PRESENT ILLNESS:", True),
        ("Past Medical History: Social History: Family History:", True),
        ("Admission Date: [**2161-1-19**] Discharge Date: [**2161-1-20**]", True),
        ("Service: MEDICINE", True),
        ("Brief Hospital Course", True),
        ("[**Known lastname 123**]", True),
        ("Discharge Disposition: Expired", False),
        ("Plan: wean O2 as tolerated.", False),
        ("CV: HR 66 AF, BP 141/54.", False),
    ],
)
def test_is_heading(text: str, heading: bool) -> None:
    assert is_heading(text) is heading


def test_boilerplate_chunks() -> None:
    assert is_boilerplate("Pt stable.")  # too short to be evidence
    flat = (
        "Admission Date: [**2161-1-19**] Discharge Date: [**2161-1-20**] Date of Birth: "
        "[**2072-7-2**] Sex: F Service: MEDICINE Allergies: Sulfa Attending: Chief Complaint: "
        "weakness"
    )
    assert is_boilerplate(flat)  # template headings that were not on lines of their own
    assert not is_boilerplate("Creatinine was elevated on admission at 7.5; renal was consulted.")
