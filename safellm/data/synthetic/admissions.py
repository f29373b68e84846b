"""ADMISSIONS: each patient's chain of admissions, round by round (first admission, 30-day
readmission, planned or later admission), and what one round of admissions looks like.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from safellm.data.synthetic.batch import Batch, Stay
from safellm.data.synthetic.labs import acute_params
from safellm.data.synthetic.meds import DI, admission_drugs
from safellm.data.synthetic.model import (
    coded_conditions,
    death,
    discharge_location,
    readmission_risk,
    stay_times,
)
from safellm.data.synthetic.numeric import (
    DAY,
    HORIZON,
    T2200,
    YEAR,
    Arr,
    choice,
    choice_rows,
    floor_minute,
    secs,
    sig,
)
from safellm.data.synthetic.vocab import (
    CI,
    CU,
    CU_SWAP_P,
    ELECT,
    EMERG,
    MAJOR,
    NB,
    REASON_KEYS,
    REASONS,
    RI,
    SVC,
    URG,
    Reason,
)

_MAX_ROUNDS = 40


def make_admissions(b: Batch) -> None:
    """Fill b.A with every admission of the batch's patients, sorted by patient and time."""
    rng, P, n = b.rng, b.P, b.n
    rounds: list[dict[str, Arr]] = []
    hist = np.full((n, _MAX_ROUNDS + 1), -np.inf)
    pat = np.arange(n)
    admit = P["first_admit"].copy()
    atype = np.where(P["nb"], NB, choice(rng, n, (0.82, 0.15, 0.03)))
    kind = np.zeros(n, dtype=np.int64)  # 0 first, 1 readmit30, 2 planned30, 3 later
    prev_dis = np.full(n, -1, dtype=np.int64)
    r = 0
    while len(pat) and r < _MAX_ROUNDS:
        prior12 = (hist[pat, :r] >= (admit - 365 * DAY)[:, None]).sum(axis=1)
        hist[pat, r] = admit
        R = _admission_round(b, pat, admit, atype, prior12, prev_dis)
        R["round"] = np.full(len(pat), r)
        R["kind"] = kind
        rounds.append(R)
        # next admission of each patient
        m = len(pat)
        alive = R["died"] == 0
        adult = ~P["nb"][pat]
        u = rng.random(m)
        readmit = alive & adult & (u < R["p_readmit"])
        planned = alive & adult & ~readmit & (rng.random(m) < 0.02)
        maj = P["com"][pat][:, [CI[k] for k in MAJOR]].sum(axis=1)
        p_later = sig(-1.95 + 0.3 * P["frail"][pat] + 0.25 * maj)
        later = alive & adult & ~readmit & ~planned & (rng.random(m) < p_later)
        gap = np.where(
            readmit,
            1.0 + 29.0 * rng.beta(1.0, 1.8, m),
            np.where(planned, rng.uniform(7.0, 30.0, m), 31.0 + rng.exponential(420.0, m)),
        )
        nxt = floor_minute(R["dischtime"] + secs(gap))
        go = (readmit | planned | later) & (nxt < P["first_admit"][pat] + HORIZON)
        go &= nxt < T2200
        t_later = choice(rng, m, (0.70, 0.22, 0.08))
        t_readmit = np.where(rng.random(m) < 0.88, EMERG, URG)
        new_type = np.where(readmit, t_readmit, np.where(planned, ELECT, t_later))
        new_kind = np.where(readmit, 1, np.where(planned, 2, 3))
        pat, admit, atype = pat[go], nxt[go], new_type[go]
        kind, prev_dis = new_kind[go], R["discharge_location"][go]
        r += 1
    A = {k: np.concatenate([R[k] for R in rounds]) for k in rounds[0]}
    order = np.lexsort((A["round"], A["pat"]))
    b.A = {k: v[order] for k, v in A.items()}


def _per_reason(reason: Arr, draw: Callable[[Reason, int], Arr]) -> Arr:
    """An index per admission, drawn reason by reason (in REASONS order): draw(reason, count)."""
    out = np.zeros(len(reason), dtype=np.int64)
    for j, rs in enumerate(REASONS):
        sel = reason == j
        if sel.any():
            out[sel] = draw(rs, int(sel.sum()))
    return out


