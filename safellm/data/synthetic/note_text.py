"""What every note is written from: the admission's record (Rec) and the formatting of
dates, times and lab values as MIMIC notes show them.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from safellm.data.synthetic.meds import DRUGS
from safellm.data.synthetic.vocab import LAB_IDX, LABS, Reason


def _when(t: int) -> datetime.datetime:
    d: datetime.datetime = np.datetime64(int(t), "s").astype(object)
    return d


def deid_date(t: int) -> str:
    """MIMIC's de-identified date marker, e.g. [**2150-3-4**]."""
    d = _when(t)
    return f"[**{d.year}-{d.month}-{d.day}**]"


def clock(t: int) -> str:
    d = _when(t)
    h = d.hour % 12 or 12
    return f"{h}:{d.minute:02d}{'AM' if d.hour < 12 else 'PM'}"


_LAB_LINES = (
    ("BLOOD", ("wbc", "hgb", "hct", "plt")),
    ("BLOOD", ("glu", "bun", "cr", "na", "k", "cl", "hco3", "ag")),
    ("BLOOD", ("mg", "ca", "phos", "alb")),
    ("BLOOD", ("pt", "ptt", "inr")),
    ("BLOOD", ("alt", "ast", "bili")),
    ("BLOOD", ("lac",)),
)


def fmt_val(v: float, dec: int) -> str:
    return f"{v:.{dec}f}" if dec else str(round(v))


def lab_block(t: int, row: list[float]) -> list[str]:
    out = []
    for fluid, keys in _LAB_LINES:
        parts = []
        for k in keys:
            lab = LABS[LAB_IDX[k]]
            v = row[LAB_IDX[k]]
            if v != v:  # NaN: not measured
                continue
            star = "*" if (v < lab.lo or v > lab.hi) else ""
            parts.append(f"{lab.short}-{fmt_val(v, lab.dec)}{star}")
        if parts:
            out.append(f"{deid_date(t)} {clock(t)} {fluid} " + " ".join(parts))
    return out


def lab_phrase(row: list[float], keys: Sequence[str]) -> str:
    parts = []
    for k in keys:
        lab = LABS[LAB_IDX[k]]
        v = row[LAB_IDX[k]]
        if v == v:
            unit = f" {lab.unit}" if lab.unit else ""
            parts.append(f"{lab.label.split(',')[0].lower()} {fmt_val(v, lab.dec)}{unit}")
    return ", ".join(parts)


_ABX_NAMES = frozenset(
    ("Vancomycin", "Piperacillin-Tazobactam Na", "CeftriaXONE", "Azithromycin", "Levofloxacin",
     "MetRONIDAZOLE (FLagyl)")
)  # fmt: skip
DRUG_NAMES = tuple(d.drug.strip() for d in DRUGS)
NAN_ROW = [float("nan")] * len(LABS)


class Rec(NamedTuple):
    """What the notes of one admission may say about the patient."""

    male: bool
    newborn: bool
    prem: bool
    age: int
    lastname: str
    dob: int
    admit: int
    disch: int
    reason: Reason
    diag_text: str
    service: str
    cu: str
    icu_days: float
    vent: bool
    pneu: bool
    died: bool
    disloc: int
    conds: list[str]
    drug_ix: list[int]
    first_time: int
    first_row: list[float]
    last_time: int
    last_row: list[float]

    @property
    def he(self) -> str:
        return "He" if self.male else "She"

    @property
    def sex_word(self) -> str:
        return "man" if self.male else "woman"

    @property
    def sex(self) -> str:
        return "M" if self.male else "F"

    @property
    def drugs(self) -> list[str]:
        return [DRUG_NAMES[d] for d in self.drug_ix]

    @property
    def abx(self) -> list[str]:
        return [d for d in self.drugs if d in _ABX_NAMES]


def lab_str(row: list[float], key: str, default: str) -> str:
    v = row[LAB_IDX[key]]
    return default if v != v else fmt_val(v, LABS[LAB_IDX[key]].dec)
