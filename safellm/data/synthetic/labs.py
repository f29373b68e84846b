"""Labs: the latent lab model, each admission's acute deviations, and the LABEVENTS panels.

value(t) = baseline + acute * exp(-t / tau) (log scale for creatinine, BUN, WBC, lactate...),
plus a creatinine rise over the last 48 h and a terminal day for deaths; measured values add
noise and are rounded as MIMIC reports them.
"""

from __future__ import annotations

import numpy as np

from safellm.data.synthetic.batch import Batch, Stay, first_icu_days, in_icu_stays
from safellm.data.synthetic.meds import DI
from safellm.data.synthetic.numeric import (
    DAY,
    T2100,
    T2200,
    Arr,
    floor_minute,
    run_starts,
    secs,
    sig,
)
from safellm.data.synthetic.vocab import CI, GROUPS, LAB_IDX, LABS

_TAU = {"cr": 2.0, "bun": 2.5, "wbc": 2.5, "plt": 3.0, "na": 2.0, "k": 1.0, "hco3": 1.5, "glu": 1.5,
        "lac": 0.7, "inr": 2.0, "lft": 2.0}  # fmt: skip


def _ramp(q: dict[str, Arr], t: Arr) -> Arr:
    los = q["los"]
    span = np.minimum(2.0, np.maximum(los, 1e-3))
    return np.clip((t - np.maximum(los - 2.0, 0.0)) / span, 0.0, 1.0)


def _renal(q: dict[str, Arr], t: Arr) -> Arr:
    """Log-scale kidney deviation: the acute one fading, plus the rise over the last 48 h."""
    return q["cr_a"] * np.exp(-t / _TAU["cr"]) + q["rise"] * _ramp(q, t)


def _alb_course(t: Arr) -> Arr:
    return 0.8 + 0.2 * (1.0 - np.exp(-t / 3.0))


def _terminal(q: dict[str, Arr], t: Arr) -> Arr:
    return q["die"] * np.clip(t - (q["los"] - 1.0), 0.0, 1.0)


def latent(key: str, q: dict[str, Arr], t: Arr) -> Arr:
    """Noise-free value of lab `key` at t days after admission (q: per-row parameters)."""
    e = np.exp
    if key == "cr":
        # term by term, not log + _renal(): the sum's rounding is part of the seeded output
        return e(np.log(q["cr_b"]) + q["cr_a"] * e(-t / _TAU["cr"]) + q["rise"] * _ramp(q, t))
    if key == "bun":
        return e(np.log(q["bun_b"]) + 0.8 * _renal(q, t) + q["bunx_a"] * e(-t / _TAU["bun"]))
    if key == "hgb":
        return q["hgb_b"] + q["hgb_a"] * (0.7 + 0.3 * (1.0 - e(-t / 1.5)))
    if key == "wbc":
        return e(np.log(q["wbc_b"]) + q["wbc_a"] * e(-t / _TAU["wbc"]))
    if key == "plt":
        return e(np.log(q["plt_b"]) + q["plt_a"] * e(-t / _TAU["plt"]))
    if key == "na":
        return q["na_b"] + q["na_a"] * e(-t / _TAU["na"])
    if key == "k":
        return q["k_b"] + q["k_a"] * e(-t / _TAU["k"]) + 0.6 * _terminal(q, t)
    if key == "hco3":
        return q["hco3_b"] + q["hco3_a"] * e(-t / _TAU["hco3"]) - 5.0 * _terminal(q, t)
    if key == "glu":
        return e(np.log(q["glu_b"]) + q["glu_a"] * e(-t / _TAU["glu"]))
    if key == "lac":
        return e(np.log(q["lac_b"]) + q["lac_a"] * e(-t / _TAU["lac"]) + 1.0 * _terminal(q, t))
    if key == "alb":
        return q["alb_b"] + q["alb_a"] * _alb_course(t)
    if key == "mg":
        return q["mg_b"] + 0.0 * t
    if key == "ca":
        return q["ca_b"] + 0.8 * q["alb_a"] * _alb_course(t)
    if key == "phos":
        return q["phos_b"] * e(0.5 * _renal(q, t))
    if key == "inr":
        return e(np.log(q["inr_b"]) + q["inr_a"] * e(-t / _TAU["inr"]))
    if key == "ptt":
        return q["ptt_b"] * (1.0 + 1.2 * q["hep"]) + 0.0 * t
    if key in ("alt", "ast"):
        return e(np.log(q[f"{key}_b"]) + q["lft_a"] * e(-t / _TAU["lft"]))
    if key == "bili":
        return e(np.log(q["bili_b"]) + 0.5 * q["lft_a"] * e(-t / 3.0))
    raise KeyError(key)


