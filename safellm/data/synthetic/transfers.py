"""ICU stays, TRANSFERS (the ward/ICU path of each stay) and SERVICES."""

from __future__ import annotations

import numpy as np

from safellm.data.synthetic.batch import Batch
from safellm.data.synthetic.numeric import DAY, Arr, choice, floor_minute, run_starts, secs
from safellm.data.synthetic.vocab import CAREUNITS, CU_WARDS, FLOOR_WARDS, SVC


def icu_index(A: dict[str, Arr]) -> tuple[Arr, Arr, Arr, Arr]:
    """ICU stays: (adm, which) sorted, plus per-admission local index of stay 1 and 2 (-1)."""
    na = len(A["pat"])
    adm = np.concatenate([np.flatnonzero(A["icu"]), np.flatnonzero(A["icu"] & A["has2"])])
    which = np.concatenate([np.zeros(int(A["icu"].sum()), np.int64),
                            np.ones(int((A["icu"] & A["has2"]).sum()), np.int64)])  # fmt: skip
    order = np.lexsort((which, adm))
    adm, which = adm[order], which[order]
    i1 = np.full(na, -1, np.int64)
    i2 = np.full(na, -1, np.int64)
    idx = np.arange(len(adm))
    i1[adm[which == 0]] = idx[which == 0]
    i2[adm[which == 1]] = idx[which == 1]
    return adm, which, i1, i2


def transfers(b: Batch, i1: Arr, i2: Arr) -> dict[str, Arr]:
    """TRANSFERS rows along each stay's path: ward, ICU, ward, ICU, ward(s), discharge."""
    rng, A = b.rng, b.A
    na = len(A["pat"])
    S = 7
    start = np.zeros((na, S), np.int64)
    end = np.zeros((na, S), np.int64)
    cu = np.full((na, S), -1, np.int64)
    valid = np.zeros((na, S), bool)
    icu_id = np.full((na, S), -1, np.int64)
    adm_t, dis = A["admittime"], A["dischtime"]
    icu, has2 = A["icu"], A["has2"]
    last_out = np.where(has2, A["out2"], A["out1"])
    split_p = rng.random(na) < 0.3
    # 0: ward before the ICU (or the whole stay without ICU)
    pre_ok = ~icu | (A["in1"] - adm_t >= 3600)
    valid[:, 0] = pre_ok
    start[:, 0] = adm_t
    post_start = np.where(icu, last_out, adm_t)
    post_ok = ~icu | (dis - last_out >= 60)
    split = split_p & post_ok & (dis - post_start > DAY)
    split_t = post_start + ((dis - post_start) * rng.uniform(0.2, 0.8, na)).astype(np.int64)
    end[:, 0] = np.where(icu, A["in1"], np.where(split, split_t, dis))
    # 1: first ICU stay; 2: ward in between; 3: second ICU stay
    valid[:, 1] = icu
    start[:, 1], end[:, 1], cu[:, 1], icu_id[:, 1] = A["in1"], A["out1"], A["cu"], i1
    valid[:, 2] = has2
    start[:, 2], end[:, 2] = A["out1"], A["in2"]
    valid[:, 3] = has2
    start[:, 3], end[:, 3], cu[:, 3], icu_id[:, 3] = A["in2"], A["out2"], A["cu2"], i2
    # 4: ward after the ICU; 5: a second ward
    valid[:, 4] = icu & post_ok
    start[:, 4] = last_out
    end[:, 4] = np.where(split, split_t, dis)
    valid[:, 5] = split
    start[:, 5], end[:, 5] = split_t, dis
    # 6: discharge event
    valid[:, 6] = True
    start[:, 6] = dis
    ward = np.zeros((na, S), np.int64)
    floor = np.array(FLOOR_WARDS)
    for s in (0, 2, 4, 5):
        ward[:, s] = floor[rng.integers(0, len(floor), na)]
    cu_w = [np.array(w) for w in CU_WARDS]
    for s in (1, 3):
        w = np.zeros(na, np.int64)
        for c in range(len(CAREUNITS)):
            sel = cu[:, s] == c
            w[sel] = cu_w[c][rng.integers(0, len(cu_w[c]), int(sel.sum()))]
        ward[:, s] = w
    r_adm, r_slot = np.nonzero(valid)
    r_start, r_end = start[r_adm, r_slot], end[r_adm, r_slot]
    r_cu, r_ward, r_icu = cu[r_adm, r_slot], ward[r_adm, r_slot], icu_id[r_adm, r_slot]
    first = run_starts(r_adm)
    prev_cu = np.r_[-1, r_cu[:-1]]
    prev_ward = np.r_[-1, r_ward[:-1]]
    prev_cu = np.where(first, -1, prev_cu)
    prev_ward = np.where(first, -1, prev_ward)
    is_dis = r_slot == 6
    ev = np.where(is_dis, 2, np.where(first, 0, 1))
    return {"adm": r_adm, "start": r_start, "end": r_end, "cu": r_cu, "ward": r_ward,
            "icu": r_icu, "prev_cu": prev_cu, "prev_ward": prev_ward, "ev": ev, "is_dis": is_dis,
            "first_start": r_start[first]}  # fmt: skip


def services(b: Batch, first_start: Arr) -> dict[str, Arr]:
    """SERVICES rows: the admission's service, and for some a change of service."""
    rng, A, P = b.rng, b.A, b.P
    na = len(A["pat"])
    svc = A["service"]
    surgical = np.isin(svc, [SVC[s] for s in ("SURG", "CSURG", "VSURG", "NSURG", "TSURG",
                                               "ORTHO", "TRAUM")])  # fmt: skip
    change = ~P["nb"][A["pat"]] & (A["los"] > 2) & (rng.random(na) < 0.12)
    new = np.where(
        surgical,
        SVC["MED"],
        np.array([SVC[s] for s in ("SURG", "CSURG", "VSURG", "NSURG")])[
            choice(rng, na, (0.5, 0.2, 0.15, 0.15))
        ],
    )
    t_change = floor_minute(A["admittime"] + secs(A["los"] * rng.uniform(0.3, 0.9, na)))
    adm = np.concatenate([np.arange(na), np.flatnonzero(change)])
    time = np.concatenate([first_start, t_change[change]])
    prev = np.concatenate([np.full(na, -1), svc[change]])
    curr = np.concatenate([svc, new[change]])
    order = np.lexsort((time, adm))
    return {"adm": adm[order], "time": time[order], "prev": prev[order], "curr": curr[order]}
