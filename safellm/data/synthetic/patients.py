"""PATIENTS: who the batch's patients are (sex, age, frailty, chronic conditions, baseline
labs, demographics) and when they are born and die.
"""

from __future__ import annotations

import numpy as np

from safellm.data.synthetic.batch import Batch
from safellm.data.synthetic.numeric import (
    DAY,
    HORIZON,
    T2100,
    T2187,
    T2200,
    Arr,
    choice,
    choice_or_none,
    floor_day,
    floor_minute,
    run_ends,
    secs,
    sig,
)
from safellm.data.synthetic.vocab import (
    CI,
    CONDS,
    COUPLING,
    ETHNICITY_P,
    LANG_P,
    LANGUAGES,
    MARITAL,
    MARITAL_P,
    RELIGION_P,
)


def make_patients(b: Batch) -> None:
    """Fill b.P: sex, age, frailty, chronic conditions, baseline labs and demographics."""
    rng, n = b.rng, b.n
    nb = rng.random(n) < 0.10
    male = rng.random(n) < np.where(nb, 0.52, 0.56)
    age0 = np.where(nb, 0.0, np.clip(rng.normal(63.0, 17.0, n), 18.0, 100.0))
    frail = rng.standard_normal(n) + np.where(nb, 0.0, 0.025 * (age0 - 63.0))
    age_s = (age0 - 65.0) / 15.0
    com = np.zeros((n, len(CONDS)), dtype=bool)
    code = np.zeros((n, len(CONDS)), dtype=np.int64)
    for j, c in enumerate(CONDS):
        lin = c.a + c.b_age * age_s + c.c_frail * frail
        for other, coef in COUPLING.get(c.key, ()):
            lin = lin + coef * com[:, CI[other]]
        if c.key == "HYPOTHY":
            lin = lin + 0.7 * ~male
        if c.key == "ALCOHOL":
            lin = lin + 0.7 * male
        com[:, j] = (rng.random(n) < sig(lin)) & ~nb
        code[:, j] = choice(rng, n, c.code_p)
    primary_cancer = choice(rng, n, (0.4, 0.25, 0.25, 0.1))
    primary_cancer = np.where(male & (primary_cancer == 1), 3, primary_cancer)
    primary_cancer = np.where(~male & (primary_cancer == 3), 1, primary_cancer)
    renal_code = np.array(CONDS[CI["RENAL"]].codes)[code[:, CI["RENAL"]]]
    esrd = com[:, CI["RENAL"]] & np.isin(renal_code, ("5856", "40391"))
    warf = com[:, CI["ARRHY"]] & (rng.random(n) < 0.5)
    tobacco = (rng.random(n) < 0.22) & ~nb
    gerd = (rng.random(n) < 0.15) & ~nb
    prem = nb & (frail > 1.2)

    def has(k: str) -> Arr:
        return com[:, CI[k]].astype(float)

    ln = rng.standard_normal
    renal, liver, mets = has("RENAL"), has("LIVER"), has("METS")
    cr_b = np.where(male, 0.95, 0.75) * np.exp(0.15 * ln(n)) * (1 + 0.004 * (age0 - 65))
    cr_b = cr_b * (1.0 + renal * rng.uniform(0.6, 2.2, n))
    cr_b = np.where(esrd, rng.uniform(4.0, 8.0, n), cr_b)
    P: dict[str, Arr] = {
        "nb": nb, "male": male, "age0": age0, "frail": frail, "com": com, "code": code,
        "primary_cancer": primary_cancer, "esrd": esrd, "warf": warf, "tobacco": tobacco,
        "gerd": gerd, "prem": prem,
    }  # fmt: skip
    P["cr_b"] = np.where(nb, 0.5 * np.exp(0.15 * ln(n)), cr_b)
    P["bun_b"] = np.where(nb, 8.0, 14.0 * (cr_b / 0.85) ** 0.8) * np.exp(0.22 * ln(n))
    hgb = (np.where(male, 14.2, 12.8) + 0.9 * ln(n) - 2.0 * has("ANEMIA") - 1.0 * renal
           - 1.2 * mets - 0.8 * liver - 0.3 * has("CHF"))  # fmt: skip
    P["hgb_b"] = np.where(nb, 16.5 + 1.5 * ln(n), np.maximum(hgb, 7.0))
    P["wbc_b"] = np.where(nb, 14.0, 7.2) * np.exp(0.22 * ln(n)) * (1 - 0.15 * mets)
    P["plt_b"] = np.where(nb, 260.0, 250.0) * np.exp(0.25 * ln(n)) * (1 - 0.55 * liver)
    P["na_b"] = 139.5 + 1.8 * ln(n) - 2.5 * has("CHF") - 3.0 * liver
    P["k_b"] = np.where(nb, 4.8, 4.1) + 0.25 * ln(n) + 0.4 * renal
    P["hco3_b"] = np.where(nb, 22.0, 25.5) + 1.5 * ln(n) - 2.0 * renal + 3.0 * has("COPD")
    P["glu_b"] = np.where(nb, 75.0, np.where(com[:, CI["DIAB"]], 150.0, 98.0)) * np.exp(
        0.12 * ln(n)
    )
    P["lac_b"] = np.where(nb, 1.8, 1.1) * np.exp(0.2 * ln(n)) * (1 + 0.4 * liver)
    alb = 4.0 + 0.25 * ln(n) - 0.9 * liver - 0.5 * mets - 0.6 * has("MALNUT") - 0.2 * renal
    P["alb_b"] = np.where(nb, 3.3, alb - 0.15 * np.clip(frail, -2, 3))
    P["mg_b"] = 2.0 + 0.12 * ln(n) + 0.2 * renal
    P["ca_b"] = 9.1 + 0.3 * ln(n)
    P["phos_b"] = np.where(nb, 5.5, 3.5) * np.exp(0.1 * ln(n)) + 1.2 * renal
    P["inr_b"] = np.exp(0.05 * ln(n)) * (1 + 0.5 * liver) + 1.4 * warf
    P["ptt_b"] = 29.0 * np.exp(0.08 * ln(n))
    P["alt_b"] = 22.0 * np.exp(0.35 * ln(n)) * (1 + 0.8 * liver)
    P["ast_b"] = 25.0 * np.exp(0.3 * ln(n)) * (1 + 1.0 * liver)
    P["bili_b"] = np.where(nb, 6.0, 0.6) * np.exp(0.3 * ln(n)) * (1 + 2.5 * liver)
    P["ag_b"] = 11.0 + 1.2 * ln(n) + 2.0 * renal
    # demographics (patient level)
    P["ethnicity"] = choice(rng, n, ETHNICITY_P)
    ins_old = choice(rng, n, (0.85, 0.1, 0.03, 0.01, 0.01))
    ins_young = choice(rng, n, (0.15, 0.55, 0.22, 0.05, 0.03))
    ins_nb = choice(rng, n, (0.0, 0.65, 0.33, 0.02, 0.0))
    P["insurance"] = np.where(nb, ins_nb, np.where(age0 >= 65, ins_old, ins_young))
    lang = choice_or_none(rng, n, LANG_P)
    P["language"] = np.where(nb, len(LANGUAGES), lang)  # == len -> empty
    rel = choice(rng, n, RELIGION_P)
    P["religion"] = np.where(nb, 1, rel)
    mar = choice_or_none(rng, n, MARITAL_P)
    mar = np.where((age0 < 30) & (mar == 2), 1, mar)
    P["marital"] = np.where(nb, len(MARITAL), mar)
    P["first_admit"] = floor_minute(rng.integers(T2100, T2187, n))
    P["lastname"] = rng.integers(100, 99999, n)
    b.P = P