# per-patient baselines and per-admission parameters of latent()
BASE_KEYS = ("cr_b", "bun_b", "hgb_b", "wbc_b", "plt_b", "na_b", "k_b", "hco3_b", "glu_b", "lac_b",
             "alb_b", "mg_b", "ca_b", "phos_b", "inr_b", "ptt_b", "alt_b", "ast_b", "bili_b",
             "ag_b")  # fmt: skip
ACUTE_KEYS = ("cr_a", "bunx_a", "hgb_a", "wbc_a", "plt_a", "na_a", "k_a", "hco3_a", "glu_a",
              "lac_a", "alb_a", "inr_a", "lft_a", "rise", "los", "die", "hep")  # fmt: skip


def lab_params(A: dict[str, Arr], rows: Arr | None = None) -> dict[str, Arr]:
    """latent()'s parameters of the admissions in A (of A's rows `rows`, if given)."""
    if rows is None:
        return {k: A[k] for k in (*BASE_KEYS, *ACUTE_KEYS)}
    return {k: A[k][rows] for k in (*BASE_KEYS, *ACUTE_KEYS)}


def acute_params(rng: np.random.Generator, P: dict[str, Arr], s: Stay) -> dict[str, Arr]:
    """Baselines and acute deviations of one round's admissions (los, die, hep: placeholders)."""
    pat, nb, adult, sev, sepsis, shock, pneu, aki, surgical, gib = (
        s.pat, s.nb, s.adult, s.sev, s.sepsis, s.shock, s.pneu, s.aki, s.surgical, s.gib
    )  # fmt: skip
    has, isr, m = s.has, s.isr, len(s.pat)
    q: dict[str, Arr] = {k: P[k][pat] for k in BASE_KEYS}
    n01 = rng.standard_normal
    spos = np.maximum(sev, 0.0)
    q["cr_a"] = (0.10 * sev + aki * np.log(rng.uniform(1.6, 3.0, m)) + 0.25 * sepsis
                 + 0.15 * isr("CHF_EXAC") + 0.08 * n01(m))  # fmt: skip
    q["bunx_a"] = 0.25 * gib + 0.15 * isr("CHF_EXAC") + 0.1 * spos
    hgb_a = -(0.3 * spos + 0.4) - 2.5 * gib - 2.0 * surgical - 0.8 * sepsis + 0.5 * n01(m)
    q["hgb_a"] = np.where(nb, 0.3 * n01(m), np.minimum(hgb_a, 0.3))
    leuko = sepsis & (rng.random(m) < 0.1)
    q["wbc_a"] = (np.where(leuko, -0.7, sepsis * (0.8 + 0.35 * n01(m))) + 0.45 * pneu
                  + 0.35 * surgical + 0.1 * sev + 0.15 * n01(m))  # fmt: skip
    q["plt_a"] = -0.35 * sepsis - 0.08 * spos + 0.1 * n01(m)
    hypo_na = rng.random(m) < 0.08
    q["na_a"] = 2.5 * n01(m) - 2.0 * isr("CHF_EXAC") - 6.0 * hypo_na
    q["k_a"] = 0.35 * n01(m) + 0.6 * aki
    q["hco3_a"] = -(2.5 * sepsis + 1.5 * spos + 2.5 * aki + 4.0 * shock) + 1.5 * n01(m)
    q["glu_a"] = 0.10 * sev + 0.15 * has("DIAB") + 0.1 * n01(m)
    q["lac_a"] = 0.7 * sepsis + 0.7 * shock + 0.3 * spos + 0.2 * gib + 0.25 * n01(m)
    q["lac_a"] = np.where(nb, 0.2 * n01(m), q["lac_a"])
    q["alb_a"] = np.where(nb, 0.0, -0.5 * sepsis - 0.15 * spos + 0.15 * n01(m))
    q["inr_a"] = 0.15 * sepsis + 0.1 * has("LIVER") + 0.05 * n01(m)
    q["lft_a"] = 0.3 * sepsis + 0.8 * shock + 0.2 * n01(m)
    p_rise = sig(-2.0 + 0.9 * has("RENAL") + 0.5 * has("CHF") + 0.25 * sev + 0.5 * aki)
    q["rise"] = np.where(adult & (rng.random(m) < p_rise), np.log1p(rng.uniform(0.25, 0.8, m)), 0.0)
    q["los"] = np.full(m, np.inf)
    q["die"] = np.zeros(m)
    q["hep"] = np.zeros(m)
    return q


def _draw_groups(rng: np.random.Generator, prob: dict[str, Arr], n: int) -> dict[str, Arr]:
    """Which lab groups each of n panels includes (group -> bool array), by probability."""
    return {g: rng.random(n) < p for g, p in prob.items()}


def _at_least_cbc(inc: dict[str, Arr]) -> None:
    """A panel that drew no group gets a CBC."""
    inc["CBC"] |= ~np.any(np.stack(list(inc.values())), axis=0)