def _clinical_picture(
    rng: np.random.Generator, P: dict[str, Arr], pat: Arr, admit: Arr, atype: Arr
) -> Stay:
    """Reason, severity, complications, ICU and care unit, and service of each admission."""
    m = len(pat)
    nb = P["nb"][pat]
    com = P["com"][pat]
    frail = P["frail"][pat]
    male = P["male"][pat]
    age = P["age0"][pat] + np.where(nb, 0.0, (admit - P["first_admit"][pat]) / YEAR)
    age_s = (age - 65.0) / 15.0

    def has(k: str) -> Arr:
        return com[:, CI[k]]

    # --- reason
    w = np.zeros((m, len(REASONS)))
    elective = atype == ELECT
    for j, rs in enumerate(REASONS):
        w[:, j] = np.where(elective, rs.w_elect, rs.w_emerg)
    w[:, RI["CHF_EXAC"]] *= np.where(has("CHF"), 6.0, 0.0)
    w[:, RI["COPD_EXAC"]] *= np.where(has("COPD"), 6.0, 0.0)
    w[:, RI["GI_BLEED"]] *= np.where(has("LIVER"), 3.0, 1.0)
    w[:, RI["AKI"]] *= np.where(has("RENAL"), 2.0, 1.0)
    w[:, RI["SEPSIS"]] *= np.exp(0.3 * frail)
    w[:, RI["HIP_FX"]] *= np.exp(0.5 * age_s)
    w[:, RI["COLECTOMY"]] *= np.where(has("METS"), 3.0, 1.0)
    w[nb] = 0.0
    w[nb, RI["NEWBORN"]] = 1.0
    reason = choice_rows(rng, w)
    rkey = REASON_KEYS[reason]

    def isr(*keys: str) -> Arr:
        return np.isin(rkey, keys)

    # --- severity and complications
    surgical = np.array([rs.surgical for rs in REASONS])[reason]
    sev = (
        0.5 * frail
        + np.array([rs.sev for rs in REASONS])[reason]
        + 0.25 * age_s
        + 0.8 * rng.standard_normal(m)
    )
    sev = np.where(nb, 0.8 * P["prem"][pat] + 0.3 * rng.standard_normal(m), sev)
    adult = ~nb
    sepsis = isr("SEPSIS") | (adult & (rng.random(m) < 0.03 + 0.03 * surgical))
    shock = sepsis & (sev > 1.3)
    pneu = isr("PNEUMONIA") | (adult & (rng.random(m) < 0.05 + 0.25 * isr("SEPSIS", "RESP_FAIL")))
    uti = adult & ~pneu & (rng.random(m) < 0.05 + 0.04 * ~male + 0.35 * isr("SEPSIS"))
    aki = isr("AKI") | (
        adult & (rng.random(m) < sig(-2.6 + 0.9 * has("RENAL") + 0.6 * sepsis + 0.5 * sev))
    )
    respfail = isr("RESP_FAIL") | (
        adult & (rng.random(m) < sig(-3.0 + 0.9 * sev + 0.8 * pneu + 0.6 * isr("COPD_EXAC")))
    )
    cardiac_surg = isr("CABG", "VALVE")
    vent = respfail & (rng.random(m) < 0.75)
    vent |= cardiac_surg | (adult & (sev > 1.6) & (rng.random(m) < 0.4))
    vent |= isr("STROKE") & (rng.random(m) < 0.2)
    vent |= nb & P["prem"][pat] & (rng.random(m) < 0.3)
    gib = isr("GI_BLEED")
    # --- ICU and care unit
    p_icu = np.array([rs.p_icu for rs in REASONS])[reason]
    icu = rng.random(m) < p_icu
    icu |= vent | shock
    cu = np.array([CU[rs.careunit] for rs in REASONS])[reason]
    swap = adult & (rng.random(m) < 0.12)
    cu = np.where(swap, choice(rng, m, CU_SWAP_P), cu)
    # --- services
    svc_idx = _per_reason(
        reason,
        lambda rs, k: np.array([SVC[x] for x in rs.services])[choice(rng, k, rs.service_p)],
    )
    medical = np.isin(svc_idx, (SVC["MED"],))
    svc_idx = np.where(medical & has("METS") & (rng.random(m) < 0.5), SVC["OMED"], svc_idx)
    return Stay(
        pat=pat, nb=nb, adult=adult, com=com, frail=frail, male=male, age=age, age_s=age_s,
        elective=elective, reason=reason, rkey=rkey, surgical=surgical, sev=sev, sepsis=sepsis,
        shock=shock, pneu=pneu, uti=uti, aki=aki, respfail=respfail, cardiac_surg=cardiac_surg,
        vent=vent, gib=gib, icu=icu, cu=cu, service=svc_idx,
    )  # fmt: skip


