"""The state shared by the generator's steps: one batch of patients and one round of admissions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from safellm.data.synthetic.numeric import DAY, Arr
from safellm.data.synthetic.vocab import CI


class Batch:
    """Generates every table for n patients with local indices (ids are assigned later).

    P holds per-patient arrays (index: local patient number), A per-admission arrays sorted by
    patient and time (A["pat"]: the patient of each admission). Each step draws from `rng` in a
    fixed order, so the batch's tables depend only on its seed.
    """

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.rng = rng
        self.n = n
        self.P: dict[str, Arr] = {}
        self.A: dict[str, Arr] = {}


@dataclass(frozen=True)
class Stay:
    """One round of admissions (one per patient in `pat`): who, why, how ill, where."""

    pat: Arr
    nb: Arr
    adult: Arr
    com: Arr
    frail: Arr
    male: Arr
    age: Arr
    age_s: Arr
    elective: Arr
    reason: Arr
    rkey: Arr
    surgical: Arr
    sev: Arr
    sepsis: Arr
    shock: Arr
    pneu: Arr
    uti: Arr
    aki: Arr
    respfail: Arr
    cardiac_surg: Arr
    vent: Arr
    gib: Arr
    icu: Arr
    cu: Arr
    service: Arr

    def has(self, k: str) -> Arr:
        """The patient has chronic condition k (bool)."""
        return self.com[:, CI[k]]

    def isr(self, *keys: str) -> Arr:
        """The admission's reason is one of keys."""
        return np.isin(self.rkey, keys)


def first_icu_days(A: dict[str, Arr]) -> Arr:
    """Days of each admission's first ICU stay (0 without ICU)."""
    return np.where(A["icu"], (A["out1"] - A["in1"]) / DAY, 0.0)


def in_icu_stays(A: dict[str, Arr], adm: Arr, t: Arr) -> tuple[Arr, Arr]:
    """Whether time t of admission adm falls in its first and in its second ICU stay."""
    in_1 = A["icu"][adm] & (t >= A["in1"][adm]) & (t <= A["out1"][adm])
    in_2 = A["has2"][adm] & (t >= A["in2"][adm]) & (t <= A["out2"][adm])
    return in_1, in_2