def inpatient_labs(b: Batch) -> dict[str, Arr]:
    """Panels during the stays: admission, ward and ICU, pre-discharge and discharge day."""
    rng, A, P = b.rng, b.A, b.P
    na = len(A["pat"])
    los = A["los"]
    nb = P["nb"][A["pat"]]
    # panel times (days since admission)
    icu_days = first_icu_days(A)
    icu2_days = np.where(A["has2"], (A["out2"] - A["in2"]) / DAY, 0.0)
    rate_w = np.where(nb, 0.5, 2.05)
    rate_i = np.where(nb, 0.3, 1.9)
    n_w = rng.poisson(rate_w * los)
    n_i1 = rng.poisson(rate_i * icu_days)
    n_i2 = rng.poisson(rate_i * icu2_days)
    first_t = np.minimum(rng.uniform(0.02, 0.2, na), los * 0.5)
    last_ok = los > 0.6
    last_t = los - rng.uniform(0.1, 0.4, na)
    mid_ok = (los > 2.5) & ~nb
    mid_t = los - rng.uniform(1.2, 1.8, na)
    parts_adm = [
        np.arange(na),
        np.flatnonzero(last_ok),
        np.flatnonzero(mid_ok),
        np.repeat(np.arange(na), n_w),
        np.repeat(np.arange(na), n_i1),
        np.repeat(np.arange(na), n_i2),
    ]
    a_w, a_i1, a_i2 = parts_adm[3], parts_adm[4], parts_adm[5]
    i1s = (A["in1"] - A["admittime"]) / DAY
    i2s = (A["in2"] - A["admittime"]) / DAY
    parts_t = [
        first_t,
        last_t[last_ok],
        mid_t[mid_ok],
        rng.random(len(a_w)) * los[a_w],
        i1s[a_i1] + rng.random(len(a_i1)) * icu_days[a_i1],
        i2s[a_i2] + rng.random(len(a_i2)) * icu2_days[a_i2],
    ]
    forced = [np.ones(len(parts_adm[i]), dtype=bool) for i in range(3)] + [
        np.zeros(len(parts_adm[i]), dtype=bool) for i in range(3, 6)
    ]
    p_adm = np.concatenate(parts_adm)
    p_t = np.clip(np.concatenate(parts_t), 0.0, los[np.concatenate(parts_adm)] - 1 / 1440)
    p_forced = np.concatenate(forced)
    p_t = np.maximum(p_t, 0.0)
    p_time = floor_minute(A["admittime"][p_adm] + secs(p_t))
    order = np.lexsort((p_time, p_adm))
    p_adm, p_t, p_forced, p_time = p_adm[order], p_t[order], p_forced[order], p_time[order]
    # de-duplicate panels at the same minute
    keep = run_starts(p_adm, p_time)
    p_adm, p_t, p_forced, p_time = p_adm[keep], p_t[keep], p_forced[keep], p_time[keep]
    npn = len(p_adm)
    in_1, in_2 = in_icu_stays(A, p_adm, p_time)
    in_icu = in_1 | in_2
    first_day = p_t < 1.0
    pnb = nb[p_adm]
    sep = A["sepsis"][p_adm]
    liver = P["com"][A["pat"][p_adm], CI["LIVER"]]
    anticoag = A["meds"][p_adm][:, [DI["WARF"], DI["HEP_DRIP"]]].any(axis=1)
    prob = {
        "CBC": np.where(pnb, 0.7, 0.93),
        "CHEM": np.where(pnb, 0.35, 0.95),
        "MCP": np.where(pnb, 0.2, np.where(in_icu, 0.8, 0.6)),
        "LAC": np.where(
            pnb,
            0.05,
            np.where(first_day & in_icu, 0.85, np.where(sep, 0.5, np.where(in_icu, 0.3, 0.05))),
        ),
        "ALB": np.where(first_day, 0.5, np.where(liver, 0.3, 0.08)),
        "COAG": np.where(first_day, 0.75, np.where(anticoag, 0.6, 0.22)),
        "LFT": np.where(first_day, 0.45, np.where(liver, 0.35, 0.06)),
    }
    inc = _draw_groups(rng, prob, npn)
    # admission, pre-discharge and discharge-day panels always carry CBC + chemistry (adults)
    force = p_forced & ~pnb
    inc["CBC"] |= force
    inc["CHEM"] |= force
    inc["LAC"] |= run_starts(p_adm) & A["icu"][p_adm] & ~pnb & (rng.random(npn) < 0.9)
    _at_least_cbc(inc)
    q = lab_params(A, p_adm)
    V = _lab_values(rng, q, p_t, inc)
    return {"adm": p_adm, "t": p_t, "time": p_time, "V": V, "in_icu": in_icu}


