"""CHARTEVENTS: the ICU's bedside charting, hourly, in CareVue's or MetaVision's item ids.

Each ICU stay is charted on the hour from its first whole hour to its out-time, in the item ids of
the stay's system (ICUSTAYS.dbsource: CareVue 2001-2008, MetaVision 2008-2012 in the real release):

    item                      CareVue                  MetaVision             every
    heart rate                211                      220045                 hour
    systolic / diastolic /    51 / 8368 / 52 (arterial) 220050 / 220051 / 220052 (arterial)  hour
      mean blood pressure     455 / 8441 / 456 (cuff)  220179 / 220180 / 220181 (cuff)
    respiratory rate          618                      220210                 hour
    SpO2                      646                      220277                 hour
    temperature (°F)          678                      223761                 4 hours
    Glasgow coma scale        198 (total)              220739 / 223900 / 223901 (eye, verbal,
                                                        motor)                4 hours

Ventilated or shocked patients have an arterial line (its pressures), the others a cuff. Each item
is missed at a charting time with probability 5 %. Urine output is not here: MIMIC-III keeps it in
OUTPUTEVENTS, which the project does not read.

Values are noisy readouts of the admission's latent state, the same state that drives the outcomes
(so vital signs carry no effect of their own on them; they show it, as labs do). With d = days since
admission, f = exp(-d / 1.5) (the acute deviation fading) and T in [0, 1] rising over the last 12 h
before an in-hospital death:

    heart rate    80 + 4 s+ + (18 sepsis + 22 shock + 6 pneumonia) f + 30 T + stay offset ~ N(0, 8)
    systolic BP   125 + 10 (age - 65) / 20 - (12 sepsis + 28 shock) f - 35 T + offset ~ N(0, 12)
    resp. rate    17 + (5 pneumonia + 7 respiratory failure + 3 sepsis) f + 8 T + offset ~ N(0, 2)
    SpO2          97.5 - (2.5 pneumonia + 4 respiratory failure) f - 8 T + offset ~ N(0, 1)
    temperature   98.4 + (2.4 sepsis + 1.0 pneumonia) f - 1.5 T + offset ~ N(0, 0.4)
    GCS           15 - 1.5 s+ - 4 ventilated - 6 T (rounded, 3..15)

(s+ = positive part of the severity; newborns: heart rate 140, systolic BP 65, respiratory rate 45),
each measurement with its own noise (heart rate 5, blood pressure 8, respiratory rate 2, SpO2 1, temperature
0.3). Errors as in the real table: MetaVision marks 0.3 % of vital-sign rows ERROR = 1 (a mistyped
value: ten times or a tenth of the true one, charted again correctly in the same minute); CareVue
has no such flag and 0.2 % of its vital-sign values are mistyped the same way; 0.5 % of rows are
charted twice. A careful reader drops ERROR = 1 rows and values outside the plausible ranges
(`safellm.data.catalogue.VITAL_VALID`).

`FULL` mode adds the bulk of the real table: about 61 more items per charting time (nursing
assessments, ventilator, line and drain settings) that no feature reads, so that the table has the
full release's size: ~5,400 rows per ICU stay, ~330 M rows for 46,000 patients. Those items' ids and
values are placeholders (numbered from 90000 for CareVue, 290000 for MetaVision, outside both
systems' vital-sign ids) that stand for that bulk; they are not MIMIC's items.

The charting draws from its own generator (seeded by the batch's seed and a fixed stream number),
so the other tables are the same with or without CHARTEVENTS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from safellm.data.synthetic.numeric import DAY, HOUR, Arr


class ChartMode(StrEnum):
    """How much of CHARTEVENTS the synthetic hospital writes."""

    NONE = "none"  # no CHARTEVENTS table (the build skips the vital-sign features)
    VITALS = "vitals"  # the vital signs and GCS only
    FULL = "full"  # plus the bulk of other charted items: the real table's size


@dataclass(frozen=True)
class Item:
    """One charted item: its id in CareVue and in MetaVision, its unit and decimals."""

    cv: int
    mv: int
    unit_cv: str
    unit_mv: str
    dec: int


# vital-sign items (keys: what the generator draws)
ITEMS: dict[str, Item] = {
    "hr": Item(211, 220045, "BPM", "bpm", 0),
    "sbp_art": Item(51, 220050, "mmHg", "mmHg", 0),
    "dbp_art": Item(8368, 220051, "mmHg", "mmHg", 0),
    "mbp_art": Item(52, 220052, "mmHg", "mmHg", 0),
    "sbp_nbp": Item(455, 220179, "mmHg", "mmHg", 0),
    "dbp_nbp": Item(8441, 220180, "mmHg", "mmHg", 0),
    "mbp_nbp": Item(456, 220181, "mmHg", "mmHg", 0),
    "rr": Item(618, 220210, "BPM", "insp/min", 0),
    "spo2": Item(646, 220277, "%", "%", 0),
    "temp": Item(678, 223761, "Deg. F", "°F", 1),
    "gcs": Item(198, 220739, "points", "", 0),  # MetaVision: eye (+ verbal, motor below)
    "gcs_v": Item(198, 223900, "points", "", 0),
    "gcs_m": Item(198, 223901, "points", "", 0),
}
# values a keyboard slip makes (x10 or /10) are what the error model writes
_MISSING_P = 0.05
_ERROR_MV_P = 0.003
_SLIP_CV_P = 0.002
_DUP_P = 0.005
# the bulk of other charted items in FULL mode: this many per charting time on average
FULL_ITEMS = 64
FULL_P = 0.95
_FULL_VALUES = tuple(f"state {k}" for k in range(12))
STAYS_PER_CHUNK = 150  # stays generated and written at a time (bounds memory in FULL mode)


@dataclass(frozen=True)
class Stays:
    """The batch's ICU stays: admission (local index), times, system, ids as strings."""

    adm: Arr
    tin: Arr
    tout: Arr
    carevue: Arr  # bool
    subject: pa.Array
    hadm: pa.Array
    icustay: pa.Array


