"""NOTEEVENTS notes charted during the stay: nursing, physician and radiology notes."""

from __future__ import annotations

import random

from safellm.data.synthetic.note_text import Rec, clock, deid_date, lab_phrase
from safellm.data.synthetic.numeric import DAY

_NOW_KEYS = ("k", "cr", "hct", "wbc", "lac")  # labs quoted from the latest panel

_RADIO = {
    "pneu": "Right lower lobe opacity concerning for pneumonia.",
    "chf": "Mild pulmonary vascular congestion with small bilateral pleural effusions.",
    "vent": "Endotracheal tube terminates 4 cm above the carina. Nasogastric tube in the stomach.",
    "none": "No acute cardiopulmonary process.",
    "stroke": "Hypodensity in the left MCA territory consistent with acute infarct.",
}
_NEURO_VENT = ("Sedated on propofol, arousable to voice.", "Sedated, opens eyes to voice.")
_NEURO = ("A+Ox3, MAE, following commands.", "Alert, oriented x2, intermittently confused.")
_PLAN = (
    "Continue current management.",
    "Monitor lytes, replete prn.",
    "Wean O2 as tolerated.",
    "Family meeting tomorrow.",
)
_EVENTS = (
    "No acute events overnight.",
    "Febrile to 101.2 overnight, cultures sent.",
    "Hypotensive overnight, responded to fluids.",
)
_PROBLEM = (
    "continue current therapy.",
    "improving, continue to monitor.",
    "remains tenuous, follow closely.",
)
_HEART = ("Heart size is normal.", "The heart is mildly enlarged.", "No pneumothorax.")


def nursing_note(rnd: random.Random, r: Rec, row: list[float]) -> str:
    """An ICU nursing progress note; row: the latest lab panel's values."""
    labs_now = lab_phrase(row, _NOW_KEYS)
    rhythm = "AF" if "atrial fibrillation" in r.conds else rnd.choice(("NSR", "SR", "ST"))
    if r.vent:
        resp = "Intubated on AC, suctioned for thick secretions."
    else:
        resp = f"On {rnd.randint(2, 4)}L NC, sats {rnd.randint(92, 99)}%."
    abx = r.abx
    pmh = f" PMH: {', '.join(r.conds[:5])}." if r.conds else ""
    return "\n".join([
        f"{r.cu} Nursing Progress Note {rnd.choice(('0700-1900', '1900-0700'))}",
        f"{r.age} yo {r.sex} admitted with {r.reason.words}.{pmh}",
        f"Neuro: {rnd.choice(_NEURO_VENT if r.vent else _NEURO)}",
        f"CV: HR {rnd.randint(62, 118)} {rhythm}, BP {rnd.randint(88, 150)}/{rnd.randint(40, 85)}. "
        + rnd.choice(("Pulses palpable.", "Extremities warm.", "+1 edema bilaterally.")),
        f"Resp: {resp}",
        f"GI/GU: {rnd.choice(('Abd soft, +BS.', 'Tolerating diet.', 'NPO.'))} "
        f"Foley draining {rnd.randint(20, 90)}cc/hr.",
        f"Labs: {labs_now}." if labs_now else "Labs: pending.",
        f"ID: On {', '.join(abx)}." if abx else "ID: Afebrile.",
        f"Plan: {rnd.choice(_PLAN)}",
    ]) + "\n"  # fmt: skip


def physician_note(rnd: random.Random, r: Rec, row: list[float]) -> str:
    """An ICU physician progress note; row: the latest lab panel's values."""
    labs_now = lab_phrase(row, _NOW_KEYS)
    words = r.reason.words
    return "\n".join([
        f"{r.cu} {rnd.choice(('Resident', 'Attending'))} Progress Note",
        f"Chief Complaint: {r.reason.complaint}",
        f"24 Hour Events: {rnd.choice(_EVENTS)}",
        f"Labs / Radiology: {labs_now}" if labs_now else "Labs / Radiology: none new",
        "Assessment and Plan:",
        f"{r.age} yo {r.sex} with {', '.join(r.conds[:4]) or 'no PMH'} admitted with {words}.",
        f"# {words.upper()}: {rnd.choice(_PROBLEM)}",
        f"# FEN: replete lytes prn, {rnd.choice(('regular diet', 'NPO', 'tube feeds'))}",
        f"# PPx: {'heparin SC' if 'Heparin' in r.drugs else 'pneumoboots'}, PPI",
        "# Code: Full code",
    ]) + "\n"  # fmt: skip


def radiology_note(rnd: random.Random, r: Rec, t: int) -> tuple[str, str]:
    """(study, report) of a chest film or head CT at time t."""
    if r.reason.key == "STROKE":
        study, find = "CT HEAD W/O CONTRAST", "stroke"
    else:
        study = "CHEST (PORTABLE AP)" if r.icu_days > 0 else "CHEST (PA & LAT)"
        chf = any("heart failure" in c for c in r.conds)
        find = "vent" if r.vent else "pneu" if r.pneu else "chf" if chf else "none"
    why = rnd.choice(("eval for infiltrate", "eval for interval change",
                      "ETT placement" if r.vent else "SOB"))  # fmt: skip
    prior = max(t - DAY * rnd.randint(1, 3), r.admit)
    clip = rnd.randint(10000, 99999)
    text = "\n".join([
        f"{deid_date(t)} {clock(t)}",
        f"     {study}{' ' * max(4, 40 - len(study))}Clip # [**Clip Number (Radiology) {clip}**]",
        f"     Reason: {why}",
        f"     Admitting Diagnosis: {r.diag_text}",
        " " + "_" * 78,
        "FINAL REPORT",
        f"INDICATION: {r.age} year old {r.sex_word} with {r.reason.words}.",
        f"COMPARISON: {rnd.choice(('None.', deid_date(prior)))}",
        f"FINDINGS: {_RADIO[find]} {rnd.choice(_HEART)}",
        f"IMPRESSION: {_RADIO[find]}",
    ]) + "\n"  # fmt: skip
    return study, text