def patient_deaths(b: Batch) -> None:
    """PATIENTS dates: death in hospital or later (SSN source), date of birth (>= 90: ~300 y)."""
    rng, A, P, n = b.rng, b.A, b.P, b.n
    dod = np.zeros(n, np.int64)
    hosp = np.zeros(n, bool)
    died = A["died"] == 1
    dod[A["pat"][died]] = A["dischtime"][died]
    hosp[A["pat"][died]] = True
    last = run_ends(A["pat"])
    lp = A["pat"][last]
    com = P["com"][lp].astype(float)
    lin = (-1.3 + 0.045 * (A["age"][last] - 65.0) + 0.45 * P["frail"][lp]
           + 1.5 * com[:, CI["METS"]] + 0.5 * com[:, CI["CHF"]] + 0.4 * com[:, CI["RENAL"]]
           + 0.4 * com[:, CI["COPD"]])  # fmt: skip
    hospice = A["discharge_location"][last] == 6
    p = np.where(P["nb"][lp], 0.0, np.where(hospice, 0.95, sig(lin)))
    m = len(lp)
    gap = np.where(hospice, rng.uniform(1.0, 40.0, m), rng.exponential(600.0, m))
    t = A["dischtime"][last] + secs(gap)
    ok = (A["died"][last] == 0) & (rng.random(m) < p)
    ok &= (t < P["first_admit"][lp] + HORIZON + 365 * DAY) & (t < T2200)
    dod[lp[ok]] = t[ok]
    P["dod"] = dod
    P["dod_hosp"] = hosp
    nb, age0, fa = P["nb"], P["age0"], P["first_admit"]
    years = np.where(age0 >= 90.0, 300.0 + rng.random(n), age0)
    P["dob"] = floor_day(np.where(nb, fa, fa - secs(years * 365.2425)))
    P["dod_ssn"] = (dod > 0) & (~hosp | (rng.random(n) < 0.7))