def _ceil_hour(t: Arr) -> Arr:
    return -(-np.asarray(t, np.int64) // HOUR) * HOUR


def _str_ts(t: Arr) -> pa.Array:
    return pa.array(np.asarray(t, np.int64).astype("datetime64[s]")).cast(pa.string())


def _str_num(v: Arr, dec: int) -> pa.Array:
    if dec == 0:
        return pa.array(np.round(v).astype(np.int64)).cast(pa.string())
    return pa.array(np.round(v, dec) + 0.0).cast(pa.string())


def chart_chunks(
    rng: np.random.Generator, A: dict[str, Arr], P: dict[str, Arr], st: Stays, mode: ChartMode
) -> Iterator[dict[str, pa.Array]]:
    """CHARTEVENTS columns (without row_id) of the stays `st`, a few hundred stays at a time."""
    for lo in range(0, len(st.adm), STAYS_PER_CHUNK):
        sel = np.arange(lo, min(lo + STAYS_PER_CHUNK, len(st.adm)))
        cols = _chunk(rng, A, P, st, sel, mode)
        if cols is not None:
            yield cols


def _chunk(
    rng: np.random.Generator,
    A: dict[str, Arr],
    P: dict[str, Arr],
    st: Stays,
    sel: Arr,
    mode: ChartMode,
) -> dict[str, pa.Array] | None:
    adm = st.adm[sel]
    first = _ceil_hour(st.tin[sel])
    n_hours = np.maximum((st.tout[sel] - first) // HOUR + 1, 0)
    n_hours = np.where(st.tout[sel] >= first, n_hours, 0)
    h_stay = np.repeat(np.arange(len(sel)), n_hours)  # charting times: stay (chunk-local) ...
    if not len(h_stay):
        return None
    h_k = np.arange(len(h_stay)) - np.repeat(np.cumsum(n_hours) - n_hours, n_hours)
    h_t = first[h_stay] + h_k * HOUR  # ... and time
    h_adm = adm[h_stay]
    nh = len(h_t)
    # the stay's state
    pat = A["pat"][h_adm]
    nb = P["nb"][pat]
    d = (h_t - A["admittime"][h_adm]) / DAY
    f = np.exp(-np.maximum(d, 0.0) / 1.5)
    sev = np.maximum(A["sev"][h_adm], 0.0)
    sepsis, shock = A["sepsis"][h_adm] * 1.0, A["shock"][h_adm] * 1.0
    pneu, resp = A["pneu"][h_adm] * 1.0, A["respfail"][h_adm] * 1.0
    vent = A["vent"][h_adm] * 1.0
    hours_to_death = (A["dischtime"][h_adm] - h_t) / HOUR
    term = (A["died"][h_adm] == 1) * np.clip(1.0 - hours_to_death / 12.0, 0.0, 1.0)
    age = A["age"][h_adm]
    off = {k: rng.standard_normal(len(sel))[h_stay] * s for k, s in
           (("hr", 8.0), ("bp", 12.0), ("rr", 2.0), ("spo2", 1.0), ("temp", 0.4))}  # fmt: skip
    hr = 80 + 4 * sev + (18 * sepsis + 22 * shock + 6 * pneu) * f + 30 * term + off["hr"]
    sbp = 125 + 10 * (age - 65) / 20 - (12 * sepsis + 28 * shock) * f - 35 * term + off["bp"]
    rr = 17 + (5 * pneu + 7 * resp + 3 * sepsis) * f + 8 * term + off["rr"]
    spo2 = 97.5 - (2.5 * pneu + 4 * resp) * f - 8 * term + off["spo2"]
    temp = 98.4 + (2.4 * sepsis + 1.0 * pneu) * f - 1.5 * term + off["temp"]
    gcs = 15 - 1.5 * sev - 4 * vent - 6 * term
    hr = np.where(nb, 140 + off["hr"], hr)
    sbp = np.where(nb, 65 + 0.5 * off["bp"], sbp)
    rr = np.where(nb, 45 + 2 * off["rr"], rr)
    art = (vent + shock > 0) & ~nb
    n01 = rng.standard_normal
    hr_m = np.clip(hr + 5 * n01(nh), 20, 250)
    sbp_m = np.clip(sbp + 8 * n01(nh), 40, 250)
    dbp_m = np.clip(0.55 * sbp_m + 4 * n01(nh), 15, 150)
    mbp_m = (sbp_m + 2 * dbp_m) / 3
    every4 = (h_k % 4) == 0
    values: dict[str, tuple[Arr, Arr]] = {  # item -> (charting times that have it, values)
        "hr": (np.ones(nh, bool), hr_m),
        "sbp_art": (art, sbp_m), "dbp_art": (art, dbp_m), "mbp_art": (art, mbp_m),
        "sbp_nbp": (~art, sbp_m), "dbp_nbp": (~art, dbp_m), "mbp_nbp": (~art, mbp_m),
        "rr": (np.ones(nh, bool), np.clip(rr + 2 * n01(nh), 4, 70)),
        "spo2": (np.ones(nh, bool), np.clip(spo2 + n01(nh), 60, 100)),
        "temp": (every4, np.clip(temp + 0.3 * n01(nh), 90, 107)),
    }  # fmt: skip
    g = np.clip(np.round(gcs + 0.7 * n01(nh)), 3, 15)
    # MetaVision charts the three components (eye 1-4, verbal 1-5, motor 1-6) that sum to the total
    eye = np.clip(np.round(g * 4 / 15), 1, 4)
    motor = np.clip(np.round(g * 6 / 15), 1, 6)
    verbal = np.clip(g - eye - motor, 1, 5)
    cv_h = st.carevue[sel][h_stay]
    values["gcs"] = (every4, np.where(cv_h, g, eye))
    values["gcs_v"] = (every4 & ~cv_h, verbal)
    values["gcs_m"] = (every4 & ~cv_h, motor)

    hour_ix: list[Arr] = []
    item_ids: list[Arr] = []
    units: list[pa.Array] = []
    vals: list[pa.Array] = []
    nums: list[pa.Array] = []
    errors: list[Arr] = []
    for key, (has, v) in values.items():
        it = ITEMS[key]
        rows = np.flatnonzero(has & (rng.random(nh) >= _MISSING_P))
        if not len(rows):
            continue
        cv = cv_h[rows]
        x = v[rows]
        err = np.zeros(len(rows), np.int8)
        if not key.startswith("gcs"):
            # a keyboard slip: ten times or a tenth of the value
            slip = np.where(cv, rng.random(len(rows)) < _SLIP_CV_P, False)
            wrong = ~cv & (rng.random(len(rows)) < _ERROR_MV_P)
            factor = np.where(rng.random(len(rows)) < 0.5, 10.0, 0.1)
            x = np.where(slip, x * factor, x)
            if wrong.any():  # MetaVision: the wrong value flagged, the right one charted again
                w = np.flatnonzero(wrong)
                rows = np.concatenate([rows, rows[w]])
                cv = np.concatenate([cv, cv[w]])
                x = np.concatenate([x, x[w] * factor[w]])
                err = np.concatenate([err, np.ones(len(w), np.int8)])
        hour_ix.append(rows)
        item_ids.append(np.where(cv, it.cv, it.mv))
        s = _str_num(x, it.dec)
        vals.append(s)
        nums.append(s)
        units.append(pc.if_else(pa.array(cv), it.unit_cv, it.unit_mv))
        errors.append(np.where(cv, -1, err))
    if mode == ChartMode.FULL:
        k = rng.binomial(FULL_ITEMS, FULL_P, nh)
        rows = np.repeat(np.arange(nh), k)
        j = np.arange(len(rows)) - np.repeat(np.cumsum(k) - k, k)  # the j-th item of the time
        cv = cv_h[rows]
        hour_ix.append(rows)
        item_ids.append(np.where(cv, 90000, 290000) + j)
        pick = rng.integers(0, len(_FULL_VALUES), len(rows))
        vals.append(pc.take(pa.array(_FULL_VALUES), pa.array(pick)))
        nums.append(pa.nulls(len(rows), pa.string()))
        units.append(pa.nulls(len(rows), pa.string()))
        errors.append(np.where(cv, -1, 0))
    r_h = np.concatenate(hour_ix)
    r_err = np.concatenate(errors)
    r_item = np.concatenate(item_ids)
    r_val = pa.concat_arrays(vals)
    r_num = pa.concat_arrays(nums)
    r_unit = pa.concat_arrays(units)
    # a few rows charted twice
    dup = np.flatnonzero(rng.random(len(r_h)) < _DUP_P)
    take = pa.array(np.concatenate([np.arange(len(r_h)), dup]))
    r_h, r_err, r_item = (np.concatenate([x, x[dup]]) for x in (r_h, r_err, r_item))
    r_val, r_num, r_unit = (pc.take(x, take) for x in (r_val, r_num, r_unit))
    # rows in charting order: by stay and time, then item
    order = np.lexsort((r_item, r_h))
    r_h, r_err, r_item = r_h[order], r_err[order], r_item[order]
    o = pa.array(order)
    r_val, r_num, r_unit = pc.take(r_val, o), pc.take(r_num, o), pc.take(r_unit, o)
    # per charting time: ids, times, caregiver
    stay_of = sel[h_stay]
    h_ix = pa.array(r_h)
    cv_r = cv_h[r_h]
    store = h_t + rng.integers(60, 45 * 60, nh)
    cgid = rng.integers(14000, 21000, len(sel))[h_stay]
    return {
        "subject_id": pc.take(pc.take(st.subject, pa.array(stay_of)), h_ix),
        "hadm_id": pc.take(pc.take(st.hadm, pa.array(stay_of)), h_ix),
        "icustay_id": pc.take(pc.take(st.icustay, pa.array(stay_of)), h_ix),
        "itemid": pa.array(r_item).cast(pa.string()),
        "charttime": pc.take(_str_ts(h_t), h_ix),
        "storetime": pc.take(_str_ts(store), h_ix),
        "cgid": pc.take(pa.array(cgid).cast(pa.string()), h_ix),
        "value": r_val,
        "valuenum": r_num,
        "valueuom": r_unit,
        "warning": pa.array(np.where(cv_r, 0, 0), mask=cv_r).cast(pa.string()),
        "error": pa.array(r_err, mask=r_err < 0).cast(pa.string()),
        "resultstatus": pc.if_else(pa.array(cv_r), "Manual", pa.scalar(None, pa.string())),
        "stopped": pc.if_else(pa.array(cv_r), "NotStopd", pa.scalar(None, pa.string())),
    }