def _lab_values(rng: np.random.Generator, q: dict[str, Arr], t: Arr, inc: dict[str, Arr]) -> Arr:
    """Measured values (panels x LABS, NaN where not measured) of the included groups."""
    npn = len(t)
    V = np.full((npn, len(LABS)), np.nan)
    for g, keys in GROUPS.items():
        sel = np.flatnonzero(inc[g])
        if not len(sel):
            continue
        qs = {k: v[sel] for k, v in q.items()}
        ts = t[sel]
        for key in keys:
            if key in ("ag", "cl", "hct", "pt"):
                continue
            lab = LABS[LAB_IDX[key]]
            v = latent(key, qs, ts)
            if lab.noise_kind == "mul":
                v = v * np.exp(lab.noise * rng.standard_normal(len(sel)))
            else:
                v = v + lab.noise * rng.standard_normal(len(sel))
            V[sel, LAB_IDX[key]] = np.round(np.clip(v, lab.vmin, lab.vmax), lab.dec)
        if g == "CBC":
            hct = V[sel, LAB_IDX["hgb"]] * 3.0 + 0.8 * rng.standard_normal(len(sel))
            V[sel, LAB_IDX["hct"]] = np.round(np.clip(hct, 10.0, 65.0), 1)
        if g == "CHEM":
            lac = latent("lac", qs, ts)
            ag_true = qs["ag_b"] + 1.2 * (lac - 1.0)
            na_v, hco3_v = V[sel, LAB_IDX["na"]], V[sel, LAB_IDX["hco3"]]
            cl = na_v - hco3_v - ag_true + 1.3 * rng.standard_normal(len(sel))
            cl = np.round(np.clip(cl, 70.0, 140.0), 0)
            V[sel, LAB_IDX["cl"]] = cl
            V[sel, LAB_IDX["ag"]] = np.clip(na_v - cl - hco3_v, 0.0, 45.0)
        if g == "COAG":
            pt = 11.8 * V[sel, LAB_IDX["inr"]] + 0.35 * rng.standard_normal(len(sel))
            V[sel, LAB_IDX["pt"]] = np.round(np.clip(pt, 9.0, 120.0), 1)
    return V


def outpatient_labs(b: Batch, dod: Arr) -> dict[str, Arr]:
    """Outpatient panels (no hadm_id) in the year around a patient's admissions."""
    rng, A, P, n = b.rng, b.A, b.P, b.n
    adult = ~P["nb"]
    lam = np.where(
        adult, 8.5 * np.exp(0.3 * np.clip(P["frail"], -3, 3)) + 4.0 * P["com"][:, CI["RENAL"]]
        + 3.0 * P["warf"], 0.0,
    )  # fmt: skip
    cnt = rng.poisson(lam)
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, A["pat"], A["admittime"])
    np.maximum.at(last, A["pat"], A["dischtime"])
    lo = np.maximum(first - 365 * DAY, T2100)
    hi = np.minimum(last + 365 * DAY, np.where(dod > 0, dod, T2200))
    hi = np.maximum(hi, lo + DAY)
    pat = np.repeat(np.arange(n), cnt)
    t = floor_minute(lo[pat] + (rng.random(len(pat)) * (hi[pat] - lo[pat])).astype(np.int64))
    # drop times that fall inside an admission of the same patient (A is sorted by pat, time)
    key_adm = A["pat"] * np.int64(10**10) + A["admittime"]
    key = pat * np.int64(10**10) + t
    j = np.searchsorted(key_adm, key, side="right") - 1
    jj = np.maximum(j, 0)
    inside = (j >= 0) & (A["pat"][jj] == pat) & (t <= A["dischtime"][jj] + 3600)
    inside |= (dod[pat] > 0) & (t >= dod[pat])
    pat, t = pat[~inside], t[~inside]
    order = np.lexsort((t, pat))
    pat, t = pat[order], t[order]
    keep = run_starts(pat, t)
    pat, t = pat[keep], t[keep]
    npn = len(pat)
    warf = P["warf"][pat]
    liver = P["com"][pat, CI["LIVER"]]
    prob = {
        "CBC": np.full(npn, 0.8), "CHEM": np.full(npn, 0.9), "MCP": np.full(npn, 0.25),
        "LAC": np.zeros(npn), "ALB": np.where(liver, 0.4, 0.1),
        "COAG": np.where(warf, 0.85, 0.15), "LFT": np.where(liver, 0.5, 0.15),
    }  # fmt: skip
    inc = _draw_groups(rng, prob, npn)
    _at_least_cbc(inc)
    q = {k: P[k][pat] for k in BASE_KEYS}
    for k in ACUTE_KEYS:
        q[k] = np.zeros(npn)
    q["los"] = np.full(npn, np.inf)
    V = _lab_values(rng, q, np.zeros(npn), inc)
    return {"pat": pat, "time": t, "V": V}
