"""MICROBIOLOGYEVENTS: cultures (blood, urine, sputum, MRSA screen, stool) that turn positive
more often with sepsis, UTI and pneumonia, and list antibiotic sensitivities.
"""

from __future__ import annotations

import numpy as np

from safellm.data.synthetic.batch import Batch
from safellm.data.synthetic.numeric import Arr, choice, floor_minute, rank_in_group, secs

# MIMIC specimen, organism and antibiotic item ids.
SPECS = (
    (70012, "BLOOD CULTURE"),
    (70079, "URINE"),
    (70062, "SPUTUM"),
    (70091, "MRSA SCREEN"),
    (70064, "STOOL"),
)
ORGS = (
    (80002, "ESCHERICHIA COLI", "gn"),
    (80023, "STAPH AUREUS COAG +", "staph"),
    (80155, "STAPHYLOCOCCUS, COAGULASE NEGATIVE", "staph"),
    (80004, "KLEBSIELLA PNEUMONIAE", "gn"),
    (80053, "ENTEROCOCCUS SP.", "entero"),
    (80076, "STREPTOCOCCUS PNEUMONIAE", "strep"),
    (80026, "PSEUDOMONAS AERUGINOSA", "pseudo"),
    (80017, "PROTEUS MIRABILIS", "gn"),
    (80075, "YEAST", "none"),
    (80014, "SERRATIA MARCESCENS", "gn"),
    (80293, "POSITIVE FOR METHICILLIN RESISTANT STAPH AUREUS", "none"),
    (80139, "CLOSTRIDIUM DIFFICILE", "none"),
)
_ORG_P = (  # per specimen type, over ORGS
    (0.25, 0.2, 0.25, 0.12, 0.1, 0.05, 0.03, 0, 0, 0, 0, 0),
    (0.5, 0, 0, 0.15, 0.1, 0, 0.08, 0.1, 0.07, 0, 0, 0),
    (0.1, 0.3, 0, 0.15, 0, 0.15, 0.2, 0, 0, 0.1, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0),
)
ABX = {
    90004: "AMPICILLIN", 90022: "AMPICILLIN/SULBACTAM", 90005: "CEFAZOLIN", 90018: "CEFTRIAXONE",
    90017: "CEFTAZIDIME", 90028: "CEFEPIME", 90019: "CIPROFLOXACIN", 90012: "GENTAMICIN",
    90013: "TOBRAMYCIN", 90029: "MEROPENEM", 90026: "PIPERACILLIN/TAZO",
    90008: "TRIMETHOPRIM/SULFA",
    90010: "NITROFURANTOIN", 90016: "OXACILLIN", 90015: "VANCOMYCIN", 90007: "CLINDAMYCIN",
    90006: "ERYTHROMYCIN", 90025: "LEVOFLOXACIN", 90011: "TETRACYCLINE", 90027: "RIFAMPIN",
    90002: "PENICILLIN", 90003: "PENICILLIN G", 90031: "LINEZOLID", 90020: "IMIPENEM",
    90014: "AMIKACIN",
}  # fmt: skip
_ABX_PANELS: dict[str, tuple[int, ...]] = {
    "gn": (90004, 90022, 90005, 90018, 90017, 90028, 90019, 90012, 90013, 90029, 90026, 90008),
    "staph": (90016, 90015, 90012, 90007, 90006, 90025, 90011, 90027, 90008, 90002),
    "entero": (90004, 90015, 90003, 90031, 90010),
    "strep": (90003, 90018, 90006, 90025, 90015),
    "pseudo": (90028, 90017, 90019, 90012, 90013, 90029, 90026, 90020, 90014),
}
DIL_S = ("<=0.25", "<=0.5", "<=1", "<=2", "<=4", "1", "2", "4")
DIL_I = ("8", "16")
DIL_R = ("=>4", "=>8", "=>16", "=>32", "=>64")


