"""NOTEEVENTS: one discharge summary per admission and nursing, physician and radiology notes
during the stay, written from the patient's own record with MIMIC's de-identification markers.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from safellm.data.synthetic.batch import Batch, first_icu_days
from safellm.data.synthetic.discharge_summary import discharge_summary
from safellm.data.synthetic.note_text import NAN_ROW, Rec
from safellm.data.synthetic.numeric import DAY, Arr, run_ends, run_starts
from safellm.data.synthetic.vocab import (
    CAREUNITS,
    CONDS,
    DIAG_TEXT_OFFSET,
    DIAG_TEXTS,
    REASONS,
    SERVICE_WORDS,
    SERVICES,
    WORDS,
)
from safellm.data.synthetic.ward_notes import nursing_note, physician_note, radiology_note


def notes(b: Batch, labs: dict[str, Arr], rx: dict[str, Arr]) -> dict[str, Any]:
    """NOTEEVENTS rows written from each admission's own record (python lists / arrays)."""
    rng, A, P = b.rng, b.A, b.P
    rnd = random.Random(int(rng.integers(0, 2**62)))
    na = len(A["pat"])
    pat = A["pat"]
    nb = P["nb"][pat]
    # lab panels of each admission (sorted by admission, time)
    p_adm, p_time, V = labs["adm"], labs["time"], labs["V"]
    first_panel = np.full(na, -1, np.int64)
    last_panel = np.full(na, -1, np.int64)
    starts, ends = run_starts(p_adm), run_ends(p_adm)
    first_panel[p_adm[starts]] = np.flatnonzero(starts)
    last_panel[p_adm[ends]] = np.flatnonzero(ends)
    key_panel = p_adm * np.int64(10**10) + p_time
    rx_first = np.searchsorted(rx["adm"], np.arange(na), "left")
    rx_last = np.searchsorted(rx["adm"], np.arange(na), "right")
    # how many notes of each kind
    short_los = np.minimum(A["los"], 6.0)
    n_nurse = np.minimum(rng.poisson(np.where(A["icu"], 1.6, 0.6) * short_los / 2.0 + 0.5), 6)
    n_phys = np.minimum(rng.poisson(0.8 + 0.3 * np.minimum(A["los"], 5.0)), 4)
    n_phys = np.where(A["icu"] & ~nb, n_phys, 0)
    n_rad = np.minimum(rng.poisson(0.5 + 0.6 * A["pneu"] + 0.5 * A["vent"] + 0.4 * A["icu"]), 4)
    n_rad = np.where(nb, 0, n_rad)
    cgid_base = rng.integers(14000, 21000, (na, 2))
    icu_days = first_icu_days(A).tolist()
    diag_l = (DIAG_TEXT_OFFSET[A["reason"]] + A["text_idx"]).tolist()
    keys = ("age", "admittime", "dischtime", "reason", "cu", "died", "discharge_location",
            "service", "vent", "pneu")  # fmt: skip
    cols = {k: A[k].tolist() for k in keys}
    pat_l = pat.tolist()
    male_l, nb_l, prem_l = P["male"].tolist(), P["nb"].tolist(), P["prem"].tolist()
    last_l, dob_l = P["lastname"].tolist(), P["dob"].tolist()
    coded, pcode = A["coded"], P["code"]
    fields = ("adm", "chartdate", "charttime", "storetime", "category", "description", "cgid",
              "text", "sort")  # fmt: skip
    out: dict[str, list[Any]] = {k: [] for k in fields}

    def emit(a: int, date: int, time: int, store: int, cat: str, desc: str, cg: int, text: str,
             sort: int) -> None:  # fmt: skip
        for k, v in zip(out, (a, date, time, store, cat, desc, cg, text, sort), strict=True):
            out[k].append(v)

    for a in range(na):
        p = pat_l[a]
        fpan, lpan = int(first_panel[a]), int(last_panel[a])
        frow = V[fpan].tolist() if fpan >= 0 else NAN_ROW
        age = cols["age"][a]
        rec = Rec(
            male=male_l[p], newborn=nb_l[p], prem=prem_l[p], age=int(age) if age < 90 else 91,
            lastname=f"[**Known lastname {last_l[p]}**]", dob=dob_l[p],
            admit=cols["admittime"][a], disch=cols["dischtime"][a],
            reason=REASONS[cols["reason"][a]], diag_text=DIAG_TEXTS[diag_l[a]],
            service=SERVICE_WORDS[SERVICES[cols["service"][a]]], cu=CAREUNITS[cols["cu"][a]],
            icu_days=icu_days[a], vent=cols["vent"][a], pneu=cols["pneu"][a],
            died=bool(cols["died"][a]), disloc=cols["discharge_location"][a],
            conds=[WORDS[CONDS[j].codes[pcode[p, j]]] for j in np.flatnonzero(coded[a])],
            drug_ix=list(dict.fromkeys(rx["drug"][rx_first[a] : rx_last[a]].tolist())),
            first_time=int(p_time[fpan]) if fpan >= 0 else -1, first_row=frow,
            last_time=int(p_time[lpan]) if lpan >= 0 else -1,
            last_row=V[lpan].tolist() if lpan >= 0 else frow,
        )  # fmt: skip
        dis_day = rec.disch // DAY * DAY
        emit(a, dis_day, -1, -1, "Discharge summary", "Report", -1,
             discharge_summary(rnd, rec), rec.disch)  # fmt: skip
        span = max(rec.disch - rec.admit, 600)
        kinds = "N" * int(n_nurse[a]) + "P" * int(n_phys[a]) + "R" * int(n_rad[a])
        for kind in kinds:
            t = rec.admit + int(rnd.random() * span * 0.95)
            t -= t % 60
            j = int(np.searchsorted(key_panel, a * np.int64(10**10) + t, "right")) - 1
            row = V[j].tolist() if j >= 0 and p_adm[j] == a else frow
            store = t + 60 * rnd.randint(10, 90)
            day = t // DAY * DAY
            if kind == "N":
                cg = int(cgid_base[a, 0]) + rnd.randint(0, 3)
                emit(
                    a, day, t, store, "Nursing/other", "Report", cg, nursing_note(rnd, rec, row), t
                )
            elif kind == "P":
                desc = rnd.choice(("Physician Resident Progress Note", "Intensivist Note"))
                cg = int(cgid_base[a, 1]) + rnd.randint(0, 3)
                emit(a, day, t, store, "Physician ", desc, cg, physician_note(rnd, rec, row), t)
            else:
                study, text = radiology_note(rnd, rec, t)
                emit(a, day, t, -1, "Radiology", study, -1, text, t)
    order = np.lexsort((np.array(out["sort"], np.int64), np.array(out["adm"], np.int64)))
    res: dict[str, Any] = {}
    for k in ("adm", "chartdate", "charttime", "storetime", "cgid"):
        res[k] = np.array(out[k], np.int64)[order]
    for k in ("category", "description", "text"):
        res[k] = [out[k][i] for i in order]
    return res
