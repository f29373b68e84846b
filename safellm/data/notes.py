"""Clinical notes of an admission, as exported by `safellm data build` (`notes.parquet`), cut into
chunks for evidence retrieval. Only notes charted before the prediction time are ever returned.

Template lines are not evidence: `chunk_text` leaves out every line that is only a heading
(`is_heading`: section titles such as "HISTORY OF PRESENT ILLNESS:", lists of section names,
template fields such as "Admission Date: [** **] Discharge Date:" or "Service: MEDICINE", note and
report titles, de-identification markers, dates and rulers only), and `is_boilerplate` tells the
retriever which whole chunks are still not worth offering (headings, very short, mostly labels).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from safellm.errors import ArtifactError
from safellm.text import sentences

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


# MIMIC's de-identification markers ("[**2161-1-19**]", "[**First Name3 (LF) 7918**]") and times
_DEID = re.compile(r"\[\*\*.*?\*\*\]")
_TIME = re.compile(r"\b\d{1,2}:\d{2}(?:\s*[AP]M)?\b", re.I)
# a section label: one to five capitalised words (and small joining words) before a colon
# ("Allergies:", "HISTORY OF PRESENT ILLNESS:", "Date of Birth:", "Labs / Radiology:")
_CAPWORD = r"[A-Z0-9][\w/&()'#+-]*"
_JOIN = r"(?:of|and|or|on|for|to|the|in|with|w/o|/|&)"
_LABEL = re.compile(rf"(?<![\w(]){_CAPWORD}(?:[ \t]+(?:{_CAPWORD}|{_JOIN})){{0,4}}[ \t]*:(?!\d)")
_WORD = re.compile(r"[A-Za-z]{2,}")
# fields of the discharge summary and report templates, whose short values are not evidence
TEMPLATE_FIELDS = frozenset(
    {"admission date", "discharge date", "date of birth", "sex", "service", "attending",
     "allergies", "clip #", "clip", "dictated by", "completed by", "job#", "job #", "cc", "md"}
)  # fmt: skip
# section names that are headings even without their colon
SECTION_NAMES = frozenset(
    {"history of present illness", "past medical history", "past surgical history",
     "social history", "family history", "physical exam", "physical examination",
     "pertinent results", "brief hospital course", "hospital course", "medications on admission",
     "discharge medications", "discharge disposition", "discharge diagnosis",
     "discharge condition", "discharge instructions", "followup instructions", "chief complaint",
     "major surgical or invasive procedure", "review of systems", "assessment and plan",
     "assessment", "plan", "impression", "findings", "indication", "comparison", "labs",
     "final report", "preliminary report", "addendum", "wet read"}
)  # fmt: skip
# titles of notes and reports ("MICU Nursing Progress Note 1900-0700", "CT HEAD W/O CONTRAST
# Clip #"): a few words ending with note/report/summary, or the radiology header's clip number
_TITLE = re.compile(r"^[\w /&()-]{0,60}\b(?:note|report|summary)\b[\s\d:-]*$|\bclip\s*#", re.I)
_TITLE_WORDS = 8


def is_heading(line: str) -> bool:
    """Whether a line of a note is only a heading, with nothing to read as evidence: no word left
    once de-identification markers and times are removed, a note or report title, section labels
    with nothing after them (or "None"), template fields with at most a few words of value, or a
    section name."""
    text = _TIME.sub(" ", _DEID.sub(" ", line)).strip()
    if not _WORD.search(text):
        return True
    if len(text.split()) <= _TITLE_WORDS and _TITLE.search(text):
        return True
    rest = _LABEL.sub(" ", text)
    if {w.lower() for w in _WORD.findall(rest)} <= {"none"}:
        return True
    labels = [m.group(0).rstrip(" \t:").lower() for m in _LABEL.finditer(text)]
    if labels and all(x in TEMPLATE_FIELDS for x in labels) and len(rest.split()) <= 3:
        return True
    return text.rstrip(" \t:.").lower() in SECTION_NAMES


def is_boilerplate(text: str, min_words: int = 4) -> bool:
    """Whether a chunk is not worth offering as evidence: a heading (`is_heading`), fewer than
    `min_words` words once markers, times and section labels are removed, or more words of
    section labels than of content (a run of template headings that were not on lines of their
    own)."""
    if is_heading(text):
        return True
    clean = _TIME.sub(" ", _DEID.sub(" ", text))
    content = len(_WORD.findall(_LABEL.sub(" ", clean)))
    labels = sum(len(_WORD.findall(m.group(0))) for m in _LABEL.finditer(clean))
    return content < min_words or labels > content


def chunk_text(text: str, max_words: int = 60) -> list[str]:
    """Sentences (and lines) packed into chunks of at most about `max_words` words, heading-only
    lines (`is_heading`) left out. A section label on a line of its own ("Chief Complaint:")
    prefixes the line after it, when the two together are more than a heading."""
    chunks: list[str] = []
    current: list[str] = []
    n = 0
    label = ""
    for sentence in (s.strip() for s in sentences(text or "", lines=True)):
        if not sentence:
            continue
        if is_heading(sentence):
            label = sentence if sentence.endswith(":") and _WORD.search(sentence) else ""
            continue
        if label:
            sentence, label = f"{label} {sentence}", ""
            if is_heading(sentence):  # "Allergies:" + "Penicillins": a template field
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
