"""Clinical notes of an admission, as exported by `safellm data build` (`notes.parquet`), cut into
chunks for evidence retrieval. Only notes charted before the prediction time are ever returned."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from safellm.errors import ArtifactError

NOTES_FILE = "notes.parquet"


class NoteChunk(BaseModel):
    note_id: int
    category: str
    chart_time: str | None
    text: str


def load_notes(data_dir: Path, hadm_id: int) -> pd.DataFrame:
    """The notes of admission `hadm_id` (empty when it has none)."""
    path = Path(data_dir) / NOTES_FILE
    if not path.is_file():
        raise ArtifactError(
            f"{path}: no notes export; run `safellm data build` (without --no-notes)"
        )
    return pd.read_parquet(path, filters=[("hadm_id", "==", int(hadm_id))])


def charted_at(row: pd.Series) -> datetime | None:
    """When a note became available: its chart time, or the end of its chart date (a note with a
    date only, like a discharge summary, counts as written at the end of that day)."""
    ct, cd = row.get("charttime"), row.get("chartdate")
    if ct is not None and not pd.isna(ct):
        return pd.Timestamp(ct).to_pydatetime()
    if cd is not None and not pd.isna(cd):
        return (pd.Timestamp(cd).normalize() + timedelta(days=1)).to_pydatetime()
    return None


def before(notes: pd.DataFrame, prediction_time: datetime) -> pd.DataFrame:
    """Only the notes available strictly before `prediction_time` (undated notes are dropped)."""
    if notes.empty:
        return notes
    t = pd.Timestamp(prediction_time).to_pydatetime()
    keep = [when is not None and when < t for when in (charted_at(r) for _, r in notes.iterrows())]
    return notes[keep]


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def chunk_text(text: str, max_words: int = 60) -> list[str]:
    """Sentences (and lines) packed into chunks of at most about `max_words` words."""
    chunks: list[str] = []
    current: list[str] = []
    n = 0
    for sentence in (s.strip() for s in _SENTENCE.split(text or "")):
        if not sentence:
            continue
        words = len(sentence.split())
        if current and n + words > max_words:
            chunks.append(" ".join(current))
            current, n = [], 0
        current.append(sentence)
        n += words
    if current:
        chunks.append(" ".join(current))
    return chunks


def chunks(notes: pd.DataFrame, max_words: int = 60) -> list[NoteChunk]:
    out = []
    for _, r in notes.sort_values("note_id").iterrows():
        when = charted_at(r)
        for piece in chunk_text(str(r["text"]), max_words):
            out.append(
                NoteChunk(
                    note_id=int(r["note_id"]),
                    category=str(r["category"]).strip(),
                    chart_time=when.isoformat(sep=" ", timespec="minutes") if when else None,
                    text=piece,
                )
            )
    return out