def _admission_location(rng: np.random.Generator, prem: Arr, atype: Arr, prev_dis: Arr) -> Arr:
    """ADM_LOCS index by admission type (after an SNF discharge, often from the SNF)."""
    m = len(atype)
    loc_em = choice(rng, m, (0.62, 0.2, 0.12, 0.04, 0.0, 0.02))
    loc_em = np.where((prev_dis == 2) & (rng.random(m) < 0.5), 4, loc_em)
    loc_el = np.where(rng.random(m) < 0.95, 3, 2)
    loc_ur = choice(rng, m, (0.0, 0.7, 0.1, 0.2, 0.0, 0.0))
    loc_nb = np.where(prem | (rng.random(m) < 0.1), 2, 3)
    return np.select(
        [atype == EMERG, atype == ELECT, atype == URG], [loc_em, loc_el, loc_ur], loc_nb
    )


def _admission_round(
    b: Batch, pat: Arr, admit: Arr, atype: Arr, prior12: Arr, prev_dis: Arr
) -> dict[str, Arr]:
    """One admission for each patient in pat, admitted at admit (seconds) with type atype."""
    rng, P = b.rng, b.P
    m = len(pat)
    prem = P["prem"][pat]
    s = _clinical_picture(rng, P, pat, admit, atype)
    nb, cu = s.nb, s.cu
    q = acute_params(rng, P, s)
    died, icu_death = death(rng, s, q)
    T = stay_times(rng, prem, s, admit, icu_death)
    los = T.los
    q["los"] = los
    q["die"] = died.astype(float)
    disloc = discharge_location(rng, s, los, died)
    meds, hr_count = admission_drugs(rng, P, s, los)
    q["hep"] = meds[:, DI["HEP_DRIP"]].astype(float)
    coded = coded_conditions(rng, s)
    # days from leaving the (last) ICU to leaving hospital; infinite without an ICU stay
    last_out = np.where(T.has2, T.out2, T.out1)
    icu_gap = np.where(s.icu, (T.disch - last_out) / DAY, np.inf)
    p_readmit = readmission_risk(s, q, coded, disloc, hr_count, prior12, died, icu_gap)
    # --- admission location / ED times
    adm_loc = _admission_location(rng, prem, atype, prev_dis)
    ed = adm_loc == 0
    edreg = admit - secs(rng.uniform(1.5, 8.0, m) / 24)
    edout = np.maximum(admit + secs(rng.uniform(-0.5, 1.5, m) / 24), edreg + 1800)
    # diagnosis text
    tix = _per_reason(s.reason, lambda rs, k: rng.integers(0, len(rs.texts), k))
    cu2 = np.where(rng.random(m) < 0.8, cu, choice(rng, m, CU_SWAP_P))
    cu2 = np.where(nb, cu, cu2)
    out: dict[str, Arr] = {
        "pat": pat, "admittime": admit, "dischtime": T.disch, "atype": atype,
        "reason": s.reason, "text_idx": tix, "sev": s.sev, "age": s.age, "sepsis": s.sepsis,
        "shock": s.shock, "pneu": s.pneu, "uti": s.uti, "aki": s.aki, "respfail": s.respfail,
        "vent": s.vent, "icu": s.icu, "cu": cu, "cu2": cu2, "has2": T.has2, "in1": T.in1,
        "out1": T.out1, "in2": T.in2, "out2": T.out2, "icu_death": icu_death,
        "died": died.astype(np.int64), "los": los, "discharge_location": disloc,
        "service": s.service, "meds": meds, "hr_count": hr_count, "coded": coded,
        "prior12": prior12, "p_readmit": p_readmit, "admission_location": adm_loc,
        "ed": ed, "edregtime": edreg, "edouttime": edout, "elective": s.elective,
        "dbsource": (rng.random(m) < np.where(nb, 0.8, 0.55)).astype(np.int64),
        "insurance": np.where(rng.random(m) < 0.9, P["insurance"][pat],
                              choice(rng, m, (0.4, 0.35, 0.2, 0.03, 0.02))),
    }  # fmt: skip
    out.update(q)
    return out