def micro(b: Batch) -> dict[str, Arr]:
    """Culture result rows (one per antibiotic of a positive culture), local indices."""
    rng, A, P = b.rng, b.A, b.P
    na = len(A["pat"])
    nb = P["nb"][A["pat"]].astype(float)
    ad = 1.0 - nb
    f = {k: A[k].astype(float) for k in ("sepsis", "pneu", "uti", "icu", "vent", "respfail")}
    los = A["los"]
    lam = np.stack([
        ad * (0.5 * f["icu"] + 1.8 * f["sepsis"] + 0.6 * f["pneu"] + 0.4 * f["uti"]
              + 0.05 * np.minimum(los, 30)) + nb * 0.8,
        ad * (0.35 + 0.8 * f["uti"] + 0.4 * f["sepsis"]),
        ad * (0.1 + 0.9 * f["pneu"] + 0.5 * f["respfail"] * f["vent"]),
        ad * 0.55 * f["icu"],
        ad * np.minimum(0.03 + 0.01 * los, 0.4),
    ], axis=1)  # fmt: skip
    cnt = np.minimum(rng.poisson(lam), 6)
    cnt[:, 3] = np.minimum(cnt[:, 3], 1)
    cnt[:, 4] = np.minimum(cnt[:, 4], 2)
    adm = np.repeat(np.repeat(np.arange(na), 5), cnt.ravel())
    spec = np.repeat(np.tile(np.arange(5), na), cnt.ravel())
    k = len(adm)
    early = rng.random(k) < 0.6
    t = np.where(early, rng.random(k) * np.minimum(1.0, los[adm]), rng.random(k) * los[adm])
    time = floor_minute(A["admittime"][adm] + secs(t))
    sep, uti, pneu = A["sepsis"][adm], A["uti"][adm], A["pneu"][adm]
    p_pos = np.select(
        [spec == 0, spec == 1, spec == 2, spec == 3],
        [np.where(nb[adm] > 0, 0.02, np.where(sep, 0.35, 0.04)), np.where(uti, 0.75, 0.12),
         np.where(pneu, 0.45, 0.15), np.full(k, 0.08)],
        0.12,
    )  # fmt: skip
    pos = rng.random(k) < p_pos
    orgmat = np.stack([choice(rng, na, _ORG_P[s]) for s in range(5)], axis=1)
    org = np.where(pos, orgmat[adm, spec], -1)
    cls_names = ("gn", "staph", "entero", "strep", "pseudo")
    org_cls = np.array([cls_names.index(o[2]) if o[2] in cls_names else -1 for o in ORGS])
    cls = np.where(org >= 0, org_cls[np.maximum(org, 0)], -1)
    plen = np.array([len(_ABX_PANELS[c]) for c in cls_names])
    nrow = np.where(cls >= 0, plen[np.maximum(cls, 0)], 1)
    order = np.lexsort((spec, time, adm))
    adm, spec, time, org, cls, nrow = (x[order] for x in (adm, spec, time, org, cls, nrow))
    r_adm, r_spec, r_time, r_org, r_cls = (np.repeat(x, nrow) for x in (adm, spec, time, org, cls))
    r_cult = np.repeat(np.arange(len(adm)), nrow)
    r_rank = rank_in_group(r_cult)
    pmax = int(plen.max())
    pmat = np.full((len(cls_names), pmax), -1, np.int64)
    for ci, c in enumerate(cls_names):
        pmat[ci, : len(_ABX_PANELS[c])] = _ABX_PANELS[c]
    ab = np.where(r_cls >= 0, pmat[np.maximum(r_cls, 0), np.minimum(r_rank, pmax - 1)], -1)
    mdr = rng.random(na) < 0.15
    p_r = np.where(mdr[r_adm], 0.45, 0.08)
    p_r = np.where((ab == 90016) & (r_org == 1), 0.45, p_r)  # MRSA
    u = rng.random(len(r_adm))
    interp = np.where(ab < 0, -1, np.where(u < p_r, 2, np.where(u < p_r + 0.04, 1, 0)))
    dil_s = rng.integers(0, len(DIL_S), len(r_adm))
    dil_i = rng.integers(0, len(DIL_I), len(r_adm))
    dil_r = rng.integers(0, len(DIL_R), len(r_adm))
    return {"adm": r_adm, "spec": r_spec, "time": r_time, "org": r_org, "ab": ab, "interp": interp,
            "dil_s": dil_s, "dil_i": dil_i, "dil_r": dil_r}  # fmt: skip
